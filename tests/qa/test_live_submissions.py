"""Submissions reach live dashboards over the real Redis layer, and survive Redis being down."""

import logging

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from config.asgi import application
from qa.live import member_group
from tasks.models import Annotation, Assignment
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import image_rows, import_rows, make_project, session_headers, staff

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
SENTINEL = {"type": "sentinel", "at": "", "data": {}}


def claim_and_submit(annotator):
    claimed = claim_next(annotator=annotator).claimed
    assignment = Assignment.objects.get(pk=claimed.assignment_id)
    return assignment_submit(assignment=assignment, payload=BOX)[0]


@pytest.fixture
def project(org):
    project = make_project(org)
    import_rows(project, image_rows(2))
    staff(project, org.annotator)
    return project


def test_qa_lead_sees_a_submission_live(org, project):
    headers = session_headers(org.qa_lead.user)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=5)  # snapshot
        annotation = await database_sync_to_async(claim_and_submit)(org.annotator)
        event = await communicator.receive_json_from(timeout=5)
        assert event["type"] == "annotation.submitted"
        assert event["data"]["annotation"] == annotation.pk
        assert event["data"]["project"] == project.pk
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_submission_reaches_staff_and_its_annotator_only(org, project):
    other = org.add_annotator("acme-other")
    staff(project, other)
    lead, author, bystander = (
        session_headers(user)
        for user in (org.qa_lead.user, org.annotator_member.user, other.member.user)
    )

    async def connect(headers):
        communicator = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=5)  # snapshot
        return communicator

    async def scenario():
        lead_socket, author_socket, bystander_socket = [
            await connect(headers) for headers in (lead, author, bystander)
        ]
        annotation = await database_sync_to_async(claim_and_submit)(org.annotator)
        for watcher in (lead_socket, author_socket):
            event = await watcher.receive_json_from(timeout=5)
            assert event["type"] == "annotation.submitted"
            assert event["data"]["annotation"] == annotation.pk
        # Delivered in the order sent: a submission event would reach the bystander first.
        await get_channel_layer().group_send(
            member_group(other.member.pk), {"type": "live.event", "event": SENTINEL}
        )
        assert await bystander_socket.receive_json_from(timeout=5) == SENTINEL
        for communicator in (lead_socket, author_socket, bystander_socket):
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_submission_is_kept_when_redis_is_down(org, project, settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Nothing listens here: the layer fails as it would with Redis down.
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    with caplog.at_level(logging.ERROR, logger="tasks.events"):
        annotation = claim_and_submit(org.annotator)
    assert Annotation.objects.filter(pk=annotation.pk).exists()
    assert any("annotation_submitted" in r.getMessage() for r in caplog.records)
