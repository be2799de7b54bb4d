"""Every answer under /api/ that is an error is the documented envelope, never an HTML page.

Django's own answers (an unknown URL, an id that is not a number, a server error) included, and
under the production settings (DEBUG off) as well as in development.
"""

import re
from datetime import timedelta

import httpx
import pytest
from django.test import Client, override_settings
from django.urls import get_resolver, path
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.views import APIView

from config import urls as project_urls
from config.errors import ValidationFailed
from config.parsers import body_limit
from tasks.models import Annotation, Project
from workforce.api_base import OrganizationApi
from workforce.models import Certification, Member, Role
from workforce.services import validate_profile

from .helpers import asgi_server, image_rows, import_rows, make_project, staff

PASSWORD = "pw-long-enough"


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["fields"], dict)
    return error


def _boom(request, *args, **kwargs):
    raise RuntimeError("a bug")


class _BoomApi(APIView):
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("a bug in a DRF view")


# A URL configuration with views that fail as a bug would, beside the project's own routes and
# with its own error handler (Django reads the handler from the root URL configuration).
urlpatterns = [
    path("api/v1/boom/", _boom),
    path("api/v1/boom-drf/", _BoomApi.as_view()),
    path("boom/", _boom),
    *project_urls.urlpatterns,
]
handler500 = project_urls.handler500


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/nothing-here/",
        "/api/v1/nothing-here",
        "/api/v1/projects/abc/",
        "/api/v1/projects/1/nothing/",
        "/api/nothing",
    ],
)
def test_unknown_urls_and_ids_that_are_not_numbers_answer_404_in_the_envelope(org, url, debug):
    client = org.client(Role.MANAGER)
    with override_settings(DEBUG=debug):
        for method in (client.get, client.post, client.delete):
            assert_envelope(method(url), 404, "not_found")


@override_settings(DEBUG=False)
def test_a_body_over_the_limit_answers_413_naming_the_limit(org):
    client = org.client(Role.MANAGER)
    limit = body_limit()
    response = client.generic(
        "POST", "/api/v1/projects/", b"{}", "application/json", CONTENT_LENGTH=str(limit + 1)
    )
    error = assert_envelope(response, 413, "payload_too_large")
    assert str(limit) in error["message"]
    assert not Project.objects.exists()


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/api/v1/boom/", "/api/v1/boom-drf/"])
def test_a_server_error_under_the_production_settings_answers_500_in_the_envelope(db, url):
    client = Client(raise_request_exception=False)
    with override_settings(DEBUG=False):
        error = assert_envelope(client.get(url), 500, "server_error")
    # Nothing of the exception reaches the client.
    assert "bug" not in error["message"]


@pytest.mark.urls(__name__)
def test_a_server_error_outside_the_api_keeps_the_html_page(db):
    with override_settings(DEBUG=False):
        response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_the_project_answers_server_errors_with_its_handler():
    assert get_resolver().resolve_error_handler(500) is project_urls.handler500


def _organization_routes(patterns, prefix=""):
    """Every route of the API whose view is an ``OrganizationApi``, with its path filled in."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$").replace("/?", "/")
        if hasattr(pattern, "url_patterns"):
            yield from _organization_routes(pattern.url_patterns, route)
            continue
        view = getattr(pattern.callback, "view_class", None)
        if view is not None and issubclass(view, OrganizationApi):
            route = re.sub(r"\(\?P<\w+>\\d\+\)", "1", route)
            yield "/" + re.sub(r"\(\?P<\w+>\[a-z_\]\+\)", "bbox", route), view


def test_every_method_a_view_lacks_answers_405_with_allow_whatever_the_role(org):
    routes = list(_organization_routes(get_resolver().url_patterns))
    assert len(routes) > 20
    for role in (Role.MANAGER, Role.ANNOTATOR):
        client = org.client(role)
        for url, view in routes:
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                if hasattr(view, method.lower()):
                    continue
                response = client.generic(method, url, b"{}", "application/json")
                assert_envelope(response, 405, "method_not_allowed")
                allowed = {m.strip() for m in response["Allow"].split(",")}
                defined = {m.upper() for m in ("get", "post", "put", "patch", "delete")}
                assert method not in allowed
                assert {m for m in defined if hasattr(view, m.lower())} <= allowed


def test_a_method_a_role_may_not_call_still_answers_403(org):
    response = org.client(Role.ANNOTATOR).post("/api/v1/projects/", {}, format="json")
    assert_envelope(response, 403, "permission_denied")


def _token(body):
    return APIClient(REMOTE_ADDR="203.0.113.77").post("/api/v1/auth/token/", body, format="json")


def test_wrong_credentials_at_the_token_endpoint_answer_401_with_a_challenge(org):
    login = org.manager.user.username
    for body in (
        {"username": login, "password": "wrong-password"},
        {"username": "nobody@acme", "password": PASSWORD},
    ):
        response = _token(body)
        assert_envelope(response, 401, "authentication_failed")
        assert response["WWW-Authenticate"]
    org.manager.user.is_active = False
    org.manager.user.save(update_fields=["is_active"])
    assert_envelope(_token({"username": login, "password": PASSWORD}), 401, "authentication_failed")


def test_missing_credentials_at_the_token_endpoint_answer_400_naming_them(org):
    error = assert_envelope(_token({}), 400, "invalid_input")
    assert set(error["fields"]) == {"username", "password"}
    error = assert_envelope(_token({"username": "x"}), 400, "invalid_input")
    assert set(error["fields"]) == {"password"}
    assert _token({"username": org.qa_lead.user.username, "password": PASSWORD}).status_code == 200


def test_a_new_project_with_bad_fields_of_both_layers_names_every_one_at_once(org):
    client = org.client(Role.MANAGER)
    body = {
        "name": "Streets",
        "kind": "bbox",
        "label_schema": {"labels": "car"},  # the kind's check
        "overlap": 0,  # the service's range
        "gold_rate": 2,  # the service's range
        "deadline": "next week",  # the serializer's parsing
        "required_domains": ["nope", "nada"],  # looked up in the organization
    }
    error = assert_envelope(
        client.post("/api/v1/projects/", body, format="json"), 400, "invalid_input"
    )
    fields = error["fields"]
    assert {"overlap", "gold_rate", "deadline", "required_domains"} <= set(fields)
    assert any(name.startswith("label_schema") for name in fields)
    assert len(fields["required_domains"]) == 2
    assert "overlap" in error["message"] and "deadline" in error["message"]
    assert not Project.objects.exists()
    # A bad kind and a bad overlap come back together too.
    body = {"name": "Streets", "kind": "no-such-kind", "overlap": 99, "priority": 10**6}
    error = assert_envelope(
        client.post("/api/v1/projects/", body, format="json"), 400, "invalid_input"
    )
    assert {"kind", "overlap", "priority"} <= set(error["fields"])


def test_a_project_update_with_three_bad_fields_names_all_three(org):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    body = {"overlap": 0, "lease_seconds": 5, "deadline": "soon", "status": "nope"}
    response = client.patch(f"/api/v1/projects/{project.pk}/", body, format="json")
    error = assert_envelope(response, 400, "invalid_input")
    assert {"overlap", "lease_seconds", "deadline", "status"} <= set(error["fields"])
    project.refresh_from_db()
    assert project.overlap != 0


def test_a_new_member_with_three_bad_fields_names_all_three(org):
    client = org.client(Role.MANAGER)
    body = {
        "username": "ana@elsewhere",
        "role": "annotator",
        "timezone": "Mars/Olympus",
        "weekly_capacity_hours": 500,
        "email": "not an address",
    }
    error = assert_envelope(
        client.post("/api/v1/members/", body, format="json"), 400, "invalid_input"
    )
    assert {"username", "timezone", "weekly_capacity_hours", "email"} <= set(error["fields"])
    assert not Member.objects.filter(user__username__startswith="ana").exists()


def test_a_certification_with_three_bad_fields_names_all_three(org):
    client = org.client(Role.QA_LEAD)
    body = {
        "annotator": 10**9,
        "domain": "no-such-domain",
        "evidence": "   ",
        "expires_at": (timezone.now() - timedelta(days=1)).isoformat(),
    }
    response = client.post("/api/v1/certifications/", body, format="json")
    error = assert_envelope(response, 400, "invalid_input")
    assert {"annotator", "domain", "evidence", "expires_at"} <= set(error["fields"])
    assert not Certification.objects.exists()


def test_an_annotator_profile_with_bad_fields_of_both_layers_names_every_one(org):
    client = org.client(Role.MANAGER)
    body = {"languages": ["en", "en"], "timezone": "Mars/Olympus", "weekly_capacity_hours": -1}
    response = client.patch(f"/api/v1/annotators/{org.annotator.pk}/", body, format="json")
    error = assert_envelope(response, 400, "invalid_input")
    # The repeated language is the service's rule; the other two, the serializer's.
    assert {"languages", "timezone", "weekly_capacity_hours"} <= set(error["fields"])
    org.annotator.refresh_from_db()
    assert org.annotator.languages != ["en", "en"]


def test_staffing_names_every_unknown_annotator(org):
    project = make_project(org)
    body = {"annotators": [org.annotator.pk, 10**9, 10**9 + 1]}
    response = org.client(Role.MANAGER).post(
        f"/api/v1/projects/{project.pk}/members/", body, format="json"
    )
    error = assert_envelope(response, 400, "invalid_input")
    assert len(error["fields"]["annotators"]) == 2
    assert not project.members.exists()


def test_a_domain_with_a_taken_slug_and_a_bad_name_names_both(org):
    client = org.client(Role.MANAGER)
    assert client.post("/api/v1/domains/", {"slug": "legal", "name": "Legal"}).status_code == 201
    response = client.post("/api/v1/domains/", {"slug": "legal", "name": "x" * 201}, format="json")
    error = assert_envelope(response, 400, "invalid_input")
    assert set(error["fields"]) == {"slug", "name"}


@pytest.mark.django_db(transaction=True)
def test_the_real_server_answers_each_refusal_in_the_envelope(org):
    token, _ = Token.objects.get_or_create(user=org.manager.user)
    headers = {"Authorization": f"Token {token.key}", "X-Organization": "acme"}
    too_large = b"x" * (body_limit() + 1)
    with asgi_server() as base, httpx.Client(base_url=base, headers=headers) as client:
        answers = {
            "unknown URL": (client.get("/api/v1/nothing-here/"), 404, "not_found"),
            "id not a number": (client.get("/api/v1/projects/abc/"), 404, "not_found"),
            "method": (client.delete("/api/v1/projects/"), 405, "method_not_allowed"),
            "body": (client.post("/api/v1/projects/", content=too_large), 413, "payload_too_large"),
            "password": (
                httpx.post(
                    f"{base}/api/v1/auth/token/",
                    json={"username": org.manager.user.username, "password": "wrong"},
                ),
                401,
                "authentication_failed",
            ),
        }
    for what, (response, status, code) in answers.items():
        assert response.status_code == status, (what, response.text[:300])
        assert response.headers["content-type"].startswith("application/json"), what
        assert response.json()["error"]["code"] == code, what
    assert "POST" in answers["method"][0].headers["allow"]
    assert answers["password"][0].headers["www-authenticate"]


def test_a_submission_with_a_bad_active_time_and_a_bad_payload_names_both(org):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    client = org.client(Role.ANNOTATOR)
    assignment = client.post("/api/v1/claims/", {}, format="json").json()["id"]
    body = {
        "payload": {"boxes": [{"label": "car", "x": 650, "y": 0, "w": 5, "h": 5}]},
        "active_seconds": 3600,  # the task was claimed a moment ago
    }
    response = client.post(f"/api/v1/assignments/{assignment}/submit/", body, format="json")
    error = assert_envelope(response, 400, "invalid_input")
    assert {"active_seconds", "payload.boxes[0].x"} <= set(error["fields"])
    assert not Annotation.objects.exists()


def test_options_answers_whoever_may_call_some_method_of_the_view(org):
    # The claim is POST-only: OPTIONS is not refused to the annotators who may claim.
    response = org.client(Role.ANNOTATOR).options("/api/v1/claims/")
    assert response.status_code == 200, response.content
    assert "POST" in response["Allow"]
    assert_envelope(org.client(Role.REVIEWER).options("/api/v1/claims/"), 403, "permission_denied")


def test_the_profile_check_names_every_bad_language_and_field():
    with pytest.raises(ValidationFailed) as refused:
        validate_profile({"languages": ["english", "en", "xx_YY"], "timezone": "Mars/Olympus"})
    assert len(refused.value.fields["languages"]) == 2
    assert "timezone" in refused.value.fields
