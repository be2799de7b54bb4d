"""The OpenAPI schema is the API's contract: valid, and saying what the server does.

The schema is generated as ``manage.py spectacular`` writes it. Lists must be described as the
paginated envelope they answer, every operation must list the errors it can answer with the
error envelope, kinds must be typed, ids must be integers. A real page and real errors are
checked against it too, so the description cannot drift from the answers.
"""

import json

import pytest
from django.core.management import call_command
from django.urls import resolve
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from config import openapi
from config.errors import ErrorCode
from tasks.kinds import KINDS
from tests.helpers import Org
from workforce import tenancy

METHODS = ("get", "post", "put", "patch", "delete")
ENVELOPE = {"count", "next", "previous", "results"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("schema") / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out))
    return json.loads(out.read_text())


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def view_of(path: str):
    """The view class serving a schema path (ids filled in)."""
    url = path.replace("{id}", "1").replace("{skill}", "bbox")
    for name in ("import_id", "annotator_id", "task_id", "member_id"):
        url = url.replace("{" + name + "}", "1")
    return resolve(url).func.view_class


def component(schema: dict, ref: dict) -> dict:
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def inline_refs(schema: dict, node):
    """The node with every component reference replaced by the component (no cycles here)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline_refs(schema, component(schema, node))
        return {key: inline_refs(schema, value) for key, value in node.items()}
    if isinstance(node, list):
        return [inline_refs(schema, item) for item in node]
    return node


def kind_name(key: str) -> str:
    return "".join(word.capitalize() for word in key.split("_"))


def test_the_schema_passes_openapi_spec_validator(schema):
    validate(schema)  # raises on the first problem, e.g. "'' is not a 'email'"
    assert len(list(operations(schema))) >= 40


def test_every_paged_list_answers_the_envelope_with_page_size_and_filters(schema):
    paged = 0
    for path, method, operation in operations(schema):
        if method != "get":
            continue
        view = view_of(path)
        body = operation["responses"]["200"]["content"].get("application/json", {}).get("schema")
        resolved = inline_refs(schema, body) if body else {}
        if resolved.get("type") == "array":
            # A bare array is a list the view cannot page: it has no pagination class.
            assert getattr(view, "pagination_class", None) is None, path
            continue
        if not set(resolved.get("properties", {})) >= ENVELOPE:
            continue
        paged += 1
        assert getattr(view, "pagination_class", None) is not None, path
        assert resolved["properties"]["results"]["type"] == "array", path
        assert resolved["properties"]["count"]["type"] == "integer", path
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert {"page", "page_size"} <= query, path
        filterset = getattr(view, "filterset_class", None)
        if filterset is not None:
            assert set(filterset.base_filters) <= query, (path, set(filterset.base_filters) - query)
    assert paged >= 12
    # The lists filters apply to, by name: the filterset's parameters are there.
    annotators = schema["paths"]["/api/v1/annotators/"]["get"]["parameters"]
    skill = next(p for p in annotators if p["name"] == "skill")
    assert set(skill["schema"]["enum"]) == set(KINDS)
    # What a filter's form field checks is stated: ids are whole numbers from 1.
    audit = schema["paths"]["/api/v1/audit-events/"]["get"]["parameters"]
    actor = next(p for p in audit if p["name"] == "actor")
    assert actor["schema"]["type"] == "integer" and actor["schema"]["minimum"] == 1
    assert actor["allowEmptyValue"] is True  # an empty value is no filter


def test_every_operation_documents_its_error_statuses_with_the_envelope(schema):
    assert openapi.ORGANIZATION_HEADER == tenancy.ORGANIZATION_HEADER
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        errors = {int(code) for code in responses if code[0] in "45"}
        for code in errors:
            content = responses[str(code)]["content"]
            assert content["application/json"]["schema"] == ERROR_REF, (path, method, code)
            assert responses[str(code)]["description"], (path, method, code)
        parameters = operation.get("parameters", [])
        where = (path, method, sorted(errors))
        assert 503 in errors, where
        assert "Retry-After" in responses["503"]["headers"], where
        if {} not in operation.get("security", [{}]):
            assert {400, 401, 429} <= errors, where
        if "requestBody" in operation:
            assert {400, 413, 415} <= errors, where
        if any(p["in"] == "path" for p in parameters):
            assert 404 in errors, where
        if any(p["name"] == "X-Organization" for p in parameters):
            assert {400, 404} <= errors, where
    paths = schema["paths"]
    # Roles restrict these; nobody is refused reading themselves.
    assert "403" in paths["/api/v1/domains/"]["post"]["responses"]
    assert "403" in paths["/api/v1/audit-events/"]["get"]["responses"]
    assert "403" not in paths["/api/v1/me/"]["get"]["responses"]
    assert "403" not in paths["/api/v1/domains/"]["get"]["responses"]
    # The services' conflicts.
    for path, method in [
        ("/api/v1/domains/{id}/", "delete"),
        ("/api/v1/projects/{id}/", "patch"),
        ("/api/v1/assignments/{id}/submit/", "post"),
        ("/api/v1/assignments/{id}/heartbeat/", "post"),
        ("/api/v1/certifications/{id}/revoke/", "post"),
        ("/api/v1/annotators/{id}/suspend/", "post"),
    ]:
        assert "409" in paths[path][method]["responses"], (path, method)
    assert "409" not in paths["/api/v1/domains/{id}/"]["get"]["responses"]
    # Authentication itself: wrong credentials, and too many of them.
    assert {"400", "401", "429"} <= set(paths["/api/v1/auth/token/"]["post"]["responses"])
    envelope = inline_refs(schema, ERROR_REF)
    assert envelope["required"] == ["error"]
    assert set(envelope["properties"]["error"]["required"]) == {"code", "message", "fields"}
    codes = schema["components"]["schemas"]["ErrorCodeEnum"]
    assert set(codes["enum"]) == set(ErrorCode)
    code = schema["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
    assert "#/components/schemas/ErrorCodeEnum" in json.dumps(code)


def test_label_schemas_and_payloads_are_typed_per_kind(schema):
    components = schema["components"]["schemas"]
    payload_refs, label_schema_refs = [], []
    for key, kind in KINDS.items():
        payload = components[f"{kind_name(key)}Payload"]
        label_schema = components[f"{kind_name(key)}LabelSchema"]
        assert payload["properties"] == kind.payload_shape["properties"], key
        assert label_schema["properties"] == kind.label_schema_shape["properties"], key
        payload_refs.append({"$ref": f"#/components/schemas/{kind_name(key)}Payload"})
        label_schema_refs.append({"$ref": f"#/components/schemas/{kind_name(key)}LabelSchema"})
    box = components["BboxPayload"]["properties"]["boxes"]["items"]
    assert set(box["required"]) == {"label", "x", "y", "w", "h"}
    assert box["properties"]["w"]["exclusiveMinimum"] is True
    # The kind is in the request: one alternative per kind, told apart by it.
    create = components["ProjectFieldsRequest"]
    assert create["discriminator"]["propertyName"] == "kind"
    assert set(create["discriminator"]["mapping"]) == set(KINDS)
    for key, ref in create["discriminator"]["mapping"].items():
        variant = inline_refs(schema, {"$ref": ref})
        assert variant["properties"]["kind"]["enum"] == [key]
        assert "kind" in variant["required"]
        expected = inline_refs(
            schema, {"$ref": f"#/components/schemas/{kind_name(key)}LabelSchema"}
        )
        assert variant["properties"]["label_schema"] == expected
    assert len(create["oneOf"]) == len(KINDS)
    # The kind is not in the request: any kind's shape.
    assert components["SubmitInputRequest"]["properties"]["payload"]["anyOf"] == payload_refs
    assert components["AnnotationOut"]["properties"]["payload"]["anyOf"] == payload_refs
    assert components["ProjectOut"]["properties"]["label_schema"]["anyOf"] == label_schema_refs
    claimed = inline_refs(schema, components["ClaimOut"]["properties"]["project"])["allOf"][0]
    assert claimed["properties"]["label_schema"]["anyOf"] == inline_refs(schema, label_schema_refs)
    update = components["PatchedProjectUpdateFieldsRequest"]["properties"]["label_schema"]
    assert update["anyOf"] == label_schema_refs


def test_the_kind_enum_and_export_formats_are_named_and_typed(schema):
    components = schema["components"]["schemas"]
    assert "SkillEnum" not in components
    assert set(components["KindEnum"]["enum"]) == set(KINDS)
    export = schema["paths"]["/api/v1/projects/{id}/export/"]["get"]
    fmt = next(p for p in export["parameters"] if p["name"] == "format")
    formats = {f.name: f.media_type for kind in KINDS.values() for f in kind.export_formats}
    assert set(fmt["schema"]["enum"]) == set(formats)
    assert set(export["responses"]["200"]["content"]) == set(formats.values())


def test_path_ids_are_integers(schema):
    ids = 0
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] != "skill":
                ids += 1
                assert parameter["schema"]["type"] == "integer", (path, method, parameter)
    assert ids >= 25


@pytest.mark.django_db
def test_a_real_page_and_real_errors_conform_to_the_schema(schema):
    org = Org("acme")
    manager = org.client("manager")
    manager.post("/api/v1/domains/", {"slug": "legal", "name": "Legal"}, format="json")
    paths = schema["paths"]

    def conforms(response, path: str, method: str) -> dict:
        documented = paths[path][method]["responses"][str(response.status_code)]
        body_schema = inline_refs(schema, documented["content"]["application/json"]["schema"])
        OAS30Validator(body_schema).validate(response.json())
        return response.json()

    page = conforms(manager.get("/api/v1/domains/?page_size=1"), "/api/v1/domains/", "get")
    assert page["count"] == 1 and page["results"][0]["slug"] == "legal"
    missing = conforms(manager.get("/api/v1/domains/999999/"), "/api/v1/domains/{id}/", "get")
    assert missing["error"]["code"] == "not_found"
    bad = manager.post("/api/v1/domains/", {"slug": "no spaces"}, format="json")
    assert set(conforms(bad, "/api/v1/domains/", "post")["error"]["fields"]) == {"slug", "name"}
    # A filter's stated rules are the server's: an empty value is none, 0 is no id.
    audit = "/api/v1/audit-events/"
    assert conforms(manager.get(f"{audit}?actor=&page="), audit, "get")["count"] >= 1
    assert "actor" in conforms(manager.get(f"{audit}?actor=0"), audit, "get")["error"]["fields"]
    forbidden = org.client("annotator").post("/api/v1/domains/", {}, format="json")
    assert conforms(forbidden, "/api/v1/domains/", "post")["error"]["code"] == "permission_denied"
