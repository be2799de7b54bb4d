"""Outside a transaction, batches are written by a background thread while the next is parsed."""

import io
import json
import threading

import pytest

from tasks.models import Slot, Task
from tasks.services import imports
from tests.conftest import image_rows, make_project

pytestmark = pytest.mark.django_db(transaction=True)


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def test_pipelined_import_writes_every_batch_once_in_a_writer_thread(org, monkeypatch):
    project = make_project(org, overlap=2)
    threads = set()
    write = imports._write

    def recording_write(project, rows):
        threads.add(threading.get_ident())
        return write(project, rows)

    monkeypatch.setattr(imports, "_write", recording_write)
    body = jsonl(image_rows(2_500))
    report = imports.tasks_import(
        project=project, open_stream=lambda: io.BytesIO(body), fmt="jsonl", batch_size=300
    )
    assert (report.created, report.existing) == (2_500, 0)
    assert threads and threading.get_ident() not in threads
    assert Task.objects.filter(project=project).count() == 2_500
    assert Slot.objects.filter(project=project).count() == 5_000
    again = imports.tasks_import(
        project=project, open_stream=lambda: io.BytesIO(body), fmt="jsonl", batch_size=300
    )
    assert (again.created, again.existing) == (0, 2_500)


def test_a_failing_batch_stops_the_import_with_its_error(org, monkeypatch):
    project = make_project(org)
    calls = []

    def failing_write(project, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return len(rows)

    monkeypatch.setattr(imports, "_write", failing_write)
    body = jsonl(image_rows(1_000))
    with pytest.raises(RuntimeError, match="disk full"):
        imports.tasks_import(
            project=project, open_stream=lambda: io.BytesIO(body), fmt="jsonl", batch_size=100
        )
    # The writer stopped at the failure instead of writing the rest.
    assert len(calls) <= 3
