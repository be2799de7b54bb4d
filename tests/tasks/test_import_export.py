"""Task import (JSON, JSONL, CSV; API and command) and export (JSONL, COCO, CoNLL, spaCy)."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import TestCase

from tasks.models import Assignment, Slot, SlotState, Task
from tasks.services.claims import assignment_submit, claim_next
from tasks.services.imports import tasks_import
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce.models import Role

pytestmark = pytest.mark.django_db


NER_SCHEMA = {"labels": [{"name": "PER"}, {"name": "ORG"}]}


def upload(client, project, name: str, body: bytes, **fields):
    """Upload a file; the import job queued on commit runs in-process, as without a broker."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            f"/api/v1/projects/{project.pk}/tasks/import",
            {"file": SimpleUploadedFile(name, body), **fields},
            format="multipart",
        )


def finished(client, response) -> dict:
    """The import a 202 answer points to, as its Location shows it now."""
    assert response.status_code == 202, response.content
    job = client.get(response["Location"]).json()
    assert job["status"] == "done", job
    return job


def test_jsonl_import_creates_tasks_and_one_slot_per_overlap(org):
    project = make_project(org, overlap=3)
    report = import_rows(project, image_rows(4))
    assert (report.rows, report.created, report.existing, report.invalid) == (4, 4, 0, 0)
    assert Task.objects.filter(project=project).count() == 4
    seats = Slot.objects.filter(project=project).values_list("seat", "state")
    assert sorted(seats) == sorted([(0, "open"), (1, "waiting"), (2, "waiting")] * 4)


def test_many_batches_keep_every_row_its_number_and_its_priority(org):
    """Rows are read ahead of the writes in chunks of a batch: nothing lost, reordered or twice."""
    project = make_project(org, overlap=2)
    rows = image_rows(23)
    for i, row in enumerate(rows):
        row["priority"] = -i if i % 2 else i
    rows[10]["gold_answer"] = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
    rows[17]["data"].pop("height")
    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    report = tasks_import(
        project=project,
        open_stream=lambda: io.BytesIO(body),
        fmt="jsonl",
        on_error="skip",
        batch_size=4,
    )
    assert (report.rows, report.created, report.invalid) == (23, 22, 1)
    assert [(e.row, e.field) for e in report.errors] == [(18, "data.height")]
    stored = dict(Task.objects.filter(project=project).values_list("external_id", "priority"))
    expected = {r["external_id"]: r["priority"] for i, r in enumerate(rows) if i != 17}
    assert stored == expected
    assert Task.objects.get(external_id="img-10").is_gold
    # Two seats for each task but the gold one, which has none.
    assert Slot.objects.filter(project=project).count() == 42


def test_reimporting_the_same_file_changes_nothing(org):
    project = make_project(org)
    import_rows(project, image_rows(3))
    before = list(Task.objects.values_list("id", "external_id", "data"))
    report = import_rows(project, image_rows(3))
    assert (report.created, report.existing) == (0, 3)
    assert list(Task.objects.values_list("id", "external_id", "data")) == before
    assert Slot.objects.count() == 3


def test_rows_without_external_id_are_deduplicated_by_content(org):
    project = make_project(org)
    rows = [{"data": {"width": 5, "height": 5, "url": "a"}}, {"width": 5, "height": 5, "url": "b"}]
    assert import_rows(project, rows).created == 2
    assert import_rows(project, rows).created == 0


def test_invalid_rows_are_reported_with_row_numbers_and_abort_imports_nothing(org):
    project = make_project(org)
    rows = image_rows(3)
    rows[1]["data"].pop("width")
    rows[2]["priority"] = "high"
    report = import_rows(project, rows)
    assert not report.imported and report.invalid == 2
    assert {(e.row, e.field) for e in report.errors} == {(2, "data.width"), (3, "priority")}
    assert not Task.objects.exists()


def test_skip_mode_imports_the_valid_rows(org):
    project = make_project(org)
    rows = image_rows(3)
    rows[0]["data"]["height"] = -1
    report = import_rows(project, rows, on_error="skip")
    assert report.imported and (report.created, report.invalid) == (2, 1)
    assert report.errors[0].row == 1 and report.errors[0].field == "data.height"


def test_gold_answers_are_validated_by_the_kind(org):
    project = make_project(org)
    good = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
    rows = image_rows(2)
    rows[0]["gold_answer"] = good
    rows[1]["gold_answer"] = {"boxes": [{"label": "tank", "x": 1, "y": 1, "w": 5, "h": 5}]}
    report = import_rows(project, rows)
    assert report.errors[0].field == "gold_answer.boxes[0].label"
    report = import_rows(project, rows[:1])
    task = Task.objects.get()
    assert task.is_gold and task.gold_answer == good


def test_malformed_lines_and_non_objects_are_row_errors(org):
    project = make_project(org)
    body = b'{"width": 5, "height": 5}\nnot json\n[1, 2]\n\n{"data": 3}\n'
    report = tasks_import(
        project=project, open_stream=lambda: io.BytesIO(body), fmt="jsonl", on_error="skip"
    )
    assert report.created == 1
    assert [e.row for e in report.errors] == [2, 3, 5]


def test_nan_and_nul_never_reach_the_database(org):
    project = make_project(org)
    body = b'{"width": 5, "height": 5, "x": NaN}\n{"width": 5, "height": 5, "s": "a\\u0000b"}\n'
    report = tasks_import(project=project, open_stream=lambda: io.BytesIO(body), fmt="jsonl")
    assert report.invalid == 2 and not Task.objects.exists()


def test_json_array_and_csv_uploads_through_the_api(org):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    body = json.dumps(image_rows(2)).encode()
    response = upload(client, project, "tasks.json", body)
    assert response.json()["status"] == "queued"
    job = finished(client, response)
    assert job["report"]["created"] == 2 and job["rows_read"] == 2
    assert job["created_by"] == org.member(Role.MANAGER).user.username
    csv_body = b"external_id,image,width,height,priority\nc1,a.jpg,640,480,5\nc2,b.jpg,640,480,0\n"
    response = upload(client, project, "tasks.csv", csv_body)
    assert finished(client, response)["report"]["created"] == 2
    task = Task.objects.get(external_id="c1")
    assert task.data == {"image": "a.jpg", "width": 640, "height": 480} and task.priority == 5


def test_bad_upload_is_a_400_naming_rows_and_imports_nothing(org):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    response = upload(client, project, "tasks.jsonl", b'{"width": 5}\n')
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_rows"
    assert body["error"]["fields"]["file"] == ["row 1: data.height: this field is required"]
    assert body["report"]["invalid"] == 1
    assert upload(client, project, "tasks.txt", b"x").status_code == 400
    assert upload(client, project, "tasks.txt", b"x", format="xml").status_code == 400
    not_array = upload(client, project, "tasks.json", b'{"a": 1}')
    assert not_array.status_code == 400
    assert not Task.objects.exists()
    assert (
        org.client(Role.ANNOTATOR).post(f"/api/v1/projects/{project.pk}/tasks/import").status_code
        == 403
    )


def test_import_command_with_progress(org, tmp_path):
    project = make_project(org)
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in image_rows(7)))
    out = io.StringIO()
    call_command("import_tasks", project.pk, str(path), stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["created"] == 7
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"width": 1}\n')
    with pytest.raises(CommandError, match="Nothing imported"):
        call_command("import_tasks", project.pk, str(bad), stderr=io.StringIO())
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"\xef\xbb\xbf \n")
    with pytest.raises(CommandError, match="The file is empty"):
        call_command("import_tasks", project.pk, str(empty), stderr=io.StringIO())
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]")
    errors = io.StringIO()
    with pytest.raises(CommandError, match="Nothing imported: 1 invalid rows"):
        call_command("import_tasks", project.pk, str(deep), stderr=errors)
    assert errors.getvalue() == "row 1: : nests deeper than 32 levels\n"


def annotate_all(project, annotators, payload_for):
    for annotator in annotators:
        while claimed := claim_next(annotator=annotator, project_id=project.pk).claimed:
            task = Task.objects.get(pk=claimed.task_id)
            assignment = Assignment.objects.get(pk=claimed.assignment_id)
            assignment_submit(assignment=assignment, payload=payload_for(task))


def test_export_jsonl_round_trips_what_was_submitted(org):
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    payloads = {}

    def payload_for(task):
        payloads[task.external_id] = {
            "boxes": [{"label": "car", "x": task.pk % 7, "y": 1, "w": 5, "h": 5}]
        }
        return payloads[task.external_id]

    annotate_all(project, [org.annotator], payload_for)
    response = org.client(Role.MANAGER).get(f"/api/v1/projects/{project.pk}/export?format=jsonl")
    assert response.status_code == 200
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert {line["external_id"]: line["annotation"] for line in lines} == payloads
    # The exported lines import back as they are: the same client ids and data, in a new project.
    copy = make_project(org, name="copy")
    assert import_rows(copy, lines).created == 3
    assert sorted(
        Task.objects.filter(project=copy).values_list("external_id", flat=True)
    ) == sorted(payloads)
    assert sorted(
        Task.objects.filter(project=copy).values_list("data", flat=True), key=str
    ) == sorted(Task.objects.filter(project=project).values_list("data", flat=True), key=str)


def test_an_export_goes_out_in_pieces_of_bounded_size(org, monkeypatch):
    from tasks import exports

    monkeypatch.setattr(exports, "PIECE", 300)
    project = make_project(org)
    import_rows(project, image_rows(12))
    staff(project, org.annotator)
    box = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
    annotate_all(project, [org.annotator], lambda task: box)
    pieces = {fmt: list(exports.export_project(project, fmt)[0]) for fmt in ("jsonl", "coco")}
    for chunks in pieces.values():
        # Every piece but the last holds at least PIECE characters.
        assert len(chunks) > 1 and all(len(piece) >= 300 for piece in chunks[:-1])
    lines = "".join(pieces["jsonl"]).splitlines()
    assert len(lines) == 12
    # A piece ends with the first line that took it past PIECE: no line is held back longer.
    longest = max(len(line) + 1 for line in lines)
    assert all(len(piece) < 300 + longest for piece in pieces["jsonl"])
    coco = json.loads("".join(pieces["coco"]))
    assert len(coco["images"]) == len(coco["annotations"]) == 12


def test_export_coco_merges_overlap_and_conll_for_ner(org):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(1))
    b = org.add_annotator("b")
    staff(project, org.annotator, b)
    box = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 20, "h": 20}]}
    annotate_all(project, [org.annotator, b], lambda task: box)
    client = org.client(Role.QA_LEAD)
    coco = json.loads(
        b"".join(client.get(f"/api/v1/projects/{project.pk}/export?format=coco").streaming_content)
    )
    assert len(coco["images"]) == 1 and len(coco["annotations"]) == 1
    assert coco["images"][0]["external_id"] == "img-0"
    assert coco["annotations"][0]["bbox"] == [10, 10, 20, 20]
    assert client.get(f"/api/v1/projects/{project.pk}/export?format=conll").status_code == 400

    ner = make_project(org, kind="ner", schema=NER_SCHEMA, name="ner")
    import_rows(ner, [{"external_id": "t1", "data": {"text": "Ada works at IBM"}}])
    staff(ner, org.annotator)
    spans = {
        "spans": [{"start": 0, "end": 3, "label": "PER"}, {"start": 13, "end": 16, "label": "ORG"}]
    }
    annotate_all(ner, [org.annotator], lambda task: spans)
    conll = b"".join(
        client.get(f"/api/v1/projects/{ner.pk}/export?format=conll").streaming_content
    ).decode()
    assert conll.startswith("# external_id = t1\n")
    assert "Ada B-PER" in conll and "IBM B-ORG" in conll
    out = io.StringIO()
    call_command("export_tasks", ner.pk, "--format", "spacy", stdout=out)
    record = json.loads(out.getvalue().splitlines()[0])
    assert record["entities"] == [[0, 3, "PER"], [13, 16, "ORG"]]
    assert record["meta"] == {"external_id": "t1"}


def test_export_slot_state_after_annotation(org):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    annotate_all(project, [org.annotator], lambda task: {"boxes": []})
    assert Slot.objects.get().state == SlotState.DONE
