"""The server's input rules are in the OpenAPI schema, and the server keeps the schema's word.

Each rule schemathesis found unstated (or stated and not kept) is pinned here on its own:
the schema says it, a request breaking it is a 400 naming the field that changes nothing, and
a response the rule allows conforms.
"""

import re

import pytest

from tasks.models import Project
from tests.helpers import make_project
from workforce import services
from workforce.models import Role

pytestmark = pytest.mark.django_db

SCHEMA_ACCEPT = "application/vnd.oai.openapi+json"


def openapi(client) -> dict:
    return client.get("/api/schema/", HTTP_ACCEPT=SCHEMA_ACCEPT).json()


def component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def error_fields(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]["fields"]


@pytest.mark.parametrize("value", [False, True])
def test_a_boolean_is_not_a_gold_rate(org, value):
    client = org.client(Role.MANAGER)
    body = {"name": "P", "kind": "bbox", "label_schema": {"labels": [{"name": "car"}]}}
    fields = error_fields(client.post("/api/v1/projects/", {**body, "gold_rate": value}))
    assert list(fields) == ["gold_rate"]
    assert not Project.objects.exists()
    project = make_project(org)
    fields = error_fields(client.patch(f"/api/v1/projects/{project.pk}/", {"gold_rate": value}))
    assert list(fields) == ["gold_rate"]
    project.refresh_from_db()
    assert project.gold_rate == 0


def test_the_schema_states_a_projects_ranges_and_its_label_schema(org):
    client = org.client(Role.MANAGER)
    schema = openapi(client)
    for name in ("BboxProjectFieldsRequest", "PatchedProjectUpdateFieldsRequest"):
        fields = component(schema, name)["properties"]
        assert (fields["overlap"]["minimum"], fields["overlap"]["maximum"]) == (1, 10)
        assert (fields["gold_rate"]["minimum"], fields["gold_rate"]["maximum"]) == (0, 1)
        assert (fields["lease_seconds"]["minimum"], fields["lease_seconds"]["maximum"]) == (
            60,
            7 * 86_400,
        )
        assert fields["max_concurrent_tasks"]["maximum"] == 1000
    # Every kind's schema lists labels: a new project needs one.
    assert "label_schema" in component(schema, "BboxProjectFieldsRequest")["required"]
    body = {"name": "P", "kind": "ner"}
    assert "label_schema" in error_fields(client.post("/api/v1/projects/", body))
    body = {**body, "label_schema": {"labels": [{"name": "PER"}]}}
    for overlap, status in [(0, 400), (11, 400), (10, 201)]:
        response = client.post("/api/v1/projects/", {**body, "overlap": overlap})
        assert response.status_code == status, response.content
    assert Project.objects.get().overlap == 10


def test_a_profile_keeps_the_ranges_and_patterns_the_schema_states(org):
    client = org.client(Role.MANAGER)
    schema = openapi(client)
    fields = component(schema, "MemberCreateInputRequest")["properties"]
    assert fields["weekly_capacity_hours"]["maximum"] == 168
    assert fields["max_concurrent_tasks"]["minimum"] == 1
    assert fields["languages"]["items"]["pattern"] == "^[a-z]{2,3}(-[A-Z]{2})?$"
    assert fields["username"]["pattern"] == r"^[\w.+-]+$"
    # The empty default of an optional email is no email: the schema offers none.
    assert "default" not in fields["email"]
    body = {"username": "ana", "role": "annotator"}
    assert "weekly_capacity_hours" in error_fields(
        client.post("/api/v1/members/", {**body, "weekly_capacity_hours": 169})
    )
    assert "languages.0" in error_fields(
        client.post("/api/v1/members/", {**body, "languages": ["English"]})
    )
    assert not org.organization.members.filter(user__username="ana@acme").exists()
    patch = client.patch(
        f"/api/v1/annotators/{org.annotator.pk}/", {"max_concurrent_tasks": 0}, format="json"
    )
    assert "max_concurrent_tasks" in error_fields(patch)


@pytest.mark.parametrize("reason", ["   ", "\ufeff", "\x1c\x1d"])
def test_a_reason_of_white_space_alone_is_refused_as_the_schema_says(org, reason):
    client = org.client(Role.QA_LEAD)
    pattern = component(openapi(client), "ReasonInputRequest")["properties"]["reason"]["pattern"]
    # The schema's pattern refuses the reason, as the server does (ECMA-262 reads it alike).
    assert not re.search(pattern, reason) and re.search(pattern, f"{reason}ok")
    response = client.post(f"/api/v1/annotators/{org.annotator.pk}/suspend/", {"reason": reason})
    assert "reason" in error_fields(response)
    org.annotator.refresh_from_db()
    assert org.annotator.status == "active"


def test_what_may_be_null_is_nullable_in_the_schema(org):
    client = org.client(Role.QA_LEAD)
    schema = openapi(client)
    assert component(schema, "CertificationOut")["properties"]["issued_by"]["nullable"] is True
    assert component(schema, "TaskImportOut")["properties"]["created_by"]["nullable"] is True
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    # Issued by the system (an exam), so by nobody.
    certification = services.certification_issue(
        annotator=org.annotator, domain=domain, issued_by=None, evidence="exam", expires_at=None
    )
    body = client.get(f"/api/v1/certifications/{certification.pk}/").json()
    assert body["issued_by"] is None


def test_request_bodies_are_documented_as_json_and_the_upload_as_multipart(org):
    schema = openapi(org.client(Role.MANAGER))
    media = {
        (path, method): set(operation["requestBody"]["content"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "requestBody" in operation
    }
    upload = ("/api/v1/projects/{id}/tasks/import/", "post")
    assert media.pop(upload) == {"multipart/form-data"}
    assert media and all(types == {"application/json"} for types in media.values()), media


def test_id_filters_are_integers_in_the_schema_and_on_the_server(org):
    client = org.client(Role.MANAGER)
    parameters = {
        p["name"]: p["schema"]
        for p in openapi(client)["paths"]["/api/v1/annotations/"]["get"]["parameters"]
    }
    assert parameters["task"]["type"] == "integer" and parameters["task"]["minimum"] == 1
    assert "task" in error_fields(client.get("/api/v1/annotations/?task=1.5"))
    assert client.get("/api/v1/annotations/?task=1").status_code == 200


@pytest.mark.parametrize("value", ["lots", "0", "501", "true", "-1"])
def test_a_page_size_out_of_the_schemas_range_is_refused(org, value):
    client = org.client(Role.MANAGER)
    parameters = {
        p["name"]: p["schema"]
        for p in openapi(client)["paths"]["/api/v1/domains/"]["get"]["parameters"]
    }
    assert (parameters["page_size"]["minimum"], parameters["page_size"]["maximum"]) == (1, 500)
    assert list(error_fields(client.get(f"/api/v1/domains/?page_size={value}"))) == ["page_size"]
    assert client.get("/api/v1/domains/?page_size=500").status_code == 200


def test_a_yes_or_no_filter_refuses_other_words(org):
    client = org.client(Role.MANAGER)
    assert "system" in error_fields(client.get("/api/v1/audit-events/?system=maybe"))
    assert client.get("/api/v1/audit-events/?system=true").status_code == 200
    assert client.get("/api/v1/audit-events/?system=false").status_code == 200


def test_the_schema_bounds_active_seconds(org):
    schema = openapi(org.client(Role.ANNOTATOR))
    body = schema["paths"]["/api/v1/assignments/{id}/submit/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert component(schema, ref)["properties"]["active_seconds"]["maximum"] == 86_400


def test_each_accept_header_gets_its_own_renderer_however_often_it_comes(org):
    """The renderer chosen for a header is remembered (``config.negotiation``): the same header
    gets the same answer every time, and another header its own."""
    client = org.client(Role.ANNOTATOR)
    for _ in range(3):
        as_json = client.get("/api/v1/me/", HTTP_ACCEPT="application/json")
        assert as_json.status_code == 200 and as_json["Content-Type"] == "application/json"
        as_page = client.get("/api/v1/me/", HTTP_ACCEPT="text/html")
        assert as_page.status_code == 200 and as_page["Content-Type"].startswith("text/html")
        nothing = client.get("/api/v1/me/", HTTP_ACCEPT="image/png")
        assert nothing.status_code == 406
        assert nothing.json()["error"]["code"] == "not_acceptable"
