"""Schemathesis over every operation of the OpenAPI schema, against the live server.

Each operation gets a bounded number of generated requests as a manager, a QA lead and an
annotator, in a seeded organization whose ids the requests use, so that they reach real
objects. Every answer must be no 5xx, have a documented status and content type, and conform
to the schema; a request the schema allows must not be refused as invalid (the schema states
the server's rules). A second pass sends requests the schema forbids: each must be refused.

``ASSAY_SCHEMATHESIS_EXAMPLES`` raises the examples per operation and role for deeper local
runs (the default keeps the file under a minute); ``ASSAY_SCHEMATHESIS_SEED`` draws other
examples than CI's.
"""

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tasks.services.claims import claim_next
from tasks.services.imports import task_import_start
from tests.helpers import Org, asgi_server, image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Role

EXAMPLES = int(os.environ.get("ASSAY_SCHEMATHESIS_EXAMPLES", "3"))
SEED = os.environ.get("ASSAY_SCHEMATHESIS_SEED")

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = (Role.MANAGER, Role.QA_LEAD, Role.ANNOTATOR)


@dataclass
class World:
    """One organization with a project of each common kind, tasks, a claim and the rest."""

    org: Org
    ids: dict[str, int]
    victim_annotator: int
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {
            "Authorization": f"Token {self.tokens[role]}",
            "X-Organization": self.org.organization.slug,
        }


def build_world() -> World:
    org = Org("st")
    domain = services.domain_create(
        organization=org.organization, slug="streets", name="Streets", description="", actor=None
    )
    bbox = make_project(org, kind="bbox", name="Boxes")
    classification = make_project(
        org, kind="classification", schema={"labels": [{"name": "cat"}, {"name": "dog"}]}
    )
    ner = make_project(org, kind="ner", schema={"labels": [{"name": "PER"}, {"name": "ORG"}]})
    import_rows(bbox, image_rows(20))
    import_rows(classification, image_rows(5))
    import_rows(
        ner, [{"external_id": f"t{i}", "data": {"text": "Ana works at Acme."}} for i in range(5)]
    )
    staff(bbox, org.annotator)
    staff(classification, org.annotator)
    claim = claim_next(annotator=org.annotator, project_id=bbox.pk).claimed
    # Status actions (suspend, offboard) land on another annotator, so the annotator whose
    # token the run uses can claim and submit throughout.
    victim = org.add_annotator("st-victim")
    certification = services.certification_issue(
        annotator=victim, domain=domain, issued_by=None, evidence="exam", expires_at=None
    )
    invitation = services.invitation_create(
        organization=org.organization, login="st-annotator@st", role="annotator", actor=None
    )
    body = b"".join(
        f'{{"external_id": "up-{i}", "data": {{"image": "x", "width": 9, "height": 9}}}}\n'.encode()
        for i in range(3)
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    task_import, _ = task_import_start(
        project=bbox, upload=SimpleUploadedFile("t.jsonl", body), fmt="jsonl", actor=None
    )
    world = World(
        org=org,
        ids={
            "projects": bbox.pk,
            "assignments": claim.assignment_id,
            "annotators": victim.pk,
            "certifications": certification.pk,
            "domains": domain.pk,
            "invitations": invitation.pk,
            "import_id": task_import.pk,
            "members": victim.member_id,
            "spare_project": make_project(org, kind="bbox", name="Spare").pk,
            "task_id": bbox.tasks.order_by("-pk").values_list("pk", flat=True)[0],
        },
        victim_annotator=victim.pk,
    )
    for role in ROLES:
        world.tokens[role] = Token.objects.get_or_create(user=org.member(role).user)[0].key
    return world


def path_parameters(operation, world: World) -> dict:
    """Real ids for the operation's path: the seeded object of the resource it names."""
    fixed = {}
    for parameter in operation.path_parameters:
        name = parameter.name
        resource = operation.path.split("/")[3]
        if name == "id" and resource == "me":
            resource = "invitations"
        key = resource if name == "id" else name
        if operation.path.endswith(("/archive/", "/unarchive/")):
            # Archived, the seeded project would refuse the rest of the run its work.
            key = "spare_project"
        if key in world.ids:
            fixed[name] = world.ids[key]
        elif name == "skill":
            fixed[name] = "bbox"
        # Other ids (operations added since) are generated: mostly 404, which must conform too.
    return fixed


def use_real_references(case, world: World) -> None:
    """Point the ids and slugs a generated body refers to at seeded objects.

    Which objects exist is not the schema's to say: a generated ``annotator: 0`` is refused as
    unknown, rightly, with a 400 naming the field. Nor are the moment and a file's contents.
    """
    # Nor which of the export formats the project's kind has.
    if case.operation.path.endswith("/export/") and (case.query or {}).get("format"):
        case.query["format"] = "jsonl"
    body = case.body
    if not isinstance(body, dict):
        return
    references = {
        "annotator": world.victim_annotator,
        "domain": "streets",
        "annotators": [world.org.annotator.pk],
        "required_domains": ["streets"],
    }
    for name, value in references.items():
        if name in body:
            body[name] = value
    # Nor which names the IANA time zone database holds.
    if "timezone" in body:
        body["timezone"] = "Europe/Berlin"
    # Nor which kind the assignment's project is: the payload of any kind is schema-valid.
    if "payload" in body:
        body["payload"] = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}
    # Nor how long the assignment has lasted, which active time cannot exceed.
    if body.get("active_seconds") is not None:
        body["active_seconds"] = 0
    # Nor which moment is in the future: an expiry must be.
    if body.get("expires_at") is not None:
        body["expires_at"] = "2099-01-01T00:00:00Z"
    # Nor what an uploaded file holds: the import reads it as the format it names.
    if "file" in body:
        body["file"] = b'{"external_id": "up", "data": {"image": "x", "width": 9, "height": 9}}\n'
        body["format"] = "jsonl"


# Failures the schema cannot prevent, or whose fix is another part of issue 14. Each is still
# reported (the test xfails, naming them) rather than hidden; drop an entry once its fix is in,
# and the test then fails if the failure comes back. The default examples hit none of them;
# deeper runs (ASSAY_SCHEMATHESIS_EXAMPLES=12) do.
KNOWN = {
    # Rules no JSON Schema can state: one parameter or field depending on another.
    ("RejectedPositiveData", "GET /api/v1/annotators/"): "min_level needs a skill",
    ("RejectedPositiveData", "POST /api/v1/projects/"): "keypoints: a sigma per keypoint",
    ("RejectedPositiveData", "POST /api/v1/exams/"): "items' data and answers of the exam's kind",
    (
        "RejectedPositiveData",
        "POST /api/v1/quality-rules/",
    ): "window and parameter by metric, action",
    # Found by deeper runs, other parts of issue 14: a taken slug is a 400 by design (one
    # answer names every bad field), and the body parser refuses integers past 64 bits in
    # properties the token request does not declare.
    ("RejectedPositiveData", "POST /api/v1/domains/"): "a taken slug",
    ("RejectedPositiveData", "POST /api/v1/auth/token/"): "integers past 64 bits",
    (
        "RejectedPositiveData",
        "PUT /api/v1/projects/{id}/review-policy/",
    ): "each layer's floor_rate at most its sample_rate, domains that exist, a tag code once",
    # A range of hours: since before until, at most 92 days apart (``qa.stats_api``).
    ("RejectedPositiveData", "GET /api/v1/projects/{id}/stats/"): "since before until, 92 days",
    ("RejectedPositiveData", "GET /api/v1/annotators/{id}/stats/"): "since before until, 92 days",
    ("RejectedPositiveData", "GET /api/v1/me/stats/"): "since before until, 92 days",
}


def conclude(findings: "Findings") -> None:
    """Fail on any failure not known; xfail, naming them, while known ones remain."""
    print(findings.summary())
    unknown = {key for key in findings.failures if key[:2] not in KNOWN}
    assert not unknown, findings.summary()
    if findings.failures:
        pytest.xfail("Only known failures (KNOWN):\n" + findings.summary())


@dataclass
class Findings:
    calls: Counter = field(default_factory=Counter)
    failures: dict = field(default_factory=lambda: defaultdict(list))
    unsatisfiable: set = field(default_factory=set)

    def record(self, role: str, case, response, exc: FailureGroup) -> None:
        for failure in exc.exceptions:
            key = (type(failure).__name__, case.operation.label, response.status_code)
            self.failures[key].append(
                (role, failure.title, failure.message[:300], case.body, response.text[:400])
            )

    def summary(self) -> str:
        by_class = Counter(key[0] for key in self.failures)
        lines = [f"{sum(self.calls.values())} calls; failures by class: {dict(by_class)}"]
        for (kind, operation, status), seen in sorted(self.failures.items()):
            role, title, message, body, answer = seen[0]
            lines.append(f"- {kind} {operation} -> {status} ({len(seen)}x, {role}): {title}")
            lines.append(f"    {message!r:.300}\n    sent {body!r:.300}\n    got {answer!r}")
        return "\n".join(lines)


def run_operation(operation, world, base, role, mode, checks, findings, session) -> None:
    headers = world.headers(role)
    # Negative cases may break the path too; positive ones reach the seeded objects.
    fixed_path = path_parameters(operation, world) if mode.is_positive else None
    strategy = operation.as_strategy(
        generation_mode=mode,
        path_parameters=fixed_path,
        headers={"X-Organization": world.org.organization.slug},
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case):
        if mode == schemathesis.GenerationMode.POSITIVE:
            use_real_references(case, world)
        response = case.call(base_url=base, headers=headers, session=session, timeout=30)
        findings.calls[(operation.label, role, mode.value)] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as exc:
            findings.record(role, case, response, exc)

    if SEED is not None:
        check = settings(check._hypothesis_internal_use_settings)(check)
    try:
        check()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid (no body, query or path to break).
        findings.unsatisfiable.add((operation.label, mode.value))


@pytest.fixture
def live(django_db_setup):
    with asgi_server() as base:
        yield base


def load_schema(base: str):
    load_all_checks()
    # The API refuses a NUL in any text (config.parsers), so generated text leaves it out.
    config = schemathesis.Config.from_dict({"generation": {"allow-x00": False}})
    return schemathesis.openapi.from_dict(
        httpx.get(
            f"{base}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}
        ).json(),
        config=config,
    )


def operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


def run_pass(live, mode, checks) -> None:
    """Call every operation as each role in ``mode``, then fail on any unknown finding."""
    world = build_world()
    schema = load_schema(live)
    findings = Findings()
    session = requests.Session()
    for operation in operations(schema):
        for role in ROLES:
            run_operation(operation, world, live, role, mode, checks, findings, session)
    conclude(findings)


def test_every_operation_answers_as_the_schema_says_for_each_role(live):
    run_pass(
        live,
        schemathesis.GenerationMode.POSITIVE,
        [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            positive_data_acceptance,
        ],
    )


def test_schema_invalid_requests_are_refused(live):
    run_pass(
        live,
        schemathesis.GenerationMode.NEGATIVE,
        [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            negative_data_rejection,
        ],
    )
