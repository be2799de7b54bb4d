"""The live-events WebSocket against the real ASGI application and the outbox relay."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from qa.models import LiveEvent
from qa.relay import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from tests.helpers import session_headers
from tests.qa.live_helpers import closed_with, open_socket, receive

pytestmark = pytest.mark.django_db(transaction=True)


def event(org, *, to: str, member=None, staff: bool = True) -> LiveEvent:
    """An outbox row as a reaction writes it, with a made-up import's progress."""
    return LiveEvent.objects.create(
        organization=org.organization,
        member=member,
        staff=staff,
        type="import.progressed",
        data={"import": 1, "project": 1, "status": to, "rows_read": 0, "created": None,
              "invalid": None},
    )  # fmt: skip


def test_a_member_connects_gets_a_snapshot_then_the_outbox_events(org):
    headers = session_headers(org.qa_lead.user)
    LiveEvent.objects.all().delete()
    before = event(org, to="before")

    async def scenario():
        socket, snapshot = await open_socket(headers)
        assert snapshot["data"] == {
            "organization": "acme",
            "role": "qa_lead",
            "member": org.qa_lead.pk,
            "cursor": before.pk,
        }
        written = await database_sync_to_async(event)(org, to="live")
        message = await receive(socket)
        assert (message["seq"], message["id"], message["type"]) == (2, written.pk, written.type)
        assert message["data"]["status"] == "live"
        await socket.disconnect()

    async_to_sync(scenario)()


def test_anonymous_outsiders_and_bad_cursors_are_rejected(org, other_org):
    outsider_headers = session_headers(other_org.manager.user)
    member_headers = session_headers(org.manager.user)

    async def refused(path, headers):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect()
        # Accepted, then closed with a code that says why: a real server would turn a close
        # before the accept into a bare HTTP 403.
        assert connected
        return await closed_with(communicator)

    async def scenario():
        anonymous = [(b"origin", b"http://127.0.0.1")]
        assert await refused("/ws/orgs/acme/", anonymous) == CLOSE_UNAUTHENTICATED
        assert await refused("/ws/orgs/acme/", outsider_headers) == CLOSE_NOT_FOUND
        assert await refused("/ws/orgs/nowhere/", member_headers) == CLOSE_NOT_FOUND
        for after in ("-1", "x", "1e3", "9" * 40, "1&after=2"):
            path = f"/ws/orgs/acme/?after={after}"
            assert await refused(path, member_headers) == CLOSE_BAD_REQUEST, after

    async_to_sync(scenario)()


def test_events_of_one_organization_do_not_reach_another(org, other_org):
    headers = session_headers(other_org.manager.user)

    async def scenario():
        listener, _ = await open_socket(headers, "/ws/orgs/globex/")
        await database_sync_to_async(event)(org, to="acme")
        own = await database_sync_to_async(event)(other_org, to="globex")
        # The relay delivers in outbox order: the other organization's row came first.
        message = await receive(listener)
        assert (message["id"], message["data"]["status"], message["seq"]) == (own.pk, "globex", 2)
        await listener.disconnect()

    async_to_sync(scenario)()


def test_annotators_receive_their_own_events_and_not_the_staffs(org):
    headers = session_headers(org.annotator_member.user)

    async def scenario():
        annotator, snapshot = await open_socket(headers)
        assert snapshot["data"]["role"] == "annotator"
        await database_sync_to_async(event)(org, to="staff")
        other = await database_sync_to_async(org.add)("acme-other", "annotator")
        await database_sync_to_async(event)(org, to="other", member=other, staff=False)
        own = await database_sync_to_async(event)(
            org, to="own", member=org.annotator_member, staff=False
        )
        message = await receive(annotator)
        assert (message["id"], message["seq"]) == (own.pk, 2)
        await annotator.disconnect()

    async_to_sync(scenario)()
