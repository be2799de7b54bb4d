"""The landing page, the login form and the admin's login, as a person sees them in Chromium."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from workforce import services
from workforce.models import Role

# The server is another process: it sees only what the test has committed.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-long-enough"  # what tests.helpers.Org gives every member


def test_the_landing_page_offers_a_logged_out_visitor_the_login_and_the_api_docs(tab):
    tab.page.goto("/")

    main = tab.page.get_by_role("main")
    expect(main.get_by_role("heading", name="Assay")).to_be_visible()
    expect(main.get_by_role("link", name="Log in")).to_have_attribute("href", "/accounts/login/")
    expect(main.get_by_role("link", name="API docs")).to_have_attribute("href", "/api/docs/")
    expect(main).not_to_contain_text("Your organizations")
    tab.screenshot("home-logged-out")
    assert tab.errors == []
    assert tab.offsite_requests() == []


def test_a_member_logs_in_through_the_form_and_sees_their_organizations_and_roles(
    org, other_org, tab
):
    # A QA lead at Acme who also annotates for Globex, as people at vendors do.
    services.member_join(
        organization=other_org.organization, user=org.qa_lead.user, role=Role.ANNOTATOR, actor=None
    )
    page = tab.page
    page.goto("/")
    page.get_by_role("main").get_by_role("link", name="Log in").click()
    expect(page).to_have_url(f"{tab.origin}/accounts/login/")
    page.get_by_label("Username").fill("acme-qa@acme")
    page.get_by_label("Password").fill(PASSWORD)
    tab.screenshot("login")

    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{tab.origin}/")
    banner = page.get_by_role("banner")
    expect(banner).to_contain_text("acme-qa@acme")
    log_out = banner.get_by_role("button", name="Log out")
    expect(log_out).to_be_visible()
    # The session controls sit on the header's line, not below it.
    brand, button = banner.get_by_role("link", name="Assay").bounding_box(), log_out.bounding_box()
    assert abs((brand["y"] + brand["height"] / 2) - (button["y"] + button["height"] / 2)) < 3
    expect(page.get_by_role("heading", name="Your organizations")).to_be_visible()
    items = page.get_by_role("main").get_by_role("listitem")
    expect(items).to_contain_text(["Acme — QA lead", "Globex — Annotator"])
    expect(items.get_by_role("button")).to_have_text(["Work here", "Work here"])
    # With two organizations, the pages wait for a choice; then the header links the role's.
    expect(page.get_by_role("navigation", name="Pages").get_by_role("link")).to_have_text(["API"])
    tab.screenshot("home-logged-in")

    page.get_by_role("button", name="Work in Acme").click()

    expect(page.get_by_role("main").get_by_role("listitem").first).to_contain_text("working here")
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link")).to_have_text(["Quality", "API"])
    nav.get_by_role("link", name="Quality").click()
    expect(page.get_by_role("heading", name="Quality")).to_be_visible()
    assert tab.errors == []
    assert tab.offsite_requests() == []


def test_a_wrong_password_shows_the_forms_error_and_logs_nobody_in(org, tab):
    page = tab.page
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("acme-qa@acme")
    page.get_by_label("Password").fill("not-the-password")

    page.get_by_role("button", name="Log in").click()

    expect(page.locator(".error")).to_have_text("Your username and password didn't match.")
    expect(page).to_have_url(f"{tab.origin}/accounts/login/")
    # The username stays filled in for another try.
    expect(page.get_by_label("Username")).to_have_value("acme-qa@acme")
    tab.screenshot("login-wrong-password")
    cookies = {cookie["name"] for cookie in page.context.cookies()}
    assert settings.SESSION_COOKIE_NAME not in cookies
    page.goto("/")
    expect(page.get_by_role("banner").get_by_role("link", name="Log in")).to_be_visible()
    expect(page.get_by_role("main")).not_to_contain_text("Your organizations")
    assert tab.errors == []


def test_the_admin_asks_a_logged_out_visitor_to_log_in_on_its_styled_form(tab):
    page = tab.page
    page.goto("/admin/")

    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    expect(page.get_by_label("Username:")).to_be_visible()
    # The admin's own stylesheet arrived: its header is coloured, not the browser's default.
    header = page.locator("#header")
    assert header.evaluate("node => getComputedStyle(node).backgroundColor") != "rgba(0, 0, 0, 0)"
    tab.screenshot("admin-login")
    assert tab.errors == []
    assert tab.offsite_requests() == []
