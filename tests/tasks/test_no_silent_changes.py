"""No silent changes: what stored work depends on is refused with a 4xx, and exports end or fail
before their first byte."""

import json
import os
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings

from tasks.kinds import KINDS
from tasks.models import Annotation, Assignment, Project
from tasks.services.claims import ACTIVE_SECONDS_MARGIN, assignment_submit, claim_next
from tests.helpers import image_rows, import_rows, make_project, staff
from tests.tasks.kinds.strategies import CASES
from workforce import services
from workforce.models import Domain, Role

pytestmark = pytest.mark.django_db

SCHEMA = {"labels": [{"name": "car"}, {"name": "person"}, {"name": "bicycle"}]}
CAR = {"boxes": [{"label": "car", "x": 10, "y": 20, "w": 100, "h": 50}]}


def submitted(org, project, payload=CAR) -> Annotation:
    """One task annotated by the org's annotator through the real claim and submit."""
    staff(project, org.annotator)
    claim = claim_next(annotator=org.annotator, project_id=project.pk).claimed
    assignment = Assignment.objects.get(pk=claim.assignment_id)
    annotation, _ = assignment_submit(assignment=assignment, payload=payload)
    return annotation


def patch(org, project, body):
    return org.client(Role.MANAGER).patch(f"/api/v1/projects/{project.pk}", body, format="json")


def without(*names: str) -> dict:
    return {"labels": [label for label in SCHEMA["labels"] if label["name"] not in names]}


def test_removing_a_label_annotations_use_is_a_409_naming_it_and_changes_nothing(org):
    project = make_project(org, schema=SCHEMA)
    import_rows(project, image_rows(2))
    submitted(org, project)

    refused = patch(org, project, {"label_schema": without("car", "bicycle")})
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "in_use"
    # Only the label in use is named: "bicycle" alone could go.
    assert error["fields"] == {"label_schema.labels": ["In use by stored work: car."]}
    project.refresh_from_db()
    assert project.label_schema == SCHEMA

    # A rename orphans work as a removal does.
    renamed = {"labels": [{"name": "automobile"}, {"name": "person"}, {"name": "bicycle"}]}
    assert patch(org, project, {"label_schema": renamed}).status_code == 409

    # Labels nobody used may go, and new ones come.
    kept = {"labels": [{"name": "car"}, {"name": "truck"}]}
    assert patch(org, project, {"label_schema": kept}).status_code == 200
    project.refresh_from_db()
    assert project.label_schema == kept


def test_gold_answers_and_relation_types_count_as_stored_work(org):
    text = {"text": "Alice works for Acme."}
    schema = {"labels": [{"name": "PER"}, {"name": "ORG"}], "relation_types": ["works_for", "owns"]}
    project = make_project(org, kind="relations", schema=schema)
    gold = {
        "spans": [
            {"id": "a", "start": 0, "end": 5, "label": "PER"},
            {"id": "b", "start": 16, "end": 20, "label": "ORG"},
        ],
        "relations": [{"from": "a", "to": "b", "label": "works_for"}],
    }
    report = import_rows(project, [{"external_id": "t1", "data": text, "gold_answer": gold}])
    assert report.created == 1 and not Annotation.objects.exists()

    refused = patch(org, project, {"label_schema": {**schema, "relation_types": ["owns"]}})
    assert refused.status_code == 409
    assert refused.json()["error"]["fields"] == {
        "label_schema.relation_types": ["In use by stored work: works_for."]
    }
    refused = patch(org, project, {"label_schema": {**schema, "labels": [{"name": "PER"}]}})
    assert refused.status_code == 409
    assert "'ORG'" in refused.json()["error"]["message"]
    unused = {**schema, "relation_types": ["works_for"]}
    assert patch(org, project, {"label_schema": unused}).status_code == 200


def test_the_number_of_keypoints_is_fixed_once_work_is_stored(org):
    schema = {"labels": [{"name": "person"}], "keypoints": ["nose", "eye"], "sigmas": [0.03, 0.03]}
    project = make_project(org, kind="keypoints", schema=schema)
    instance = {"label": "person", "keypoints": [[10, 10, 2], [20, 20, 2]]}
    import_rows(project, image_rows(1, gold_answer={"instances": [instance]}))

    three = {**schema, "keypoints": ["nose", "eye", "ear"], "sigmas": [0.03, 0.03, 0.03]}
    refused = patch(org, project, {"label_schema": three})
    assert refused.status_code == 409
    assert list(refused.json()["error"]["fields"]) == ["label_schema.keypoints"]
    # Renaming keypoints and changing sigmas keeps every payload valid.
    renamed = {**schema, "keypoints": ["nose", "left_eye"], "sigmas": [0.02, 0.04]}
    assert patch(org, project, {"label_schema": renamed}).status_code == 200


def _names_found(payload, path: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT x #>> '{}' FROM jsonb_path_query(%s::jsonb, %s::jsonpath) AS x",
            [json.dumps(payload), path],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.parametrize("key", sorted(CASES))
def test_a_kinds_label_paths_find_exactly_the_names_its_validation_needs(key):
    """PostgreSQL reads names through ``label_paths``; the kind's validation is the truth.

    For any valid payload, a schema name is found in it exactly when the payload stops being
    valid once the name leaves the schema.
    """
    kind = KINDS[key]
    strategy, schema, data = CASES[key]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(payload):
        assert not kind.validate_payload(payload, schema, data)
        for list_key, names in kind.schema_names(schema).items():
            found = _names_found(payload, kind.label_paths[list_key])
            assert found <= names
            for name in names:
                entries = schema[list_key]
                smaller = {
                    **schema,
                    list_key: [
                        e for e in entries if (e["name"] if isinstance(e, dict) else e) != name
                    ],
                }
                breaks = bool(kind.validate_payload(payload, smaller, data))
                assert breaks == (name in found), (list_key, name, payload)

    check()


def test_an_export_the_schema_cannot_describe_fails_before_its_first_byte(org, tmp_path):
    project = make_project(org, schema=SCHEMA)
    import_rows(project, image_rows(1))
    submitted(org, project)
    # Work stored under a label the schema no longer has (data from before this check, or a
    # submit that raced the schema change): forced in place, as no service allows it.
    Project.objects.filter(pk=project.pk).update(label_schema=without("car"))

    client = org.client(Role.MANAGER)
    for fmt in ("coco", "jsonl"):
        answer = client.get(f"/api/v1/projects/{project.pk}/export?format={fmt}")
        assert answer.status_code == 409, fmt
        assert answer.json()["error"]["fields"] == {
            "label_schema.labels": ["Used by annotations, missing here: car."]
        }

    output = tmp_path / "export.json"
    with pytest.raises(CommandError, match="car"):
        call_command("export_tasks", project.pk, format="coco", output=output)
    assert list(tmp_path.iterdir()) == []

    # A failure halfway (after the check) leaves an earlier export as it was, and no temp file.
    output.write_text("earlier export")
    Project.objects.filter(pk=project.pk).update(label_schema=SCHEMA)
    project.tasks.update(data={"image": "x.jpg"})  # COCO needs width and height
    with pytest.raises(CommandError, match="not written"):
        call_command("export_tasks", project.pk, format="coco", output=output)
    assert output.read_text() == "earlier export"
    assert list(tmp_path.iterdir()) == [output]

    call_command("export_tasks", project.pk, format="jsonl", output=output)
    assert '"label":"car"' in output.read_text()
    # The finished file is readable as any file the user makes, not private like a temp file.
    umask = os.umask(0)
    os.umask(umask)
    assert output.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_domain_projects_require_cannot_be_deleted(org):
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    project = make_project(org, required_domains=["legal"], name="Contracts")
    answer = org.client(Role.MANAGER).delete(f"/api/v1/domains/{domain.pk}/")
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "in_use" and "'Contracts'" in error["message"]
    assert Domain.objects.filter(pk=domain.pk).exists()
    assert list(project.required_domains.values_list("slug", flat=True)) == ["legal"]


def test_patching_the_kind_or_a_read_only_field_is_a_400_naming_it(org):
    project = make_project(org, schema=SCHEMA)
    # Before any task, the kind may change to one the schema fits.
    changed = patch(org, project, {"kind": "polygon"})
    assert changed.status_code == 200 and changed.json()["kind"] == "polygon"
    import_rows(project, image_rows(1))

    refused = patch(org, project, {"kind": "bbox", "name": "Renamed"})
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["kind"]
    refused = patch(org, project, {"id": 7, "created_at": "2020-01-01T00:00:00Z", "overlpa": 2})
    assert refused.status_code == 400
    assert sorted(refused.json()["error"]["fields"]) == ["created_at", "id", "overlpa"]
    # With another invalid field, every one is named at once.
    refused = patch(org, project, {"progress": {}, "overlap": 0})
    assert sorted(refused.json()["error"]["fields"]) == ["overlap", "progress"]
    project.refresh_from_db()
    assert (project.kind, project.name, project.overlap) == ("polygon", "bbox project", 1)
    # The kind it has already is no change.
    assert patch(org, project, {"kind": "polygon"}).status_code == 200


def test_domains_and_annotators_refuse_unknown_fields_too(org):
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    client = org.client(Role.MANAGER)
    answer = client.patch(f"/api/v1/domains/{domain.pk}/", {"slug": "law"}, format="json")
    assert answer.status_code == 400 and list(answer.json()["error"]["fields"]) == ["slug"]
    answer = client.patch(
        f"/api/v1/annotators/{org.annotator.pk}/", {"status": "suspended"}, format="json"
    )
    assert answer.status_code == 400 and list(answer.json()["error"]["fields"]) == ["status"]
    domain.refresh_from_db()
    org.annotator.refresh_from_db()
    assert domain.slug == "legal" and org.annotator.status == "active"


def test_a_project_with_work_in_progress_cannot_go_back_to_draft(org):
    project = make_project(org, schema=SCHEMA)
    import_rows(project, image_rows(2))
    assert patch(org, project, {"status": "paused"}).status_code == 200
    assert patch(org, project, {"status": "active"}).status_code == 200
    staff(project, org.annotator)
    claim_next(annotator=org.annotator, project_id=project.pk)

    refused = patch(org, project, {"status": "draft"})
    assert refused.status_code == 409
    assert list(refused.json()["error"]["fields"]) == ["status"]
    project.refresh_from_db()
    assert project.status == "active"


def test_active_seconds_cannot_exceed_the_time_the_task_was_held(org):
    project = make_project(org, schema=SCHEMA)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    claim = claim_next(annotator=org.annotator, project_id=project.pk).claimed
    Assignment.objects.filter(pk=claim.assignment_id).update(
        leased_at=claim.leased_at - timedelta(seconds=60)
    )
    url = f"/api/v1/assignments/{claim.assignment_id}/submit"
    client = org.client(Role.ANNOTATOR)

    too_long = 60 + ACTIVE_SECONDS_MARGIN + 5
    refused = client.post(url, {"payload": CAR, "active_seconds": too_long}, format="json")
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["active_seconds"]
    assert not Annotation.objects.exists()

    accepted = client.post(url, {"payload": CAR, "active_seconds": 61}, format="json")
    assert accepted.status_code == 201, accepted.content
    assert Annotation.objects.get().active_seconds == 61
