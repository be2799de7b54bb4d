"""An all-or-nothing import whose job starts before the upload's check ends (``streamed``): the
job writes the rows as the request checks them, and keeps nothing unless every row passed."""

import io
import json
import threading
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tasks.jobs import run_import
from tasks.locks import IMPORT_RUN_LOCK_BASE
from tasks.models import ImportStatus, Project, Slot, Task, TaskImport
from tasks.services import imports
from tests.helpers import image_rows, make_project, project_row_held, wait_for
from workforce.models import AuditEvent, AuditVerb, Role

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 12_000  # three batches of the job's


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def checked_lines(project, rows: list[dict]) -> bytes:
    """The lines the upload's check writes for ``rows``, as a streamed import's file holds them."""
    out = io.BytesIO()
    imports._check_into(out, project, io.BytesIO(jsonl(rows)), "jsonl")
    return out.getvalue()


def streamed_import(project) -> TaskImport:
    """A streamed import as the request leaves it before checking: the header written alone."""
    return TaskImport.objects.create(
        project=project,
        file=ContentFile(imports._checked_header(project), name="tasks.checked"),
        format="jsonl",
        on_error=imports.OnError.ABORT,
        streamed=True,
    )


def append(job: TaskImport, data: bytes) -> None:
    with job.file.storage.open(job.file.name, "ab") as out:
        out.write(data)


def run_in_thread(job: TaskImport) -> threading.Thread:
    def run() -> None:
        try:
            imports.task_import_run(import_id=job.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def run_lock_free(job_id: int) -> bool:
    """Whether no run of the import holds its run lock (taken and let go again here)."""
    key = IMPORT_RUN_LOCK_BASE + job_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        free = cursor.fetchone()[0]
        if free:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    return free


def test_the_job_writes_the_rows_as_the_check_writes_them(org):
    project = make_project(org)
    job = streamed_import(project)
    lines = checked_lines(project, image_rows(ROWS)).splitlines(keepends=True)
    thread = run_in_thread(job)
    # Half the rows, cut in the middle of a line: the job waits for the rest of it.
    half = b"".join(lines[: ROWS // 2])
    append(job, half + lines[ROWS // 2][:7])
    wait_for(
        lambda: TaskImport.objects.get(pk=job.pk).status == ImportStatus.RUNNING,
        what="the job to start",
    )
    assert thread.is_alive()
    append(job, lines[ROWS // 2][7:] + b"".join(lines[ROWS // 2 + 1 :]))
    append(job, imports.CHECK_PASSED.encode())
    thread.join(timeout=60)
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE, job.error
    assert job.report["created"] == ROWS and job.report["rows"] == ROWS
    assert Task.objects.filter(project=project).count() == ROWS == Slot.objects.count()
    assert not job.file


def test_a_settings_change_while_an_import_writes_is_refused_naming_it(org):
    """The import holds the project until its file is written, however long: a change that
    waited past its lock timeout says which import to wait for, and changes nothing."""
    project = make_project(org)
    job = streamed_import(project)
    manager = org.client(Role.MANAGER)
    thread = run_in_thread(job)
    append(job, checked_lines(project, image_rows(ROWS)))
    wait_for(lambda: TaskImport.objects.get(pk=job.pk).rows_read >= 10_000, what="batches written")
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    try:
        renamed = manager.patch(f"/api/v1/projects/{project.pk}/", {"name": "Renamed"})
        archived = manager.post(f"/api/v1/projects/{project.pk}/archive/")
    finally:
        append(job, imports.CHECK_PASSED.encode())
        thread.join(timeout=60)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    for refused in (renamed, archived):
        assert refused.status_code == 409, refused.content
        error = refused.json()["error"]
        assert error["code"] == "import_in_progress"
        assert f"Import {job.pk} is writing this project's tasks" in error["message"]
    assert Project.objects.get(pk=project.pk).name == project.name
    assert Project.objects.get(pk=project.pk).status == project.status
    assert TaskImport.objects.get(pk=job.pk).status == ImportStatus.DONE
    # Once the import is done, the same change goes through.
    renamed = manager.patch(f"/api/v1/projects/{project.pk}/", {"name": "Renamed"})
    assert renamed.status_code == 200, renamed.content
    assert Project.objects.get(pk=project.pk).name == "Renamed"


def test_a_settings_change_waiting_on_anything_else_answers_503(org):
    """Another holder of the project's row than an import: retry shortly, as any lock wait."""
    project = make_project(org)
    with project_row_held(project, seconds=1.0):
        response = org.client(Role.MANAGER).patch(
            f"/api/v1/projects/{project.pk}/", {"name": "Renamed"}
        )
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "timed_out"
    assert Project.objects.get(pk=project.pk).name == project.name


def test_a_refused_upload_leaves_nothing_though_its_job_had_written_batches(org):
    """Refused for what no row shows the job (a JSON array left open at its end, say)."""
    project = make_project(org)
    job = streamed_import(project)
    thread = run_in_thread(job)
    append(job, checked_lines(project, image_rows(ROWS)))
    wait_for(lambda: TaskImport.objects.get(pk=job.pk).rows_read >= 10_000, what="batches written")
    # As the request ends a refused upload: the last line says so, and the import goes.
    append(job, imports.CHECK_REFUSED.encode())
    TaskImport.objects.filter(pk=job.pk).delete()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert not Task.objects.exists() and not Slot.objects.exists()
    assert not TaskImport.objects.exists()


def test_a_check_that_stopped_fails_the_import_and_keeps_nothing(org, monkeypatch):
    """The request checking the upload was killed: no line ends the file."""
    monkeypatch.setattr(imports, "CHECK_STALLED_AFTER", timedelta(seconds=0.5))
    project = make_project(org)
    job = streamed_import(project)
    append(job, checked_lines(project, image_rows(ROWS)))
    imports.task_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert "check wrote nothing for" in job.error and "Upload the file again" in job.error
    assert not Task.objects.exists() and not job.file


def test_a_real_worker_starts_before_the_check_ends_and_refuses_with_it(
    org, celery_worker_process, eager_jobs_off
):
    project = make_project(org)
    client = org.client(Role.MANAGER)

    def upload(rows: list[dict]):
        return client.post(
            f"/api/v1/projects/{project.pk}/tasks/import",
            {"file": SimpleUploadedFile("tasks.jsonl", jsonl(rows))},
            format="multipart",
        )

    response = upload(image_rows(40_000))
    assert response.status_code == 202, response.content
    job = TaskImport.objects.get()
    assert job.streamed
    wait_for(
        lambda: TaskImport.objects.get().status == ImportStatus.DONE,
        timeout=120,
        what="the worker to finish the import",
    )
    job.refresh_from_db()
    # The job began while the request was still checking: the import is recorded as queued
    # (accepted) once the check has passed.
    accepted = AuditEvent.objects.get(verb=AuditVerb.PROJECT_TASKS_IMPORT_QUEUED).at
    assert job.created_at < job.started_at < accepted
    assert Task.objects.count() == 40_000

    # A later upload's last row is invalid: the answer lists it, and its job keeps nothing.
    rows = image_rows(40_000, start=40_000)
    rows[-1]["data"] = {"image": 7}
    response = upload(rows)
    assert response.status_code == 400, response.content
    assert response.json()["report"]["invalid"] == 1
    assert response.json()["error"]["fields"]["file"][0].startswith("row 40000:")
    assert not TaskImport.objects.filter(pk__gt=job.pk).exists()
    refused = job.pk + 1
    wait_for(lambda: run_lock_free(refused), timeout=60, what="the refused job to end")
    assert Task.objects.count() == 40_000


def test_a_check_that_fails_midway_ends_the_file_refused_and_deletes_the_import(org, monkeypatch):
    """An error of the request's own (the database gone, say) while its job is reading."""
    project = make_project(org)
    queued, files = [], []
    lines = checked_lines(project, image_rows(10))
    monkeypatch.setattr(imports, "enqueue", lambda job, *ids: queued.extend(ids))

    def check_then_fail(out, *args):
        out.write(lines)
        name = TaskImport.objects.get().file.name
        # Held open, as the job holds it: what was written stays readable once the file goes.
        files.append((name, default_storage.open(name, "rb")))
        raise MemoryError

    monkeypatch.setattr(imports, "_check_into", check_then_fail)
    with pytest.raises(MemoryError):
        imports._start_streamed(project, io.BytesIO(jsonl(image_rows(10))), "jsonl", None, None)
    # Its job was queued first; it finds no import to run, or the file's last line refuses it.
    assert len(queued) == 1 and not TaskImport.objects.exists()
    [(name, held)] = files
    with held:
        assert held.read().endswith(lines + imports.CHECK_REFUSED.encode())
    assert not default_storage.exists(name) and not Task.objects.exists()


def test_the_check_writes_a_batch_once_it_holds_its_bytes(org, monkeypatch):
    """Rows of megabytes are written as they pass, not held until 5,000 of them have."""
    monkeypatch.setattr(imports, "BATCH_BYTES", 2**20)
    project = make_project(org)
    rows = image_rows(6)
    for row in rows:
        row["data"]["note"] = "x" * 600_000
    writes: list[int] = []

    class Out(io.BytesIO):
        def write(self, data: bytes) -> int:
            writes.append(len(data))
            return super().write(data)

    imports._check_into(Out(), project, io.BytesIO(jsonl(rows)), "jsonl")
    # Two rows a write (the second reaches a megabyte), then what is left.
    assert len(writes) == 4 and max(writes) < 2 * 2**20 and writes[-1] == 0


def test_with_streaming_off_the_job_is_queued_once_the_check_is_done(org, monkeypatch, settings):
    """For storage that shows another process's appends only once the file is closed."""
    settings.IMPORT_STREAMED = False
    project = make_project(org)
    queued = []
    monkeypatch.setattr(imports, "enqueue", lambda job, *ids: queued.extend(ids))
    monkeypatch.setattr(run_import.app.conf, "task_always_eager", False)
    upload = SimpleUploadedFile("t.jsonl", jsonl(image_rows(3)))
    job, refused = imports.task_import_start(project=project, upload=upload, fmt="jsonl")
    assert refused is None and not job.streamed and queued == [job.pk]
    with job.file.open("rb") as checked:
        assert checked.read().endswith(checked_lines(project, image_rows(3)))
