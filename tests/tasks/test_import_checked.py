"""A file is checked once, in the request, on several processes; the job imports what was
checked, and only while the project still has the kind and schema it was checked against."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import task_files
from tasks.kinds import get_kind
from tasks.models import ImportStatus, Slot, Task, TaskImport
from tasks.services import imports
from tasks.services.imports import task_import_run, task_import_start
from tasks.services.projects import project_update
from tasks.task_files import Row, check_rows, read_rows
from tests.helpers import BBOX_SCHEMA, image_rows, make_project
from workforce.models import Role

pytestmark = pytest.mark.django_db

VALID = {"width": 640, "height": 480}


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def checked(body: bytes, processes: int) -> list:
    """Every row of a JSON Lines body as (number, external id) or (row, field, message)s."""
    rows = read_rows(
        io.BytesIO(body), "jsonl", kind=get_kind("bbox"), schema=BBOX_SCHEMA, processes=processes
    )
    return [
        (row.number, row.external_id, row.priority, row.data_json, row.gold_json)
        if isinstance(row, Row)
        else [(e.row, e.field, e.message) for e in row]
        for row in rows
    ]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few lines, and processes for any file: a small file is cut in many pieces."""
    monkeypatch.setattr(task_files, "CHUNK_BYTES", 300)
    monkeypatch.setattr(task_files, "PARALLEL_MIN_BYTES", 0)


def messy_file() -> bytes:
    rows = image_rows(40)
    rows[3]["data"].pop("width")
    rows[17]["priority"] = "high"
    rows[25]["external_id"] = "img-2"  # a duplicate several chunks after its first row
    rows[30] = {"data": {**VALID, "url": "same"}}
    rows[38] = {**VALID, "url": "same"}  # the same data, without an id, in the other shape
    rows[39]["gold_answer"] = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
    body = jsonl(rows[:10]) + b"\n\n   \n" + b"not json\r\n" + jsonl(rows[10:])
    return b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n", 3) + b'{"width": 1, "height": 1}'


def test_several_processes_check_a_file_as_one_does_row_numbers_and_duplicates_included(
    small_chunks,
):
    body = messy_file()
    one = checked(body, processes=1)
    assert checked(body, processes=2) == one
    errors = [row for row in one if isinstance(row, list)]
    # Lines 11-13 are blank (not rows), line 14 is not JSON: rows after it keep their lines.
    assert errors == [
        [(4, "data.width", "this field is required")],
        [(14, "", "Expecting value: line 1 column 1 (char 0)")],
        [(22, "priority", "must be a whole number")],
        [(30, "external_id", "duplicates row 3")],
        [(43, "external_id", "has the same data as row 35, and neither has an external_id")],
    ]
    assert len(one) == 42 and one[-1][0] == 45  # the last line, without a line break
    gold = next(row for row in one if not isinstance(row, list) and row[4])
    assert gold[:2] == (44, "img-39")


def test_a_line_over_the_limit_is_a_row_error_in_any_chunk_and_the_next_line_is_read(
    small_chunks, monkeypatch
):
    monkeypatch.setattr(task_files, "MAX_ROW_BYTES", 1000)
    huge = {"external_id": "huge", "data": {**VALID, "blob": "x" * 5000}}
    body = jsonl(image_rows(5)) + jsonl([huge]) + jsonl(image_rows(5, start=5)) + jsonl([huge])
    for processes in (1, 2):
        rows = checked(body, processes)
        assert [row for row in rows if isinstance(row, list)] == [
            [(6, "", "the row is larger than 0 MB")],
            [(12, "", "the row is larger than 0 MB")],
        ]
        assert [row[1] for row in rows if not isinstance(row, list)] == [
            f"img-{i}" for i in range(10)
        ]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.one_of(st.binary(max_size=40), st.just(b"\xef\xbb\xbfx")).map(
            lambda b: b.replace(b"\n", b"")
        ),
        max_size=30,
    ),
    size=st.integers(1, 64),
    limit=st.integers(1, 50),
    ending=st.booleans(),
)
def test_cutting_a_file_in_chunks_keeps_every_line_and_its_number(lines, size, limit, ending):
    body = b"\n".join(lines) + (b"\n" if ending and lines else b"")
    cut = list(task_files._line_chunks(io.BytesIO(body), size, limit))
    seen = []
    for first, chunk in cut:
        if chunk is None:
            seen.append((first, None))
            continue
        pieces = chunk.split(b"\n")
        if chunk.endswith(b"\n"):
            pieces.pop()
        seen.extend(enumerate(pieces, start=first))
    # A line is whole, with its number, or over the limit; the reader never holds it all. A
    # byte-order mark opening the file is no part of its first line.
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines = [lines[0][3:], *lines[1:]]
    expected = [(n, line if len(line) <= limit else None) for n, line in enumerate(lines, 1)]
    if not ending and lines and lines[-1] == b"":
        expected.pop()  # a file's last, empty line is no line
    actual = [(n, line if line is None or len(line) <= limit else None) for n, line in seen]
    assert actual == expected


def test_checking_reads_a_few_chunks_ahead_of_its_reader_never_the_whole_file(small_chunks):
    class Counting(io.BytesIO):
        read_so_far = 0

        def read(self, size=-1):
            chunk = super().read(size)
            self.read_so_far += len(chunk)
            return chunk

    stream = Counting(jsonl(image_rows(3000)))
    rows = check_rows(stream, "jsonl", kind=get_kind("bbox"), schema=BBOX_SCHEMA, processes=2)
    next(rows)
    # Two chunks a process in flight, and the one being cut.
    assert stream.read_so_far <= (2 * 2 + 1) * task_files.CHUNK_BYTES
    rows.close()


def test_an_upload_is_checked_by_several_processes_and_refused_with_its_row_numbers(
    org, small_chunks
):
    project = make_project(org)
    body = messy_file()
    response = org.client(Role.MANAGER).post(
        f"/api/v1/projects/{project.pk}/tasks/import",
        {"file": SimpleUploadedFile("t.jsonl", body)},
        format="multipart",
    )
    assert response.status_code == 400
    rows = [(e["row"], e["field"]) for e in response.json()["report"]["errors"]]
    assert rows == [(4, "data.width"), (14, ""), (22, "priority"), (30, "external_id"),
                    (43, "external_id")]  # fmt: skip
    assert not TaskImport.objects.exists() and not Task.objects.exists()


def queued(project, body: bytes, on_error: str = "abort") -> TaskImport:
    job, refused = task_import_start(
        project=project, upload=SimpleUploadedFile("t.jsonl", body), fmt="jsonl", on_error=on_error
    )
    assert refused is None
    return job


def test_the_job_imports_the_checked_rows_and_their_errors_without_the_upload(org, small_chunks):
    project = make_project(org, overlap=2)
    job = queued(project, messy_file(), on_error="skip")
    assert job.file.name.endswith(imports.CHECKED_SUFFIX)
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.report["rows"], job.report["created"], job.report["invalid"]) == (42, 37, 5)
    assert [e["row"] for e in job.report["errors"]] == [4, 14, 22, 30, 43]
    assert Task.objects.get(external_id="img-39").is_gold
    assert Slot.objects.filter(project=project).count() == 2 * 36  # the gold task has no seats


@pytest.mark.parametrize("change", ["label_schema", "kind"])
def test_a_job_whose_project_changed_what_its_rows_were_checked_against_imports_nothing(
    org, change
):
    """The rows were checked in the request; a schema that lost a label, or another kind, would
    have refused some of them."""
    project = make_project(org)
    rows = image_rows(3)
    rows[0]["gold_answer"] = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
    job = queued(project, jsonl(rows))
    if change == "kind":
        fields = {"kind": "classification", "label_schema": {"labels": [{"name": "car"}]}}
    else:
        fields = {"label_schema": {"labels": [{"name": "person"}]}}
    project_update(project=project, actor=org.manager.user, **fields)
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.FAILED
    assert "changed after the file was uploaded" in job.error
    assert not Task.objects.exists()


def test_a_file_kept_before_checked_rows_were_is_checked_by_the_job(org):
    """An import queued by the previous version keeps its upload as it came."""
    project = make_project(org)
    rows = image_rows(4)
    rows[2]["data"].pop("height")
    job = TaskImport.objects.create(
        project=project,
        file=ContentFile(jsonl(rows), name="tasks.jsonl"),
        format="jsonl",
        on_error="skip",
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.report["created"], job.report["invalid"]) == (3, 1)
    assert job.report["errors"][0]["row"] == 3
