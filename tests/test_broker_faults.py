"""The Celery broker hangs (a Redis of the test's own, SIGSTOPped): a request that queues a job
(a raised overlap, an uploaded import) answers within a bound, the job waits as pending work,
and is sent once Redis resumes."""

import json
import time

import pytest
from celery.signals import after_task_publish
from django.core.files.uploadedfile import SimpleUploadedFile

from config.celery import app
from tests.faults import broker_at, own_redis  # noqa: F401  (own_redis: a fixture)
from tests.helpers import image_rows, import_rows, make_project
from workforce.models import PendingJob, Role
from workforce.queue import pending_jobs_requeue

pytestmark = pytest.mark.django_db(transaction=True)

# What a request may wait on a hung broker: the publish's read timeout, and a little.
BOUND = 3.0
ROWS = "".join(json.dumps(row) + "\n" for row in image_rows(3, start=100)).encode()


def test_a_request_queueing_a_job_on_a_hung_broker_answers_in_bounded_time(
    org,
    own_redis,  # noqa: F811
    eager_jobs_off,
):
    project = make_project(org)
    import_rows(project, image_rows(2))
    client = org.client(Role.MANAGER)
    sent = []

    def record(body=None, **kwargs) -> None:
        sent.append(body[0])

    with broker_at(own_redis.url(0)):
        # A broker that answered before: the pool holds a live connection when Redis stops.
        app.send_task("tasks.add_overlap_seats", args=[10_000_000])
        own_redis.hang()
        waits = []
        for overlap in (2, 3):
            started = time.monotonic()
            response = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": overlap})
            waits.append(time.monotonic() - started)
            assert response.status_code == 200, response.content
        started = time.monotonic()
        upload = client.post(
            f"/api/v1/projects/{project.pk}/tasks/import",
            {"file": SimpleUploadedFile("tasks.jsonl", ROWS)},
            format="multipart",
        )
        waits.append(time.monotonic() - started)
        assert upload.status_code == 202 and upload.json()["status"] == "queued", upload.content
        assert max(waits) < BOUND, waits
        # One row per job and arguments: the two overlap changes wait as one job.
        assert sorted(PendingJob.objects.values_list("name", "args")) == [
            ("tasks.add_overlap_seats", [project.pk]),
            ("tasks.run_import", [upload.json()["id"]]),
        ]

        own_redis.resume()
        after_task_publish.connect(record, weak=False)
        try:
            assert pending_jobs_requeue() == 2
        finally:
            after_task_publish.disconnect(record)
        # The message sent before the hang names no project; it must not wait for a worker.
        app.control.purge()
    assert sorted(sent) == sorted([[project.pk], [upload.json()["id"]]])
    assert not PendingJob.objects.exists()
