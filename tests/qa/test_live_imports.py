"""An import's progress reaches live dashboards over the real Redis layer."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile

from config.asgi import application
from qa.live import member_group
from tasks.services import imports
from tests.helpers import image_rows, make_project, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_manager_watches_an_import_run_batch_by_batch(org):
    project = make_project(org)
    rows = 2 * imports.BATCH_SIZE + 7
    body = "".join(json.dumps(row) + "\n" for row in image_rows(rows)).encode()

    def upload():
        # Outside a transaction the job is queued at once and, without a broker, runs here.
        return imports.task_import_start(
            project=project, upload=SimpleUploadedFile("t.jsonl", body), fmt="jsonl"
        )[0]

    headers = session_headers(org.manager.user)
    annotator_headers = session_headers(org.annotator_member.user)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=5)  # snapshot
        # Imports are the staff's business: an annotator watching hears nothing of them.
        annotator = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=annotator_headers)
        assert (await annotator.connect())[0]
        await annotator.receive_json_from(timeout=5)  # snapshot
        job = await database_sync_to_async(upload)()
        seen = []
        while not seen or seen[-1]["status"] not in ("done", "failed"):
            event = await communicator.receive_json_from(timeout=5)
            assert event["type"] == "import.progressed"
            assert event["data"]["import"] == job.pk and event["data"]["project"] == project.pk
            seen.append(event["data"])
        # Delivered in the order sent: an import event would reach the annotator first.
        sentinel = {"type": "sentinel", "at": "", "data": {}}
        await get_channel_layer().group_send(
            member_group(org.annotator_member.pk), {"type": "live.event", "event": sentinel}
        )
        assert await annotator.receive_json_from(timeout=5) == sentinel
        await communicator.disconnect()
        await annotator.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    assert seen[0]["status"] == "running"
    batch = imports.BATCH_SIZE
    assert [e["rows_read"] for e in seen[1:-1]] == [batch, 2 * batch, rows]
    assert seen[-1] == {
        "import": seen[-1]["import"],
        "project": seen[-1]["project"],
        "status": "done",
        "rows_read": rows,
        "created": rows,
        "invalid": 0,
    }
