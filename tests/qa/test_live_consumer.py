"""The live-events WebSocket, against the real ASGI application and the Redis channel layer."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from config.asgi import application
from qa.live import member_group, staff_group
from tests.helpers import session_headers

pytestmark = pytest.mark.django_db(transaction=True)


def test_channel_layer_is_redis_in_tests():
    assert "Redis" in type(get_channel_layer()).__name__


def test_member_connects_gets_a_snapshot_then_live_events(org):
    headers = session_headers(org.qa_lead.user)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"] == {"organization": "acme", "role": "qa_lead"}
        assert "at" in snapshot
        event = {"type": "annotator.suspended", "at": "2026-11-29T00:00:00Z", "data": {"id": 1}}
        await get_channel_layer().group_send(
            staff_group(org.organization.pk), {"type": "live.event", "event": event}
        )
        assert await communicator.receive_json_from(timeout=5) == event
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_anonymous_and_outsiders_are_rejected(org, other_org):
    outsider_headers = session_headers(other_org.manager.user)

    async def scenario():
        anonymous = WebsocketCommunicator(
            application, "/ws/orgs/acme/", headers=[(b"origin", b"http://127.0.0.1")]
        )
        connected, code = await anonymous.connect()
        assert not connected and code == 4401
        outsider = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=outsider_headers)
        connected, code = await outsider.connect()
        assert not connected and code == 4404

    async_to_sync(scenario)()


def test_events_of_one_organization_do_not_reach_another(org, other_org):
    headers = session_headers(other_org.manager.user)

    async def scenario():
        listener = WebsocketCommunicator(application, "/ws/orgs/globex/", headers=headers)
        assert (await listener.connect())[0]
        await listener.receive_json_from(timeout=5)  # snapshot
        layer = get_channel_layer()
        await layer.group_send(
            staff_group(org.organization.pk),
            {"type": "live.event", "event": {"type": "x", "at": "", "data": {"to": "acme"}}},
        )
        # Redis delivers in the order sent: the listener's own event comes first only if
        # the other organization's never reached it.
        own = {"type": "x", "at": "", "data": {"to": "globex"}}
        await layer.group_send(
            staff_group(other_org.organization.pk), {"type": "live.event", "event": own}
        )
        assert await listener.receive_json_from(timeout=5) == own
        await listener.disconnect()

    async_to_sync(scenario)()


def test_annotators_receive_their_own_events_and_not_the_staffs(org):
    headers = session_headers(org.annotator_member.user)
    staff_event = {"type": "x", "at": "", "data": {"for": "staff"}}
    own_event = {"type": "x", "at": "", "data": {"for": "annotator"}}

    async def scenario():
        annotator = WebsocketCommunicator(application, "/ws/orgs/acme/", headers=headers)
        assert (await annotator.connect())[0]
        snapshot = await annotator.receive_json_from(timeout=5)
        assert snapshot["data"]["role"] == "annotator"
        layer = get_channel_layer()
        await layer.group_send(
            staff_group(org.organization.pk), {"type": "live.event", "event": staff_event}
        )
        await layer.group_send(
            member_group(org.annotator_member.pk), {"type": "live.event", "event": own_event}
        )
        # Delivered in the order sent: the staff's event would have come first.
        assert await annotator.receive_json_from(timeout=5) == own_event
        await annotator.disconnect()

    async_to_sync(scenario)()
