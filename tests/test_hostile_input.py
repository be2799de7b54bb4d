"""Nothing a client sends crashes Assay or reaches PostgreSQL in a form it refuses.

Bodies are parsed by ``config.parsers`` (nesting, NUL, lone surrogates, integers beyond bigint,
size); query strings, path ids and timeouts are guarded by ``config.middleware``. Every refusal is
a 4xx in the error envelope that names the field, and changes nothing. The property test at the
end posts generated hostile bodies to every write operation the OpenAPI schema lists, so that a
new endpoint is covered without a line here.
"""

import json
import os
import time
import tracemalloc
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.errors import ErrorCode
from config.parsers import plainly_storable
from config.storable import bigint_problem, json_problems
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Role

pytestmark = pytest.mark.django_db

BOX = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 20, "h": 20}]}
RELATIONS_SCHEMA = {"labels": [{"name": "PER"}, {"name": "ORG"}], "relation_types": ["works_for"]}
TEXT_ROW = {"external_id": "t-1", "data": {"text": "Ada works for Babbage."}}
TRACKS_SCHEMA = {"labels": [{"name": "car"}]}
VIDEO_ROW = {"external_id": "v-1", "data": {"frame_count": 10, "width": 100, "height": 100}}


def fingerprint() -> tuple:
    """A digest of every row of every app table: any insert, update or delete changes it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND "
            "(tablename ~ '^(workforce|tasks|qa)_' OR tablename IN ('auth_user', "
            "'authtoken_token')) ORDER BY tablename"
        )
        tables = [row[0] for row in cursor.fetchall()]
        digests = ", ".join(
            f"(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
            f'FROM "{table}" x)'
            for table in tables
        )
        cursor.execute(f"SELECT {digests}")
        return tuple(zip(tables, cursor.fetchone(), strict=True))


def assert_envelope(response, status: int | None = None) -> dict:
    if status is not None:
        assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    error = response.json()["error"]
    assert error["code"] in ErrorCode._value2member_map_, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error


def post_raw(client, path: str, body: bytes | str, content_type="application/json", method="post"):
    return client.generic(method.upper(), path, body, content_type=content_type)


@pytest.fixture
def world(org):
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    claim = org.client(Role.ANNOTATOR).post("/api/v1/claims/", {}, format="json")
    assert claim.status_code == 201, claim.content
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    certification = services.certification_issue(
        annotator=org.annotator, domain=domain, issued_by=None, evidence="exam", expires_at=None
    )
    return {
        "projects": project.pk,
        "assignments": claim.json()["id"],
        "annotators": org.annotator.pk,
        "domains": domain.pk,
        "certifications": certification.pk,
    }


# --- nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deep_nesting_is_refused_fast_and_small_on_any_endpoint(org, world, depth):
    bodies = {
        "/api/v1/projects/": "[" * depth + "]" * depth,
        f"/api/v1/assignments/{world['assignments']}/submit/": '{"payload": '
        + '{"a": ' * depth
        + "1"
        + "}" * depth
        + "}",
        "/api/v1/claims/": '{"project": '
        + '[{"a": ' * (depth // 2)
        + "1"
        + "}]" * (depth // 2)
        + "}",
    }
    clients = [org.client(role) for role in (Role.MANAGER, Role.ANNOTATOR, Role.ANNOTATOR)]
    for client, (path, body) in zip(clients, bodies.items(), strict=True):
        before = fingerprint()
        tracemalloc.start()
        start = time.monotonic()
        response = post_raw(client, path, body)
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        error = assert_envelope(response)
        assert response.status_code == 400, (path, response.content[:300])
        assert any("deeper than 32" in r for rs in error["fields"].values() for r in rs), error
        # 100,000 levels in 200 KB: milliseconds and a few MB, not 20 GB.
        assert elapsed < 1.0, (path, elapsed)
        assert peak < 20 * 2**20, (path, peak)
        assert fingerprint() == before


def test_nesting_within_the_limit_is_read(org, world):
    deep = {"labels": [{"name": "car"}]}
    for _ in range(20):
        deep = {"x": deep}
    response = org.client(Role.MANAGER).post(
        "/api/v1/projects/", {"name": "p", "kind": "bbox", "label_schema": deep}, format="json"
    )
    # Read, and refused by the kind for what it says, not by the parser.
    error = assert_envelope(response, 400)
    assert "label_schema.x" in error["fields"]


# --- what PostgreSQL refuses ------------------------------------------------------------------


def _relations_world(org):
    project = make_project(org, kind="relations", schema=RELATIONS_SCHEMA, name="rel")
    import_rows(project, [TEXT_ROW])
    staff(project, org.annotator)
    client = org.client(Role.ANNOTATOR)
    claim = client.post("/api/v1/claims/", {"project": project.pk}, format="json")
    assert claim.status_code == 201, claim.content
    return client, claim.json()["id"]


@pytest.mark.parametrize("bad", ["\x00", "\ud800", "a\udfffb"])
def test_nul_and_lone_surrogates_are_refused_wherever_they_are(org, bad):
    manager = org.client(Role.MANAGER)
    label_schema = {"labels": [{"name": f"car{bad}"}]}
    cases = [
        (manager, "/api/v1/projects/", {"name": "p", "kind": "bbox", "label_schema": label_schema},
         "label_schema.labels[0].name"),
        (manager, "/api/v1/projects/", {"name": "p", "kind": "bbox", f"k{bad}": 1}, None),
        (manager, "/api/v1/domains/", {"slug": "s", "name": f"n{bad}"}, "name"),
    ]  # fmt: skip
    client, assignment = _relations_world(org)
    spans = [
        {"id": f"s{bad}", "start": 0, "end": 3, "label": "PER"},
        {"id": "s2", "start": 14, "end": 21, "label": "ORG"},
    ]
    relations = [{"from": f"s{bad}", "to": "s2", "label": "works_for"}]
    cases.append(
        (client, f"/api/v1/assignments/{assignment}/submit/",
         {"payload": {"spans": spans, "relations": relations}}, "payload.spans[0].id"),
    )  # fmt: skip
    for who, path, body, field in cases:
        before = fingerprint()
        # ensure_ascii writes a lone surrogate as the \ud800 escape a hostile client sends.
        response = post_raw(who, path, json.dumps(body))
        error = assert_envelope(response, 400)
        if field is not None:
            assert field in error["fields"], error
        assert fingerprint() == before


def test_kb_ids_and_track_ids_with_nul_are_refused(org):
    client = org.client(Role.ANNOTATOR)
    cases = [
        ("entity_linking", {"labels": []}, TEXT_ROW,
         {"spans": [{"start": 0, "end": 3, "kb_id": "Q\x007"}]}, "payload.spans[0].kb_id"),
        ("video_tracks", TRACKS_SCHEMA, VIDEO_ROW,
         {"tracks": [{"id": "t\x00", "label": "car",
                      "frames": [{"frame": 0, "x": 1, "y": 1, "w": 5, "h": 5}]}]},
         "payload.tracks[0].id"),
    ]  # fmt: skip
    for kind, schema, row, payload, field in cases:
        project = make_project(org, kind=kind, schema=schema, name=kind)
        import_rows(project, [row])
        staff(project, org.annotator)
        claim = client.post("/api/v1/claims/", {"project": project.pk}, format="json")
        assert claim.status_code == 201, claim.content
        before = fingerprint()
        response = client.post(
            f"/api/v1/assignments/{claim.json()['id']}/submit/", {"payload": payload}, format="json"
        )
        assert field in assert_envelope(response, 400)["fields"]
        assert fingerprint() == before


def test_nul_in_form_fields_and_query_strings_is_refused(org, world):
    manager = org.client(Role.MANAGER)
    before = fingerprint()
    form = post_raw(
        manager, "/api/v1/domains/", "slug=ok&name=a%00b", "application/x-www-form-urlencoded"
    )
    assert "name" in assert_envelope(form, 400)["fields"]
    multipart = post_raw(
        manager,
        "/api/v1/domains/",
        encode_multipart(BOUNDARY, {"slug": "ok", "name": "a\x00b"}),
        MULTIPART_CONTENT,
    )
    assert "name" in assert_envelope(multipart, 400)["fields"]
    for path in (
        "/api/v1/annotators/?username=%00",
        "/api/v1/annotators/?language=en%00",
        "/api/v1/certifications/?domain=%00",
        "/api/v1/audit-events/?target_type=a%00",
        "/api/v1/audit-events/?verb_prefix=%00",
        "/api/v1/projects/?search=%00",
        "/api/v1/projects/?%00=1",
    ):
        response = manager.get(path)
        assert assert_envelope(response, 400)["fields"], path
    assert fingerprint() == before


def test_nul_in_the_organization_header_or_the_token_is_refused(org, world):
    token = Token.objects.get_or_create(user=org.manager.user)[0].key
    before = fingerprint()
    for headers, field in (
        ({"HTTP_AUTHORIZATION": f"Token {token}", "HTTP_X_ORGANIZATION": "acme\x00"},
         "X-Organization"),
        ({"HTTP_AUTHORIZATION": "Token a\x00b", "HTTP_X_ORGANIZATION": "acme"}, "Authorization"),
    ):  # fmt: skip
        client = APIClient()
        client.credentials(**headers)
        response = client.post("/api/v1/domains/", {"slug": "s", "name": "n"}, format="json")
        assert field in assert_envelope(response, 400)["fields"]
    assert fingerprint() == before


def test_integers_beyond_the_columns_are_refused_naming_the_field(org, world):
    annotator = org.client(Role.ANNOTATOR)
    manager = org.client(Role.MANAGER)
    before = fingerprint()
    for value in (2**63, -(2**63) - 1, 10**30):
        response = annotator.post("/api/v1/claims/", {"project": value}, format="json")
        assert "project" in assert_envelope(response, 400)["fields"]
        response = post_raw(
            annotator, "/api/v1/claims/", f"project={value}", "application/x-www-form-urlencoded"
        )
        assert "project" in assert_envelope(response, 400)["fields"]
        response = manager.post(
            f"/api/v1/projects/{world['projects']}/members/", {"annotators": [value]}, format="json"
        )
        assert "annotators[0]" in assert_envelope(response, 400)["fields"]
    # 5,000 digits: more than Python itself converts.
    response = post_raw(annotator, "/api/v1/claims/", '{"project": ' + "9" * 5000 + "}")
    assert_envelope(response, 400)
    for path in (
        f"/api/v1/projects/{2**63}/",
        f"/api/v1/projects/{'9' * 5000}/",
        f"/api/v1/assignments/{2**64}/submit/",
        f"/api/v1/annotators/{2**63}/suspend/",
    ):
        response = manager.get(path) if "submit" not in path else annotator.post(path, {})
        assert_envelope(response, 404)
    for path, field in (
        ("/api/v1/assignments/?project=", "project"),
        ("/api/v1/annotations/?task=", "task"),
        ("/api/v1/certifications/?annotator=", "annotator"),
        ("/api/v1/audit-events/?target_id=", "target_id"),
    ):
        # An id is a whole number a bigint holds: 1.5 is refused, not read as 1.
        for value in (2**70, "1.5", "1e999999", "NaN"):
            response = manager.get(f"{path}{value}")
            assert field in assert_envelope(response, 400)["fields"], (path, value)
    assert fingerprint() == before


def test_unknown_api_paths_answer_in_the_envelope(org, world):
    manager = org.client(Role.MANAGER)
    for path in ("/api/v1/nowhere/", "/api/v1/projects/abc/", "/api/v1/projects/1/x/"):
        assert_envelope(manager.get(path), 404)
        assert_envelope(manager.post(path, {"a": 1}, format="json"), 404)


def test_an_uploaded_file_name_with_nul_is_refused(org, world):
    manager = org.client(Role.MANAGER)
    before = fingerprint()
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="rows\x00.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'
        '{"external_id": "a", "data": {"width": 1, "height": 1}}\n'
        f"\r\n--{BOUNDARY}--\r\n"
    ).encode()
    response = post_raw(
        manager, f"/api/v1/projects/{world['projects']}/tasks/import/", body, MULTIPART_CONTENT
    )
    # Django's upload handling keeps the name out of the database and the disk path.
    assert response.status_code in (202, 400), response.content[:300]
    if response.status_code >= 400:
        assert_envelope(response)
        assert fingerprint() == before


def test_bodies_that_are_not_json_are_refused(org, world):
    manager = org.client(Role.MANAGER)
    before = fingerprint()
    cases = [
        (b'{"name": "\xff\xfe", "kind": "bbox"}', "application/json"),
        (b'{"name": "x", "kind": "bbox"', "application/json"),
        (b'{"name": NaN, "kind": "bbox"}', "application/json"),
        (b'{"name": "x", "kind": "bbox"}', "application/json; charset=bogus"),
        (b'{"name": "x", "kind": "bbox"}', "application/json; charset=bz2_codec"),
        (b"<project/>", "application/xml"),
        (b"name=x", "text/plain"),
        (b"--x\r\n", "multipart/form-data"),
    ]
    for body, content_type in cases:
        response = post_raw(manager, "/api/v1/projects/", body, content_type)
        assert 400 <= response.status_code < 500, (body, response.content[:300])
        assert_envelope(response)
    assert fingerprint() == before


# --- every write operation, generated ---------------------------------------------------------


def _operations() -> list[tuple[str, str, list[str], list[str]]]:
    """(method, path template, content types, body field names) of every write operation."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            names: set[str] = set()
            for media in content.values():
                ref = media.get("schema", {}).get("$ref", "")
                body = components.get(ref.rsplit("/", 1)[-1], {})
                # A body typed per kind is a oneOf of one object per kind (tasks/openapi.py).
                for variant in [body, *body.get("oneOf", ())]:
                    variant = components.get(variant.get("$ref", "").rsplit("/", 1)[-1], variant)
                    names |= set(variant.get("properties", {}))
            operations.append((method, path, sorted(content), sorted(names)))
    return operations


OPERATIONS = _operations()

_bad_text = st.one_of(
    st.sampled_from(["\x00", "\ud800", "\udfff", "a\x00b", "\udbff\udc00\ud800", ""]),
    st.text(max_size=10).map(lambda s: s + "\x00"),
    st.text(max_size=10).map(lambda s: "\ud83d" + s),
    st.integers(1_000, 40_000).map(lambda n: "x" * n),
)
_bad_number = st.one_of(
    st.integers(2**63, 2**200),
    st.integers(-(2**200), -(2**63) - 1),
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63 - 1, -(2**63), 2**15, 2**31, -1, 0]),
)
_scalar = st.one_of(_bad_text, _bad_number, st.booleans(), st.none(), st.text(max_size=20))
_value = st.deferred(
    lambda: st.one_of(
        _scalar,
        st.lists(_value, max_size=3),
        st.dictionaries(st.one_of(_bad_text, st.text(max_size=8)), _value, max_size=3),
    )
)


NEST = "__nested__"


@st.composite
def _json_body(draw, names: list[str]):
    body = {}
    for name in draw(st.lists(st.sampled_from(names), unique=True)) if names else []:
        body[name] = draw(_value)
    body.update(draw(st.dictionaries(_bad_text, _value, max_size=2)))
    nested = draw(st.booleans())
    if nested:
        body[draw(st.sampled_from(names)) if names else "x"] = NEST
    text = json.dumps(body)  # ensure_ascii: lone surrogates go out as escapes
    if nested:
        depth = draw(st.integers(30, 3_000))
        text = text.replace(f'"{NEST}"', "[" * depth + json.dumps(draw(_value)) + "]" * depth)
    mangle = draw(st.sampled_from(["none", "none", "utf8", "digits", "truncate"]))
    raw = text.encode()
    if mangle == "utf8":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + raw[at:]
    elif mangle == "digits" and names:
        raw = json.dumps({draw(st.sampled_from(names)): 0}).encode().replace(b"0", b"9" * 5000)
    elif mangle == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def _form_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def _request(draw):
    method, template, content_types, names = draw(st.sampled_from(OPERATIONS))
    kind = draw(
        st.sampled_from(
            [*content_types, "application/json", "application/json", "text/plain", "bogus"]
        )
    )
    if kind == "application/x-www-form-urlencoded":
        fields = draw(st.dictionaries(st.sampled_from(names or ["x"]), _scalar, max_size=4))
        body = "&".join(
            f"{quote(k)}={quote(_form_value(v), errors='surrogatepass')}" for k, v in fields.items()
        )
    elif kind == "multipart/form-data":
        fields = draw(st.dictionaries(st.sampled_from(names or ["x"]), _bad_text, max_size=4))
        fields = {
            k: v.encode("utf-8", "surrogatepass").decode("latin-1") for k, v in fields.items()
        }
        body = encode_multipart(BOUNDARY, fields)
        kind = MULTIPART_CONTENT
    elif kind == "bogus":
        body, kind = draw(st.binary(max_size=64)), draw(st.sampled_from(["", "a/b", "text/html"]))
    else:
        body = draw(_json_body(names))
    ids = draw(st.sampled_from(["real", "real", "real", "huge", "zero"]))
    return method, template, kind, body, ids


ROLES = [Role.MANAGER, Role.ANNOTATOR, Role.QA_LEAD]


def _path(template: str, ids: str, world: dict) -> str:
    parts = template.split("/")
    out = []
    for i, part in enumerate(parts):
        if part == "{id}":
            part = {"real": str(world.get(parts[i - 1], 1)), "huge": str(2**64), "zero": "0"}[ids]
        elif part == "{skill}":
            part = "bbox"
        out.append(part)
    return "/".join(out)


@pytest.mark.parametrize("role", ROLES)
def test_hostile_bodies_to_every_write_operation(org, world, role):
    """Never a 5xx; a 4xx is the error envelope and leaves every table as it was."""
    assert len(OPERATIONS) >= 20  # the schema lists the write operations
    client = org.client(role)

    @settings(
        max_examples=int(os.environ.get("HOSTILE_EXAMPLES", 150)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=_request())
    def check(request):
        method, template, content_type, body, ids = request
        path = _path(template, ids, world)
        before = fingerprint()
        response = client.generic(method.upper(), path, body, content_type=content_type)
        assert response.status_code < 500, (method, path, body[:200], response.content[:500])
        if response.status_code >= 400:
            assert_envelope(response)
            assert fingerprint() == before, (method, path, body[:200], response.status_code)

    check()


def _read_operations() -> list[tuple[str, list[str]]]:
    """(path template, query parameter names) of every read operation."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, [p["name"] for p in op.get("parameters", []) if p["in"] == "query"])
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
        if method == "get"
    ]


READ_OPERATIONS = _read_operations()
_query_value = st.one_of(
    _bad_text.map(lambda s: s.encode("utf-8", "surrogatepass").decode("latin-1")[:200]),
    _bad_number.map(str),
    st.sampled_from(["NaN", "-Infinity", "1e999999", "1.5", "-0", "", "9" * 5000, "%"]),
)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANNOTATOR])
def test_hostile_query_strings_to_every_read_operation(org, world, role):
    """Never a 5xx, and a 4xx is the error envelope."""
    client = org.client(role)

    @settings(
        max_examples=int(os.environ.get("HOSTILE_EXAMPLES", 100)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(operation=st.sampled_from(READ_OPERATIONS), data=st.data())
    def check(operation, data):
        template, names = operation
        keys = st.sampled_from([*names, "page", "page_size", "\x00"])
        params = data.draw(st.dictionaries(keys, _query_value, max_size=4))
        query = "&".join(
            f"{quote(k)}={quote(v, errors='surrogatepass')}" for k, v in params.items()
        )
        path = _path(template, data.draw(st.sampled_from(["real", "huge"])), world)
        response = client.get(f"{path}?{query}")
        assert response.status_code < 500, (path, query[:200], response.content[:500])
        if response.status_code >= 400:
            assert_envelope(response)

    check()


@st.composite
def _nested(draw):
    value = draw(_value)
    for _ in range(draw(st.integers(0, 40))):
        # Lists and objects alternate at random: the check must count every level once.
        value = [value] if draw(st.booleans()) else {draw(st.text(max_size=3)): value}
    return value


@settings(max_examples=500, deadline=None, database=None)
@given(value=_nested(), ensure_ascii=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_parsers_fast_check_never_passes_what_the_walk_refuses(value, ensure_ascii, indent):
    """``plainly_storable`` reads the text only; whenever it passes a body, walking the parsed
    value finds nothing either."""
    try:
        # A lone surrogate written raw is not UTF-8: the parser refuses it before this check.
        raw = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    except ValueError:  # and json.dumps cannot write integers of over 4,300 digits
        return
    if plainly_storable(raw, "utf-8"):
        assert not json_problems(value), raw[:200]
        assert all(type(n) is not int or not bigint_problem(n) for n in _numbers(value))


def _numbers(value):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item
