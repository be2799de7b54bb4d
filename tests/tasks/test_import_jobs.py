"""Imports as background jobs: queued on upload, run once, reported, their files removed."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase

from tasks.models import ImportStatus, Slot, Task, TaskImport
from tasks.services.imports import task_import_run, task_import_start
from tests.helpers import (
    database_url,
    image_rows,
    import_rows,
    make_project,
    project_row_held,
    wait_for,
)
from workforce.models import AuditEvent, PendingJob, Role
from workforce.queue import pending_jobs_requeue

pytestmark = pytest.mark.django_db


def jsonl(rows: list[dict]) -> SimpleUploadedFile:
    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return SimpleUploadedFile("tasks.jsonl", body)


def start(project, rows, **options):
    """Queue an import without running it."""
    job, refused = task_import_start(project=project, upload=jsonl(rows), fmt="jsonl", **options)
    assert refused is None
    return job


def test_a_job_imports_its_file_reports_and_removes_the_file(org):
    project = make_project(org, overlap=2)
    rows = image_rows(5)
    rows[3]["data"].pop("width")
    job = start(project, rows, on_error="skip", actor=org.manager.user)
    stored = job.file.name
    assert job.status == ImportStatus.QUEUED and default_storage.exists(stored)
    assert not Task.objects.exists()  # nothing before the job runs

    # The file goes once the outcome is committed.
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.DONE and job.rows_read == 5
    assert (job.report["created"], job.report["invalid"]) == (4, 1)
    assert job.report["errors"] == [
        {"row": 4, "field": "data.width", "message": "this field is required"}
    ]
    assert Slot.objects.filter(project=project).count() == 8
    assert not default_storage.exists(stored) and job.file.name == ""
    assert job.started_at <= job.finished_at
    verbs = list(AuditEvent.objects.values_list("verb", flat=True).order_by("id"))
    assert verbs[-2:] == ["project.tasks_import_queued", "project.tasks_imported"]


def test_all_or_nothing_refuses_a_bad_file_before_keeping_it(org):
    project = make_project(org)
    rows = image_rows(3)
    rows[2]["priority"] = "high"
    job, refused = task_import_start(project=project, upload=jsonl(rows), fmt="jsonl")
    assert job is None and not refused.imported and refused.invalid == 1
    assert not TaskImport.objects.exists() and not Task.objects.exists()


def test_a_job_delivered_again_after_it_finished_changes_nothing(org):
    project = make_project(org)
    job = start(project, image_rows(3))
    first = task_import_run(import_id=job.pk)
    again = task_import_run(import_id=job.pk)
    assert again.status == ImportStatus.DONE and again.report == first.report
    assert Task.objects.count() == 3


def test_a_job_stopped_halfway_imports_only_the_rest_when_run_again(org):
    project = make_project(org)
    job = start(project, image_rows(6))
    import_rows(project, image_rows(4))  # what the first run wrote before its worker stopped
    TaskImport.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING)
    job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.DONE
    assert (job.report["created"], job.report["existing"]) == (2, 4)
    assert Task.objects.count() == 6


def test_a_job_whose_project_was_deleted_does_nothing(org):
    project = make_project(org)
    job = start(project, image_rows(2))
    stored = job.file.name
    project.delete()
    assert not default_storage.exists(stored)  # the upload went with its import
    assert task_import_run(import_id=job.pk) is None
    assert not Task.objects.exists()


def test_a_job_whose_file_is_gone_fails_and_says_why(org):
    project = make_project(org)
    job = start(project, image_rows(2))
    default_storage.delete(job.file.name)
    job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.FAILED and "No such file" in job.error
    assert not Task.objects.exists()


def test_imports_are_listed_and_shown_to_staff_of_the_organization_only(org, other_org):
    project = make_project(org)
    manager = org.client(Role.MANAGER)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = manager.post(
            f"/api/v1/projects/{project.pk}/tasks/import",
            {"file": jsonl(image_rows(2)), "on_error": "skip"},
            format="multipart",
        )
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response["Location"] == f"/api/v1/projects/{project.pk}/imports/{job_id}"
    listed = manager.get(f"/api/v1/projects/{project.pk}/imports").json()
    assert [j["id"] for j in listed["results"]] == [job_id]
    shown = org.client(Role.QA_LEAD).get(response["Location"]).json()
    assert shown["status"] == "done" and shown["on_error"] == "skip"
    assert org.client(Role.ANNOTATOR).get(response["Location"]).status_code == 403
    assert other_org.client(Role.MANAGER).get(response["Location"]).status_code == 404
    assert manager.get(f"/api/v1/projects/{project.pk}/imports/{job_id + 1}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_an_upload_sent_through_the_broker(
    org, celery_worker_process, eager_jobs_off
):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    body = "".join(json.dumps(row) + "\n" for row in image_rows(120)).encode()
    response = client.post(
        f"/api/v1/projects/{project.pk}/tasks/import",
        {"file": SimpleUploadedFile("tasks.jsonl", body)},
        format="multipart",
    )
    # Queued, or already running: an all-or-nothing job starts while the upload is checked.
    assert response.status_code == 202 and response.json()["status"] in (
        "queued",
        "running",
        "done",
    )

    def finished() -> dict | None:
        job = client.get(response["Location"]).json()
        return job if job["status"] in ("done", "failed") else None

    job = wait_for(finished, timeout=60, interval=0.2, what="the worker to finish the import")
    assert job["status"] == "done", job
    assert job["report"]["created"] == 120 and Task.objects.filter(project=project).count() == 120


@pytest.mark.django_db(transaction=True)
def test_an_import_the_broker_cannot_take_stays_queued_and_runs_once_it_is_back(org):
    """A process whose broker is down (nothing listens on its port) queues an import."""
    project = make_project(org)
    script = (
        "from django.core.files.uploadedfile import SimpleUploadedFile\n"
        "from tasks.models import Project\n"
        "from tasks.services.imports import task_import_start\n"
        f"upload = SimpleUploadedFile('t.jsonl', {jsonl(image_rows(2)).read()!r})\n"
        f"job, _ = task_import_start(project=Project.objects.get(pk={project.pk}), "
        "upload=upload, fmt='jsonl')\n"
        "print('queued', job.pk)\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    job = TaskImport.objects.get()
    assert (job.status, job.error) == (ImportStatus.QUEUED, "")
    assert default_storage.exists(job.file.name) and not Task.objects.exists()
    assert PendingJob.objects.get().args == [job.pk]
    # The broker is back. Jobs run in-process here, so the requeue runs the import itself.
    assert pending_jobs_requeue() == 1
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and Task.objects.count() == 2
    assert not PendingJob.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("on_error", ["abort", "skip"])
def test_an_import_waits_its_turn_behind_the_projects_earlier_import_past_the_lock_timeout(
    org, eager_jobs_off, on_error
):
    """An earlier import holds the project's row until its file is written, which may take
    longer than a worker's lock timeout: the next import waits for it instead of failing."""
    project = make_project(org)
    job = start(project, image_rows(3), on_error=on_error)
    started = time.monotonic()
    with project_row_held(project, seconds=1.0):
        job = task_import_run(import_id=job.pk)
        waited = time.monotonic() - started
        with connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "100ms"  # only the project's lock waited longer
    assert (job.status, job.error) == (ImportStatus.DONE, "")
    assert Task.objects.filter(project=project).count() == 3
    assert waited >= 1.0
