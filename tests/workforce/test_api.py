"""Workforce REST API: behaviour, bad input, tenancy, filters, query counts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from workforce import services
from workforce.models import AnnotatorSkill, AuditEvent, Certification, Domain, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(org):
    return services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )


def certify(org, annotator, domain, **kwargs):
    return services.certification_issue(
        annotator=annotator,
        domain=domain,
        issued_by=org.qa_lead.user,
        evidence="exam",
        expires_at=kwargs.get("expires_at"),
    )


def assert_error(response, status: int, field: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] and body["error"]["message"]
    if field is not None:
        assert field in body["error"]["fields"], body


def test_token_login_then_api_access():
    org_data = services.organization_create(name="Solo", slug="solo")
    services.member_create(
        organization=org_data, username="solo", role=Role.MANAGER, actor=None, password="pw-123456"
    )
    client = APIClient()
    # The account carries its organization in its login.
    response = client.post(
        "/api/v1/auth/token/", {"username": "solo@solo", "password": "pw-123456"}
    )
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    # A single membership needs no organization header.
    me = client.get("/api/v1/me/").json()
    assert me["memberships"][0]["organization"] == "solo"
    assert client.get("/api/v1/annotators/").status_code == 200


def test_wrong_password_is_a_401_with_a_challenge():
    response = APIClient().post("/api/v1/auth/token/", {"username": "x", "password": "y"})
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Token"


def test_anonymous_requests_are_refused(org):
    response = APIClient().get("/api/v1/annotators/")
    # The token scheme comes first, so the client is told how to authenticate.
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Token"


def test_a_user_in_two_organizations_must_name_one(org, other_org):
    services.member_join(
        organization=other_org.organization,
        user=org.manager.user,
        role=Role.ANNOTATOR,
        actor=None,
    )
    client = APIClient()
    client.force_authenticate(org.manager.user)
    assert_error(client.get("/api/v1/annotators/"), 400, "X-Organization")
    client.credentials(HTTP_X_ORGANIZATION="globex")
    listed = client.get("/api/v1/annotators/").json()["results"]
    # In globex the same user is an annotator and sees only their own profile.
    assert [a["username"] for a in listed] == [org.manager.user.username]
    client.credentials(HTTP_X_ORGANIZATION="nowhere")
    assert_error(client.get("/api/v1/annotators/"), 404)


def test_manager_adds_an_annotator_with_a_profile(org):
    response = org.client(Role.MANAGER).post(
        "/api/v1/members/",
        {
            "username": "ana",
            "role": "annotator",
            "email": "ana@example.com",
            "languages": ["pt-BR"],
            "timezone": "America/Sao_Paulo",
            "weekly_capacity_hours": 30,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    annotators = org.client(Role.MANAGER).get("/api/v1/annotators/?username=ana@acme").json()
    assert annotators["results"][0]["timezone"] == "America/Sao_Paulo"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x", "role": "boss"}, "role"),
        ({"username": "bad name!", "role": "annotator"}, "username"),
        ({"username": "x", "role": "annotator", "timezone": "Nowhere/City"}, "timezone"),
        ({"username": "x", "role": "annotator", "languages": ["English"]}, "languages.0"),
        (
            {"username": "x", "role": "annotator", "weekly_capacity_hours": "lots"},
            "weekly_capacity_hours",
        ),
        ({"role": "annotator"}, "username"),
    ],
)
def test_bad_member_input_is_a_400_naming_the_field_and_changes_nothing(org, body, field):
    members_before = org.organization.members.count()
    events_before = AuditEvent.objects.count()
    response = org.client(Role.MANAGER).post("/api/v1/members/", body, format="json")
    assert_error(response, 400, field)
    assert org.organization.members.count() == members_before
    assert AuditEvent.objects.count() == events_before


def test_set_skill_level_and_read_it_back(org):
    client = org.client(Role.QA_LEAD)
    url = f"/api/v1/annotators/{org.annotator.pk}/skills/bbox/"
    response = client.put(url, {"level": 3, "reason": "exam"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["level"] == 3
    detail = client.get(f"/api/v1/annotators/{org.annotator.pk}/").json()
    assert detail["skills"] == [
        {"skill": "bbox", "level": 3, "source": "manual", "set_at": detail["skills"][0]["set_at"]}
    ]


@pytest.mark.parametrize(
    ("skill", "body", "field"),
    [
        ("bbox", {"level": 7}, "level"),
        ("bbox", {"level": "high"}, "level"),
        ("bbox", {}, "level"),
        ("lidar", {"level": 2}, "skill"),
        ("bbox", {"level": 2, "source": "vibes"}, "source"),
    ],
)
def test_bad_skill_input_is_a_400_and_changes_nothing(org, skill, body, field):
    url = f"/api/v1/annotators/{org.annotator.pk}/skills/{skill}/"
    assert_error(org.client(Role.QA_LEAD).put(url, body, format="json"), 400, field)
    assert not AnnotatorSkill.objects.exists()
    assert not AuditEvent.objects.filter(verb="skill.set").exists()


def test_issue_and_act_on_a_certification_through_the_api(org, domain):
    client = org.client(Role.QA_LEAD)
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    response = client.post(
        "/api/v1/certifications/",
        {
            "annotator": org.annotator.pk,
            "domain": "legal",
            "evidence": "exam",
            "expires_at": expires,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert response.json()["status"] == "active"
    again = client.post(
        "/api/v1/certifications/",
        {"annotator": org.annotator.pk, "domain": "legal", "evidence": "exam"},
        format="json",
    )
    assert_error(again, 409)
    suspended = client.post(f"/api/v1/certifications/{pk}/suspend", {"reason": "audit"})
    assert suspended.json()["status"] == "suspended"
    assert_error(client.post(f"/api/v1/certifications/{pk}/suspend", {"reason": "x"}), 409)
    assert_error(client.post(f"/api/v1/certifications/{pk}/reinstate", {}), 400, "reason")
    assert (
        client.post(f"/api/v1/certifications/{pk}/reinstate", {"reason": "ok"}).status_code == 200
    )
    renewed = client.post(
        f"/api/v1/certifications/{pk}/renew",
        {"expires_at": (timezone.now() + timedelta(days=365)).isoformat()},
        format="json",
    )
    assert renewed.status_code == 200
    revoked = client.post(f"/api/v1/certifications/{pk}/revoke", {"reason": "fraud"})
    assert revoked.json()["status"] == "revoked"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domain": "legal", "evidence": "e"}, "annotator"),
        ({"annotator": 999999, "domain": "legal", "evidence": "e"}, "annotator"),
        ({"annotator": "ANNOTATOR", "domain": "nope", "evidence": "e"}, "domain"),
        ({"annotator": "ANNOTATOR", "domain": "legal", "evidence": ""}, "evidence"),
        (
            {"annotator": "ANNOTATOR", "domain": "legal", "evidence": "e", "expires_at": "soon"},
            "expires_at",
        ),
        (
            {
                "annotator": "ANNOTATOR",
                "domain": "legal",
                "evidence": "e",
                "expires_at": "2001-01-01T00:00:00Z",
            },
            "expires_at",
        ),
    ],
)
def test_bad_certification_input_is_a_400_and_changes_nothing(org, domain, body, field):
    body = {k: (org.annotator.pk if v == "ANNOTATOR" else v) for k, v in body.items()}
    response = org.client(Role.QA_LEAD).post("/api/v1/certifications/", body, format="json")
    assert_error(response, 400, field)
    assert not Certification.objects.exists()


def test_lapsed_certification_reads_expired_before_the_job(org, domain):
    certification = certify(org, org.annotator, domain)
    Certification.objects.filter(pk=certification.pk).update(
        issued_at=timezone.now() - timedelta(days=3), expires_at=timezone.now() - timedelta(days=1)
    )
    client = org.client(Role.QA_LEAD)
    assert client.get(f"/api/v1/certifications/{certification.pk}/").json()["status"] == "expired"
    assert client.get("/api/v1/certifications/?status=active").json()["count"] == 0
    assert client.get("/api/v1/certifications/?status=expired").json()["count"] == 1
    assert client.get("/api/v1/annotators/?domain=legal").json()["count"] == 0


def test_annotator_filters(org, domain):
    skilled = org.add_annotator("skilled", languages=["ja", "en"])
    services.annotator_skill_set(
        annotator=skilled, skill="bbox", level=4, source="exam", actor=None
    )
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=2, source="exam", actor=None
    )
    certify(org, skilled, domain)
    client = org.client(Role.MANAGER)

    def usernames(query):
        response = client.get(f"/api/v1/annotators/?{query}")
        assert response.status_code == 200, response.content
        return sorted(a["username"] for a in response.json()["results"])

    # Annotators are listed by login.
    assert usernames("skill=bbox&min_level=3") == ["skilled@acme"]
    assert usernames("skill=bbox&min_level=2") == ["acme-annotator@acme", "skilled@acme"]
    assert usernames("domain=legal") == ["skilled@acme"]
    assert usernames("language=ja") == ["skilled@acme"]
    assert usernames("language=j") == []
    services.annotator_set_status(annotator=skilled, action="suspend", actor=None, reason="x")
    assert usernames("status=suspended") == ["skilled@acme"]
    assert_error(client.get("/api/v1/annotators/?min_level=3"), 400, "skill")
    assert_error(client.get("/api/v1/annotators/?skill=lidar"), 400, "skill")
    assert_error(client.get("/api/v1/annotators/?status=sleeping"), 400, "status")


def test_annotator_list_query_count_does_not_grow_with_the_page(org, domain):
    client = org.client(Role.MANAGER)

    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/annotators/?page_size=100")
        assert response.status_code == 200, response.content
        return len(queries), len(response.json()["results"])

    baseline, rows = count_queries()
    for i in range(15):
        annotator = org.add_annotator(f"extra{i}")
        services.annotator_skill_set(
            annotator=annotator, skill="ner", level=3, source="exam", actor=None
        )
        certify(org, annotator, domain)
    # Fifteen more annotators with skills and certifications on the page, not one more query.
    assert count_queries() == (baseline, rows + 15)


def test_audit_log_lists_and_filters_but_offers_no_way_to_change_it(org, domain):
    services.annotator_set_status(
        annotator=org.annotator, action="suspend", actor=org.qa_lead.user, reason="low gold"
    )
    client = org.client(Role.QA_LEAD)
    events = client.get(f"/api/v1/audit-events/?annotator={org.annotator.pk}").json()["results"]
    assert events[0]["verb"] == "annotator.suspended"
    assert events[0]["actor"] == org.qa_lead.user.username
    assert events[0]["reason"] == "low gold"
    system = client.get("/api/v1/audit-events/?system=true").json()["results"]
    assert system and all(e["actor"] == "system" for e in system)
    assert_error(client.get("/api/v1/audit-events/?since=yesterday"), 400, "since")
    for method in ("put", "patch", "delete", "post"):
        response = getattr(client, method)("/api/v1/audit-events/")
        # The log has no method that writes: whoever asks is told which methods there are.
        assert response.status_code == 405, (method, response.content)
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert "GET" in response["Allow"]


def test_domain_crud(org):
    client = org.client(Role.MANAGER)
    created = client.post("/api/v1/domains/", {"slug": "legal", "name": "Legal"}, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    assert_error(client.post("/api/v1/domains/", {"slug": "legal", "name": "x"}), 400, "slug")
    assert_error(client.post("/api/v1/domains/", {"slug": "Not a slug", "name": "x"}), 400, "slug")
    assert client.patch(f"/api/v1/domains/{pk}/", {"name": "Law"}).json()["name"] == "Law"
    assert client.delete(f"/api/v1/domains/{pk}/").status_code == 204
    assert not Domain.objects.exists()


def test_api_docs_and_schema_load_without_network(client, settings):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/certifications/{id}/suspend" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    # Swagger UI is served from our own static files, never from a CDN.
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


def test_openapi_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    assert "/api/v1/claims/" in schema and "/api/v1/projects/{id}/staffing" in schema
