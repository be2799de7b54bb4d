"""Jobs queued through ``workforce.queue``: a broker that refuses them delays them, loses none.

A broker that is down is a real one: this process publishes to a port where nothing listens,
to a socket that never answers, or to one that never completes a connection. The worker in
``celery_worker_process`` keeps the real Redis broker, which is "the broker back".
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.signals import after_task_publish
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from config.celery import app
from tasks.jobs import add_overlap_seats
from tasks.models import Slot, TaskImport
from tests.faults import broker_at
from tests.helpers import image_rows, import_rows, make_project, wait_for
from workforce.jobs import requeue_pending_jobs
from workforce.models import PendingJob, Role
from workforce.queue import enqueue, pending_jobs_requeue

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_PORT = "redis://127.0.0.1:9/0"


@contextmanager
def silent_broker() -> Iterator[str]:
    """A broker that accepts connections and never answers a command."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        # Never accepted: the kernel completes the handshakes and keeps what the client sends.
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@contextmanager
def unreachable_broker() -> Iterator[str]:
    """A broker whose connections never complete, as behind a firewall that drops packets."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as server:
        port = server.getsockname()[1]
        # Fill the accept queue; the kernel then drops further connection attempts unanswered.
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            for filler in fillers:
                filler.close()


def seats(project) -> int:
    return Slot.objects.filter(project=project).count()


def test_raising_the_overlap_with_the_broker_down_answers_200_and_the_seats_come_once_it_is_back(
    org, celery_worker_process, eager_jobs_off
):
    project = make_project(org)
    import_rows(project, image_rows(4))
    client = org.client(Role.MANAGER)
    with broker_at(CLOSED_PORT):
        response = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 2})
    assert response.status_code == 200 and response.json()["overlap"] == 2
    pending = PendingJob.objects.get()
    assert (pending.name, pending.args, pending.attempts) == (
        "tasks.add_overlap_seats",
        [project.pk],
        1,
    )
    assert "Connection refused" in pending.error
    assert seats(project) == 4

    # The broker is back: beat sends the requeue job, the worker runs it, then the seats job.
    requeue_pending_jobs.delay()
    wait_for(lambda: seats(project) == 8, what="the seats of the raised overlap")
    assert not PendingJob.objects.exists()


def test_an_import_uploaded_with_the_broker_down_stays_queued_and_runs_once_it_is_back(
    org, celery_worker_process, eager_jobs_off
):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    body = "".join(json.dumps(row) + "\n" for row in image_rows(3)).encode()
    with broker_at(CLOSED_PORT):
        response = client.post(
            f"/api/v1/projects/{project.pk}/tasks/import",
            {"file": SimpleUploadedFile("tasks.jsonl", body)},
            format="multipart",
        )
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert PendingJob.objects.get().args == [response.json()["id"]]
    shown = client.get(response["Location"]).json()
    assert (shown["status"], shown["error"]) == ("queued", "")

    requeue_pending_jobs.delay()
    job = wait_for(
        lambda: TaskImport.objects.filter(status__in=["done", "failed"]).first(),
        what="the import to finish",
    )
    assert job.status == "done" and job.report["created"] == 3
    assert not PendingJob.objects.exists()


def test_runs_of_the_requeue_job_at_the_same_time_send_each_pending_job_once(eager_jobs_off):
    # Ids of no project: the seats job returns at once wherever a message of this test ends up.
    ids = list(range(10_000_000, 10_000_040))
    PendingJob.objects.bulk_create(
        PendingJob(name="tasks.add_overlap_seats", args=[i], error="refused") for i in ids
    )
    sent: list[tuple[str, int]] = []
    lock = threading.Lock()
    # Each run's first publish waits for the other's: both then hold a batch at the same time,
    # which only SKIP LOCKED allows (FOR UPDATE alone would keep the second run waiting).
    both_sending = threading.Barrier(2, timeout=10)
    met: list[bool] = []

    def record(body=None, **kwargs) -> None:
        with lock:
            first = threading.current_thread().name not in {name for name, _ in sent}
            sent.append((threading.current_thread().name, body[0][0]))
        if first:
            both_sending.wait()
            met.append(True)

    results: list[int] = []

    def run() -> None:
        try:
            results.append(pending_jobs_requeue(batch_size=5))
        finally:
            connection.close()

    after_task_publish.connect(record, weak=False)
    try:
        threads = [threading.Thread(target=run, name=f"run-{i}") for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        again = pending_jobs_requeue()
    finally:
        after_task_publish.disconnect(record)
        app.control.purge()  # the messages of ids that name nothing
    assert met == [True, True]
    assert sorted(job for _, job in sent) == ids  # each pending job sent once
    assert sum(results) == len(ids)
    assert again == 0 and not PendingJob.objects.exists()


def test_a_requeue_the_broker_refuses_again_backs_that_job_off_and_keeps_the_rest(eager_jobs_off):
    first, second = (
        PendingJob.objects.create(name="tasks.add_overlap_seats", args=[i]) for i in (1, 2)
    )
    with broker_at(CLOSED_PORT):
        assert pending_jobs_requeue() == 0
    first.refresh_from_db()
    assert first.attempts == 2 and "Connection refused" in first.error
    assert first.next_attempt_at > timezone.now()
    second.refresh_from_db()
    assert second.attempts == 1 and second.next_attempt_at <= timezone.now()
    # Not yet due: a run now leaves it alone.
    assert pending_jobs_requeue() == 1
    assert list(PendingJob.objects.values_list("pk", flat=True)) == [first.pk]
    app.control.purge()


def test_a_job_refused_twice_waits_in_one_row_with_the_latest_reason(eager_jobs_off):
    with broker_at(CLOSED_PORT):
        enqueue(add_overlap_seats, 10_000_001)
        enqueue(add_overlap_seats, 10_000_001)
        enqueue(add_overlap_seats, 10_000_002)
    assert list(PendingJob.objects.order_by("pk").values_list("args", flat=True)) == [
        [10_000_001],
        [10_000_002],
    ]


def test_jobs_take_ids_only():
    with pytest.raises(TypeError, match="Jobs take ids"):
        enqueue(add_overlap_seats, "1")


@contextmanager
def broker_down(fault: str) -> Iterator[None]:
    if fault == "refused":
        with broker_at(CLOSED_PORT):
            yield
        return
    server = {"unreachable": unreachable_broker, "silent": silent_broker}[fault]
    with server() as url, broker_at(url):
        yield


@pytest.mark.parametrize(
    ("fault", "bound"),
    [
        # Nothing listens: the connection is refused at once.
        ("refused", 1.0),
        # The connection never completes: the 1 s connect timeout of config/celery.py.
        ("unreachable", 2.0),
        # Connected, never answered: the 2 s read timeout of config/celery.py.
        ("silent", 3.0),
    ],
)
def test_a_refused_enqueue_holds_the_request_a_bounded_time(org, eager_jobs_off, fault, bound):
    project = make_project(org)
    import_rows(project, image_rows(2))
    client = org.client(Role.MANAGER)
    with broker_down(fault):
        started = time.monotonic()
        response = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 2})
        waited = time.monotonic() - started
    assert response.status_code == 200
    assert PendingJob.objects.filter(args=[project.pk]).exists()
    assert waited < bound, f"the request waited {waited:.2f} s"
