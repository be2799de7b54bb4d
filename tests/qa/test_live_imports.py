"""An import's progress reaches live dashboards through the outbox; annotators hear nothing."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from qa.models import LiveEvent
from tasks.services import imports
from tests.helpers import image_rows, make_project, session_headers
from tests.qa.live_helpers import open_socket, receive

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
        manager, _ = await open_socket(headers)
        annotator, _ = await open_socket(annotator_headers)
        job = await database_sync_to_async(upload)()
        seen = []
        while not seen or seen[-1]["status"] not in ("done", "failed"):
            message = await receive(manager)
            for event in message["data"]["events"]:
                assert event["type"] == "import.progressed"
                assert event["data"]["import"] == job.pk and event["data"]["project"] == project.pk
                seen.append(event["data"])
        # The annotator's own event comes after the import's in the outbox: had any import
        # event reached them, it would come first.
        own = await database_sync_to_async(LiveEvent.objects.create)(
            organization=org.organization, member=org.annotator_member, staff=False,
            type="import.progressed", data={"sentinel": True},
        )  # fmt: skip
        message = await annotator.receive_json_from(timeout=5)
        assert message["seq"] == 2 and [e["id"] for e in message["data"]["events"]] == [own.pk]
        await manager.disconnect()
        await annotator.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    assert seen[0]["status"] == "running"
    # Progress comes from the import's heartbeat, as it writes batches: never backwards.
    progress = [e["rows_read"] for e in seen]
    assert progress == sorted(progress)
    assert seen[-1] == {
        "import": seen[-1]["import"],
        "project": seen[-1]["project"],
        "status": "done",
        "rows_read": rows,
        "created": rows,
        "invalid": 0,
    }
