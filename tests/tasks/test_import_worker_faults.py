"""Imports whose worker dies: redelivered or recovered, never left running, every row once.

The process tests start Celery workers of their own (``--pool=prefork -c 1``, on a queue of
this module's own) and kill them with SIGKILL, as the OOM killer does.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from tasks.jobs import recover_imports
from tasks.locks import IMPORT_RUN_LOCK_BASE
from tasks.models import ImportStatus, Slot, Task, TaskImport
from tasks.services import imports
from tasks.services.imports import (
    MAX_IMPORT_ATTEMPTS,
    task_import_run,
    task_import_start,
    task_imports_recover,
)
from tests.faults import lock_held
from tests.helpers import database_url, image_rows, make_project, wait_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def jsonl_upload(count: int) -> SimpleUploadedFile:
    body = "".join(json.dumps(row) + "\n" for row in image_rows(count)).encode()
    return SimpleUploadedFile("tasks.jsonl", body)


def queued(project, count: int, **options) -> TaskImport:
    job, refused = task_import_start(
        project=project, upload=jsonl_upload(count), fmt="jsonl", **options
    )
    assert refused is None
    return job


def stall(job: TaskImport, *, attempts: int, ago: timedelta = timedelta(minutes=3)) -> None:
    """Leave the import as a worker killed mid-run leaves it."""
    TaskImport.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, attempts=attempts, heartbeat_at=timezone.now() - ago
    )


def test_recovery_requeues_stalled_imports_and_fails_those_out_of_attempts(org):
    project = make_project(org)
    stalled, live, exhausted, waiting = (queued(project, 3, on_error="skip") for _ in range(4))
    stall(stalled, attempts=1)
    stall(live, attempts=1, ago=timedelta(seconds=5))
    stall(exhausted, attempts=MAX_IMPORT_ATTEMPTS)
    # Beat runs the job by this name; jobs run in-process here, so the requeued import runs
    # when the recovery commits.
    beat = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert recover_imports.name in beat
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert recover_imports.apply().get() == 2
    states = dict(TaskImport.objects.values_list("pk", "status"))
    assert states == {
        stalled.pk: ImportStatus.DONE,
        live.pk: ImportStatus.RUNNING,
        exhausted.pk: ImportStatus.FAILED,
        waiting.pk: ImportStatus.QUEUED,  # no heartbeat yet: the broker has it
    }
    stalled.refresh_from_db()
    assert stalled.attempts == 2 and stalled.report["created"] == 3
    exhausted.refresh_from_db()
    assert exhausted.error == (
        f"The import was started {MAX_IMPORT_ATTEMPTS} times and its worker stopped each time; "
        "rows written so far are kept, and importing the same file again adds the rest."
    )
    assert not exhausted.file and Task.objects.count() == 3


def test_a_delivery_while_a_live_run_holds_the_import_returns_and_changes_nothing(org, monkeypatch):
    monkeypatch.setattr(imports, "RUN_LOCK_WAIT", timedelta(milliseconds=200))
    project = make_project(org)
    job = queued(project, 3)
    with psycopg.connect(database_url(), autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", [IMPORT_RUN_LOCK_BASE + job.pk])
        again = task_import_run(import_id=job.pk)
        assert (again.status, again.attempts) == (ImportStatus.QUEUED, 0)
        assert not Task.objects.exists()
    # The other run's session is gone, and its lock with it.
    assert task_import_run(import_id=job.pk).status == ImportStatus.DONE
    assert Task.objects.count() == 3


def test_a_delivery_after_every_attempt_fails_the_import_and_writes_nothing(org):
    project = make_project(org)
    job = queued(project, 3)
    stall(job, attempts=MAX_IMPORT_ATTEMPTS)
    job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.FAILED and "nothing was imported" in job.error
    assert not Task.objects.exists()


def test_progress_never_goes_back_when_a_run_starts_over(org):
    project = make_project(org)
    job = queued(project, 5)
    stall(job, attempts=1)
    TaskImport.objects.filter(pk=job.pk).update(rows_read=40)  # as far as a killed run got
    job = task_import_run(import_id=job.pk)
    assert job.status == ImportStatus.DONE and job.report["rows"] == 5
    assert job.rows_read == 40


@pytest.mark.django_db(transaction=True)
def test_a_running_import_beats_from_its_own_connection_even_while_it_waits(
    org, monkeypatch, worker_queue
):
    """An all-or-nothing import writes in one transaction; its heartbeat and progress are seen
    all the same, and an import waiting on a lock is alive, not stalled."""
    monkeypatch.setattr(imports, "HEARTBEAT_EVERY", timedelta(milliseconds=200))
    project = make_project(org)
    job = queued(project, 12_000)  # no worker takes this queue: the test runs the job itself
    outcome: list = []
    # The project's row is held elsewhere: the import reads its first batch, then waits.
    with lock_held("SELECT 1 FROM tasks_project WHERE id = %s FOR UPDATE", (project.pk,)):

        def run() -> None:
            try:
                outcome.append(task_import_run(import_id=job.pk))
            finally:
                connection.close()  # a worker's job closes its connection too

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        first = wait_for(
            lambda: TaskImport.objects.filter(pk=job.pk, status="running").first(),
            timeout=20,
            what="the import to start",
        )
        later = wait_for(
            lambda: TaskImport.objects.filter(
                pk=job.pk, heartbeat_at__gt=first.heartbeat_at + timedelta(milliseconds=300)
            ).first(),
            timeout=20,
            what="a heartbeat while the import waits",
        )
        assert later.status == ImportStatus.RUNNING and not Task.objects.exists()
        assert task_imports_recover(stalled_after=timedelta(seconds=2)) == 0
    runner.join(timeout=60)
    done = TaskImport.objects.get(pk=job.pk)
    assert done.status == ImportStatus.DONE and done.rows_read == 12_000
    assert Task.objects.filter(project=project).count() == 12_000


# Real workers, killed.


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@contextmanager
def prefork_worker(queue: str) -> Iterator[subprocess.Popen]:
    """A Celery worker with one pool process, taking jobs from ``queue``."""
    from config.celery import app

    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    name = f"{queue}-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "-c", "1",
         "-Q", queue, "-n", f"{name}@%h",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("The Celery worker did not start within 30 seconds.")
        yield process
    finally:
        for pid in [*children(process.pid), process.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture
def worker_queue(eager_jobs_off) -> Iterator[str]:
    """A queue of this test's own, which the jobs it sends go to."""
    from config.celery import app

    queue = f"assay-faults-{uuid.uuid4().hex[:12]}"
    default = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    app.conf.task_default_queue = default


def reading(job: TaskImport, rows: int) -> TaskImport:
    """Wait until a worker has read ``rows`` rows of the import."""
    return wait_for(
        lambda: TaskImport.objects.filter(pk=job.pk, status="running", rows_read__gte=rows).first(),
        timeout=60,
        interval=0.02,
        what=f"the import to read {rows} rows",
    )


def finished(job: TaskImport) -> TaskImport:
    return wait_for(
        lambda: TaskImport.objects.filter(pk=job.pk, status__in=["done", "failed"]).first(),
        timeout=90,
        interval=0.1,
        what="the import to finish",
    )


ROWS = 40_000


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_pool_process_killed_mid_import_is_redelivered_and_imports_every_row_once(
    org, worker_queue
):
    """The message of a killed pool process was acked as failed: the import stayed running."""
    project = make_project(org, overlap=2)
    with prefork_worker(worker_queue) as worker:
        job = queued(project, ROWS)  # all or nothing: one transaction, rolled back by the kill
        reading(job, 5_000)
        [child] = children(worker.pid)
        os.kill(child, signal.SIGKILL)
        job = finished(job)
    assert job.status == ImportStatus.DONE, job.error
    assert job.attempts == 2 and job.rows_read == ROWS
    assert (job.report["created"], job.report["existing"]) == (ROWS, 0)
    assert Task.objects.filter(project=project).count() == ROWS
    assert Slot.objects.filter(project=project).count() == 2 * ROWS


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_whole_worker_killed_mid_import_is_recovered_by_the_beat_job(org, worker_queue):
    """The broker keeps a dead worker's message for its one-hour visibility timeout."""
    project = make_project(org)
    with prefork_worker(worker_queue) as worker:
        job = queued(project, ROWS, on_error="skip")  # commits batch by batch
        reading(job, 10_000)
        for pid in [worker.pid, *children(worker.pid)]:
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=15)
    # Nothing beats any more; a recovery that allows one second finds the import stalled.
    stalled_after = timedelta(seconds=1)
    wait_for(
        lambda: task_imports_recover(stalled_after=stalled_after) or None,
        timeout=30,
        interval=0.5,
        what="the recovery to find the import stalled",
    )
    assert TaskImport.objects.get(pk=job.pk).status == ImportStatus.QUEUED
    with prefork_worker(worker_queue):
        job = finished(job)
    assert job.status == ImportStatus.DONE, job.error
    assert job.attempts == 2 and job.rows_read == ROWS
    # The second run wrote only what the first had not committed.
    assert job.report["existing"] >= 10_000
    assert job.report["created"] + job.report["existing"] == ROWS
    assert Task.objects.filter(project=project).count() == ROWS


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_whole_worker_killed_mid_all_or_nothing_import_leaves_no_row_until_it_runs_again(
    org, worker_queue
):
    """The job writes checked rows in one transaction: the kill rolls back every row written."""
    project = make_project(org, overlap=2)
    with prefork_worker(worker_queue) as worker:
        job = queued(project, ROWS)
        reading(job, 10_000)
        for pid in [worker.pid, *children(worker.pid)]:
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=15)
    wait_for(
        lambda: task_imports_recover(stalled_after=timedelta(seconds=1)) or None,
        timeout=30,
        interval=0.5,
        what="the recovery to find the import stalled",
    )
    assert not Task.objects.filter(project=project).exists()
    assert not Slot.objects.filter(project=project).exists()
    with prefork_worker(worker_queue):
        job = finished(job)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.attempts, job.report["created"], job.report["existing"]) == (2, ROWS, 0)
    assert Slot.objects.filter(project=project).count() == 2 * ROWS
