"""Hostile task files: whatever a file holds, the import answers with row errors or a clear 400,
writes nothing PostgreSQL would refuse, and an all-or-nothing import writes nothing at all."""

import io
import json
import os
import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from config.storable import MAX_JSON_DEPTH
from tasks import task_files
from tasks.kinds import get_kind
from tasks.models import ImportStatus, Slot, Task, TaskImport
from tasks.services import imports
from tasks.services.imports import task_import_run, task_import_start, tasks_import
from tasks.task_files import MAX_ROW_BYTES, Row, SeenIds, read_rows
from tests.helpers import BBOX_SCHEMA, image_rows, make_project
from workforce.models import Role

pytestmark = pytest.mark.django_db

VALID = {"width": 640, "height": 480}
AR = "\u0661\u0662"  # 12 in Arabic-Indic digits: str.isdigit says yes


def imported(project, body: bytes, fmt: str = "jsonl", on_error: str = "skip", **options):
    return tasks_import(
        project=project,
        open_stream=lambda: io.BytesIO(body),
        fmt=fmt,
        on_error=on_error,
        **options,
    )


def where(report) -> list[tuple[int, str]]:
    return [(e.row, e.field) for e in report.errors]


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def stored_ids(project) -> list[str]:
    return sorted(Task.objects.filter(project=project).values_list("external_id", flat=True))


def upload(client, project, name: str, body: bytes, **fields):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            f"/api/v1/projects/{project.pk}/tasks/import",
            {"file": SimpleUploadedFile(name, body), **fields},
            format="multipart",
        )


# Item 1: nesting and size.


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_a_json_array_row_nested_deep_is_a_row_error_in_linear_time(org, depth):
    """ijson.items took 18.9 s for 40,000 levels and 20 GB for 100,000; the next row is read."""
    project = make_project(org)
    body = b'[{"external_id": "a", "data": {"width": 5, "height": 5}},\n'
    body += nested(depth) + b",\n" + nested(depth, b'{"a":', b"}")[:-depth] + b"1" + b"}" * depth
    body += b',\n{"external_id": "b", "data": {"width": 5, "height": 5}}]'
    started = time.perf_counter()
    report = imported(project, body, fmt="json")
    assert time.perf_counter() - started < 2
    assert where(report) == [(2, ""), (3, "")]
    assert {e.message for e in report.errors} == {f"nests deeper than {MAX_JSON_DEPTH} levels"}
    assert stored_ids(project) == ["a", "b"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_data_may_nest_as_deep_as_the_limit_and_not_one_level_deeper(org, fmt):
    project = make_project(org)

    def row(external_id: str, levels: int) -> dict:
        meta: object = 1
        for _ in range(levels - 1):  # data itself is the first level
            meta = {"m": meta}
        return {"external_id": external_id, "data": {**VALID, "meta": meta}}

    rows = [row("deep-enough", MAX_JSON_DEPTH), row("too-deep", MAX_JSON_DEPTH + 1)]
    if fmt == "json":
        body = json.dumps(rows).encode()
    elif fmt == "jsonl":
        body = jsonl(rows)
    else:
        cells = [
            f'{r["external_id"]},"{json.dumps(r["data"]).replace(chr(34), 2 * chr(34))}"'
            for r in rows
        ]
        body = ("external_id,data\n" + "\n".join(cells) + "\n").encode()
    report = imported(project, body, fmt=fmt)
    first = 2 if fmt == "csv" else 1
    assert [(e.row, e.message) for e in report.errors] == [
        (first + 1, f"nests deeper than {MAX_JSON_DEPTH} levels")
    ]
    assert stored_ids(project) == ["deep-enough"]


def test_a_json_lines_row_too_deep_for_the_parser_is_a_row_error(org):
    """json.loads raised RecursionError, which crashed the import."""
    project = make_project(org)
    body = nested(100_000) + b"\n" + nested(5_000, b'{"a":', b"}")[:-5_000] + b"1" + b"}" * 5_000
    body += b"\n" + jsonl(image_rows(1))
    report = imported(project, body)
    assert where(report) == [(1, ""), (2, "")]
    assert "nests deeper" in report.errors[0].message
    assert stored_ids(project) == ["img-0"]


def test_a_json_lines_row_larger_than_the_limit_is_a_row_error_and_the_next_row_is_read(org):
    project = make_project(org)
    huge = {"external_id": "huge", "data": {**VALID, "blob": "x" * (MAX_ROW_BYTES + 10)}}
    body = jsonl([huge]) + jsonl(image_rows(1))
    report = imported(project, body)
    assert [(e.row, e.message) for e in report.errors] == [(1, "the row is larger than 32 MB")]
    assert stored_ids(project) == ["img-0"]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_row_larger_than_the_limit_ends_a_json_array_or_csv_file_naming_it(org, fmt, monkeypatch):
    """Past a huge row neither format can be resynchronised; the error says the rest was not read.

    A JSON array's row is measured from the parser's chunk of 64 KB after its start. The limit
    is lowered to 2 MB here: yajl gathers one long string in time quadratic in its length (a
    32 MB one takes 4 s, no more per byte than importing), which would only slow the test."""
    monkeypatch.setattr(task_files, "MAX_ROW_BYTES", 2 * 2**20)
    project = make_project(org)
    blob = "x" * (2 * 2**20 + 2**16)
    if fmt == "json":
        rows = [image_rows(1)[0], {"external_id": "huge", "data": {**VALID, "blob": blob}}]
        body = json.dumps(rows + image_rows(1, start=1)).encode()
    else:
        body = (
            f"external_id,width,height,blob\nimg-0,5,5,x\nhuge,5,5,{blob}\nimg-1,5,5,x\n".encode()
        )
    report = imported(project, body, fmt=fmt)
    row = 2 if fmt == "json" else 3
    assert [(e.row, e.message) for e in report.errors] == [
        (row, "the row is larger than 2 MB; the rest of the file was not read")
    ]
    assert stored_ids(project) == ["img-0"]


# Item 3: values PostgreSQL refuses, and all or nothing.

REFUSED = [
    ({"external_id": "nul\x00id", "data": VALID}, "external_id"),
    ({"external_id": "lone-\ud800", "data": VALID}, "external_id"),
    ({"external_id": "v1", "data": {**VALID, "note": "a\x00b"}}, "data.note"),
    ({"external_id": "v2", "data": {**VALID, "n\x00te": "x"}}, "data.n\\u0000te"),
    ({"external_id": "v3", "data": {**VALID, "note": ["\udfff"]}}, "data.note[0]"),
    ({"external_id": "v4", "data": {**VALID, "lo\ud800": 1}}, "data.lo?"),
    ({"external_id": "v5", "data": VALID, "gold_answer": {"boxes": "\x00"}}, "gold_answer.boxes"),
    ({"external_id": "v6", "data": VALID, "priority": 2**40}, "priority"),
    ({"external_id": "v7", "data": VALID, "priority": -(2**62)}, "priority"),
]


def refused_file(fmt: str) -> bytes:
    rows = image_rows(2) + [row for row, _ in REFUSED]
    # json.dumps escapes NUL and lone surrogates (\u0000, \ud800), as other tools write them.
    return json.dumps(rows).encode() if fmt == "json" else jsonl(rows)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_every_value_postgresql_refuses_is_a_row_error_before_anything_is_written(org, fmt):
    """A NUL in an external_id passed validation and failed the job in PostgreSQL."""
    project = make_project(org)
    report = imported(project, refused_file(fmt), fmt=fmt, on_error="abort")
    assert not report.imported and report.created == 0
    assert where(report) == [(3 + i, field) for i, (_, field) in enumerate(REFUSED)]
    assert not Task.objects.exists()
    report = imported(project, refused_file(fmt), fmt=fmt, on_error="skip")
    assert report.created == 2 and report.invalid == len(REFUSED)
    assert stored_ids(project) == ["img-0", "img-1"]


def test_a_json_array_keeps_surrogate_pairs_and_refuses_a_lone_surrogate_far_into_the_file(org):
    """ijson's C parser turned a lone \\ud800 into "?" silently; the file is then read again
    by the Python parser, and the rows already read are not read twice."""
    project = make_project(org)
    rows = [{"external_id": f"r{i}", "data": {**VALID, "note": "\U0001f600"}} for i in range(2000)]
    rows[1499]["data"]["note"] = "x\ud800y"  # far past the first 64 KB
    report = imported(project, json.dumps(rows).encode(), fmt="json")  # json.dumps escapes both
    assert [(e.row, e.field) for e in report.errors] == [(1500, "data.note")]
    assert (report.rows, report.created) == (2000, 1999)
    assert Task.objects.get(external_id="r0").data["note"] == "\U0001f600"


def test_text_that_only_looks_like_an_escaped_nul_is_kept(org):
    project = make_project(org)
    note = "C:\\u0000\\dir"  # a backslash, then "u0000"
    assert imported(project, jsonl([{"external_id": "a", "data": {**VALID, "note": note}}])).created
    assert Task.objects.get().data["note"] == note


def test_numbers_beyond_any_integer_column_are_row_errors(org):
    """JSON Lines reads integers of any size; a JSON array's parser refuses them (see below)."""
    project = make_project(org)
    rows = [
        {"external_id": 10**250, "data": VALID},
        {"external_id": "p", "data": VALID, "priority": -(2**70)},
        {"external_id": 2**64, "data": {**VALID, "big": 10**300}},
    ]
    report = imported(project, jsonl(rows))
    assert [(e.row, e.field, e.message) for e in report.errors] == [
        (1, "external_id", "must be 1 to 200 characters long"),
        (2, "priority", "must be within (-32768, 32767)"),
    ]
    # An integer id is its decimal text; jsonb keeps any integer in data.
    assert Task.objects.get(external_id=str(2**64)).data["big"] == 10**300


def test_a_skip_job_reports_rows_with_unstorable_keys_and_stores_its_report(org):
    """The report is jsonb too: the NUL a row error names is written as an escape."""
    project = make_project(org)
    job, _ = task_import_start(
        project=project,
        upload=SimpleUploadedFile("t.jsonl", refused_file("jsonl")),
        fmt="jsonl",
        on_error="skip",
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = task_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE, job.error
    assert job.report["invalid"] == len(REFUSED) and job.report["created"] == 2
    assert {
        "row": 6,
        "field": "data.n\\u0000te",
        "message": "must not contain a NUL character",
    } in (job.report["errors"])


def test_a_row_error_naming_a_huge_key_keeps_a_short_path(org):
    project = make_project(org)
    key = "k" * 2**20 + "\x00"
    rows = [{"external_id": eid, "data": {**VALID, key: 1}} for eid in ("a", "b")]
    report = imported(project, jsonl(rows))
    assert [len(e.field) for e in report.errors] == [300, 300]
    assert report.errors[0].field.startswith("data.kkk")


# The batch refused is the second of five (its answer is read when the fourth is sent, two
# being in flight), or the last (read after every batch was sent).
@pytest.mark.parametrize("refused", ["img-5", "img-19"])
def test_all_or_nothing_writes_nothing_when_the_database_refuses_a_later_batch(org, refused):
    """Batches committed one by one: a failure in batch 2 left batch 1 (5,000 of 6,000 rows)."""
    project = make_project(org)
    with connection.cursor() as cursor:  # a refusal no validation foresees; undone with the test
        cursor.execute(
            f"ALTER TABLE tasks_task ADD CONSTRAINT test_refuses CHECK (external_id <> '{refused}')"
        )
    body = jsonl(image_rows(20))
    with pytest.raises(IntegrityError):
        imported(project, body, on_error="abort", batch_size=4)
    assert not Task.objects.exists() and not Slot.objects.exists()
    # The thread reading ahead stopped with the write, not when the traceback is collected.
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
    # Skip mode commits batch by batch: what came before the refused batch stays.
    with pytest.raises(IntegrityError):
        imported(project, body, on_error="skip", batch_size=4)
    assert len(stored_ids(project)) == (4 if refused == "img-5" else 16)


def test_an_all_or_nothing_job_that_fails_in_the_database_leaves_no_row(org):
    project = make_project(org)
    job, refused = task_import_start(
        project=project, upload=SimpleUploadedFile("t.jsonl", jsonl(image_rows(7000))), fmt="jsonl"
    )
    assert refused is None
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE tasks_task ADD CONSTRAINT test_refuses CHECK (external_id <> 'img-6500')"
        )
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.FAILED and "test_refuses" in job.error
    assert not Task.objects.exists()


# Item 7: CSV cells, encodings and the shapes of files.


def test_only_ascii_whole_numbers_in_a_csv_are_numbers(org):
    """``str.isdigit`` let ``²`` and Arabic-Indic digits reach ``int()``, which raised; so did ``--1``."""
    project = make_project(org)
    long = "9" * 5000
    body = (
        "external_id,width,height,note\n"
        f"a,5,5,--1\nb,5,5,²\nc,5,5,{AR}\nd,5,5,{long}\ne,5,5, +7 \nf,5,5,-3\n"
        f"007,5,5,9223372036854775808\n{AR},5,5,x\n"
    ).encode()
    report = imported(project, body, fmt="csv", on_error="abort")
    assert report.imported and report.created == 8
    notes = dict(Task.objects.values_list("external_id", "data__note"))
    assert notes == {
        "a": "--1", "b": "²", "c": AR, "d": long, "e": 7, "f": -3,
        "007": "9223372036854775808", AR: "x",
    }  # fmt: skip


def test_a_csv_priority_that_is_not_a_whole_number_in_range_is_a_row_error(org):
    project = make_project(org)
    cells = ["--1", "²", AR, "9" * 5000, "40000", "-32769", "1.5", "+12", " -32768 "]
    body = "external_id,width,height,priority\n" + "".join(
        f"p{i},5,5,{cell}\n" for i, cell in enumerate(cells)
    )
    report = imported(project, body.encode(), fmt="csv")
    assert [(e.row, e.field, e.message) for e in report.errors] == [
        (2, "priority", "must be a whole number"),
        (3, "priority", "must be a whole number"),
        (4, "priority", "must be a whole number"),
        (5, "priority", "must be within (-32768, 32767)"),
        (6, "priority", "must be within (-32768, 32767)"),
        (7, "priority", "must be within (-32768, 32767)"),
        (8, "priority", "must be a whole number"),
    ]
    assert dict(Task.objects.values_list("external_id", "priority")) == {"p7": 12, "p8": -32768}


def test_invalid_utf8_nul_and_a_bad_header_in_a_csv_are_row_errors_with_their_numbers(org):
    """Invalid UTF-8 raised UnicodeDecodeError out of the reader: a 500, or a crashed job."""
    project = make_project(org)
    body = (
        b"\xef\xbb\xbfexternal_id,width,height,note\n"  # a byte-order mark is not a column
        b"a,5,5,ok\nb,5,5,caf\xe9\nc,5,5,a\x00b\nd\xff,5,5,x\ne,5,5,last"  # no trailing newline
    )
    report = imported(project, body, fmt="csv")
    assert [(e.row, e.field, e.message) for e in report.errors] == [
        (3, "data.note", "is not valid UTF-8 text"),
        (4, "data.note", "must not contain a NUL character"),
        (5, "external_id", "is not valid UTF-8 text"),
    ]
    assert stored_ids(project) == ["a", "e"]
    report = imported(project, b"external_id,wid\xffth\na,5\n", fmt="csv")
    assert [(e.row, e.message) for e in report.errors] == [
        (1, "the header is not valid UTF-8 text")
    ]


def test_a_csv_data_cell_larger_than_the_csv_modules_default_limit_imports(org):
    project = make_project(org)
    data = json.dumps({**VALID, "blob": "x" * 300_000}).replace('"', '""')
    report = imported(project, f'external_id,data\nbig,"{data}"\n'.encode(), fmt="csv")
    assert report.created == 1 and len(Task.objects.get().data["blob"]) == 300_000


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_byte_order_mark_does_not_hide_the_first_row(org, fmt):
    project = make_project(org)
    rows = image_rows(2)
    body = json.dumps(rows).encode() if fmt == "json" else jsonl(rows)
    assert imported(project, b"\xef\xbb\xbf" + body, fmt=fmt, on_error="abort").created == 2


@pytest.mark.parametrize("on_error", ["abort", "skip"])
@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("t.json", b"", None),  # refused by the upload field itself
        ("t.jsonl", b"  \n\n", "The file is empty."),
        ("t.csv", b"\xef\xbb\xbf", "The file is empty."),
        ("t.json", b'{"width": 5}', "The file must be a JSON array of objects."),
        ("t.json", b"12", "The file must be a JSON array of objects."),
        ("t.json", b" " * 70_000 + b"{}", "The file must be a JSON array of objects."),
    ],
    ids=["empty", "blank-lines", "bom-only", "object", "number", "object-after-70kb-of-spaces"],
)
def test_a_file_that_is_not_a_task_file_at_all_is_a_400_in_either_mode(
    org, name, body, message, on_error
):
    project = make_project(org)
    response = upload(org.client(Role.MANAGER), project, name, body, on_error=on_error)
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]
    if message:
        assert response.json()["error"]["fields"] == {"file": [message]}
    assert not TaskImport.objects.exists() and not Task.objects.exists()


@pytest.mark.parametrize(
    ("body", "row", "reason"),
    [
        (b'[{"width": 5, "height": 5}] trailing', 2, "trailing garbage"),
        (b'[{"width": 5, "height": 5}, {"width": 6', 2, ""),
        (b'[{"width": 5, "height": 5}, {"note": "caf\xe9"}]', 2, "UTF8"),
        (b'[{"width": 5, "height": 5, "n": 123456789012345678901234567890}]', 1, "overflow"),
        (b"[" + nested(100_000), 2, "premature EOF"),
    ],
    ids=["trailing", "truncated", "not-utf8", "int-overflow", "deep-and-truncated"],
)
def test_a_json_array_that_stops_being_json_is_a_400_naming_the_row(org, body, row, reason):
    project = make_project(org)
    response = upload(org.client(Role.MANAGER), project, "t.json", body)
    assert response.status_code == 400, response.content
    error = response.json()["report"]["errors"][-1]
    assert error["row"] == row and reason in error["message"]
    assert not Task.objects.exists()


# Item 10: duplicate external ids.


def test_a_duplicate_external_id_in_one_file_is_an_invalid_row_naming_the_first(org):
    """The first row won and the second was counted as existing; 77 and "77" collapsed."""
    project = make_project(org)
    rows = [{"external_id": eid, "data": VALID} for eid in (77, "77", "a", "b", "a")]
    rows.append({"data": {**VALID, "url": "same"}})
    rows.append({**VALID, "url": "same"})  # the same data in the other shape, no id either
    report = imported(project, jsonl(rows), on_error="abort")
    assert not report.imported and not Task.objects.exists()
    assert [(e.row, e.field, e.message) for e in report.errors] == [
        (2, "external_id", "duplicates row 1"),
        (5, "external_id", "duplicates row 3"),
        (7, "external_id", "has the same data as row 6, and neither has an external_id"),
    ]
    report = imported(project, jsonl(rows), on_error="skip")
    assert (report.created, report.invalid, report.existing) == (4, 3, 0)
    assert Task.objects.get(external_id="77").external_id == "77"
    # Across files, an id the project has is existing, not a duplicate.
    report = imported(project, jsonl(rows[:1]), on_error="abort")
    assert report.imported and (report.created, report.existing) == (0, 1)


def test_a_duplicate_id_in_a_csv_names_the_first_row_by_its_spreadsheet_number(org):
    project = make_project(org)
    report = imported(project, b"external_id,width,height\n7,5,5\n8,5,5\n7,5,5\n", fmt="csv")
    assert [(e.row, e.message) for e in report.errors] == [(4, "duplicates row 2")]


def test_the_duplicate_check_of_a_million_ids_takes_a_fixed_size_hash_each():
    seen = SeenIds()
    for number in range(1, 1_000_001):
        assert seen.add(f"img-{number:07d}", number) is None
    assert seen.add("img-0765432", 2_000_000) == 765_432
    assert seen.add("far", 2**40) is None and seen.add("far", 2**40 + 1) == 2**32 - 1
    # 12 bytes a slot, at most half full: 24 MB, where a set of the strings takes over 100 MB.
    assert seen.nbytes <= 25 * 2**20


# Property: no file reaches an exception.

FILE_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [b"[", b"]", b"{", b"}", b'"', b",", b":", b"\n", b"\\", b"\x00", b"\xff", b"\xef\xbb\xbf",
             b"1", b"-", b"e9", b"NaN", b"\\ud800", b'"external_id"', b'"data"', b'"priority"',
             b'"width":5,"height":5', b"99999999999999999999", b"\xc3\xa9", b"\r", b"null"]
        ),
        max_size=80,
    ).map(b"".join),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=FILE_BYTES, fmt=st.sampled_from(["json", "jsonl", "csv"]))
def test_any_bytes_read_as_rows_or_row_errors_never_an_exception(body, fmt):
    kind = get_kind("bbox")
    for item in read_rows(io.BytesIO(body), fmt, kind=kind, schema=BBOX_SCHEMA):
        if isinstance(item, Row):
            # storable: valid Unicode, no NaN
            json.dumps(json.loads(item.data_json), allow_nan=False).encode()
            assert "\\u0000" not in item.data_json and "\x00" not in item.external_id
            item.external_id.encode()
        else:
            assert item and all(error.row >= 1 and error.message for error in item)


def test_large_rows_are_written_in_batches_bounded_by_bytes(org, monkeypatch):
    """Rows of megabytes were held by the batch of 5,000: a file's worth of them in memory."""
    monkeypatch.setattr(imports, "BATCH_BYTES", 3 * 2**20)
    project = make_project(org)
    rows = [{"external_id": f"r{i}", "data": {**VALID, "blob": "x" * 2**20}} for i in range(12)]
    body = jsonl(rows)
    with CaptureQueriesContext(connection) as queries:
        report = imported(project, body, on_error="abort")
    inserts = [q for q in queries.captured_queries if "INSERT INTO tasks_task" in q["sql"]]
    sizes = [len(q["sql"]) for q in inserts]
    assert report.created == 12 and len(inserts) == 4  # three rows of 1 MB each time
    assert max(sizes) < 4 * 2**20


def test_a_nul_in_an_upload_form_field_is_refused_naming_it(org):
    project = make_project(org)
    response = upload(
        org.client(Role.MANAGER), project, "t.jsonl", jsonl(image_rows(2)), on_error="skip\x00"
    )
    assert response.status_code == 400
    assert "on_error" in response.json()["error"]["fields"]
    assert not TaskImport.objects.filter(project=project).exists()
    assert not Task.objects.filter(project=project).exists()


@pytest.fixture
def upload_target(org):
    return org.client(Role.MANAGER), make_project(org)


# Files of well-formed rows whose ids and values are any text, NUL and lone surrogates included.
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)
ROW_FILES = st.lists(
    st.fixed_dictionaries(
        {"data": st.fixed_dictionaries({"width": st.just(5), "height": st.just(5)})},
        optional={
            "external_id": st.one_of(TEXT, st.integers()),
            "priority": st.integers(),
            "note": TEXT,
        },
    ),
    min_size=1,
    max_size=6,
).map(lambda rows: "".join(json.dumps(row) + "\n" for row in rows).encode())


@settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", 80)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(FILE_BYTES, ROW_FILES),
    fmt=st.sampled_from(["json", "jsonl", "csv"]),
    on_error=st.sampled_from(["abort", "skip"]),
)
def test_any_uploaded_file_is_imported_or_refused_whole_never_half(
    upload_target, body, fmt, on_error
):
    """Through the API and the job, as a client sends it: a refusal changes nothing, and an
    accepted file's job ends done, never failed inside the database."""
    client, project = upload_target
    tasks_before = Task.objects.filter(project=project).count()
    imports_before = TaskImport.objects.filter(project=project).count()
    response = upload(client, project, f"t.{fmt}", body, on_error=on_error)
    assert response.status_code in (202, 400), response.content
    event(f"{on_error}: {response.status_code}")
    if response.status_code == 400:
        assert response.json()["error"]["fields"]
        assert Task.objects.filter(project=project).count() == tasks_before
        assert TaskImport.objects.filter(project=project).count() == imports_before
        return
    job = TaskImport.objects.get(pk=response.json()["id"])
    assert job.status == ImportStatus.DONE, job.error
    assert (
        Slot.objects.filter(project=project).count()
        == Task.objects.filter(project=project).count() * project.overlap
    )
