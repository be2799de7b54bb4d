"""Swagger UI at /api/docs/ renders the API from the server alone: no CDN, no validator."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_lists_the_operations_with_every_request_on_the_server(tab):
    page = tab.page
    page.goto("/api/docs/")

    # The operations are drawn from /api/schema/, so the script, its styles and the schema
    # all arrived.
    expect(page.locator("#operations-tag-work")).to_be_visible()
    claims = page.locator('.opblock-summary-path[data-path="/api/v1/claims/"]')
    expect(claims).to_be_visible()
    expect(page.locator(".info .title")).to_contain_text("Assay API")
    page.wait_for_load_state("networkidle")
    tab.screenshot("api-docs")

    assert f"{tab.origin}/api/schema/" in tab.requests
    assert tab.offsite_requests() == []
    assert tab.errors == []
