"""The live-events WebSocket against the real ASGI application and the outbox relay."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from rest_framework.test import APIClient

from config.asgi import application
from qa import live_schema
from qa.models import LiveEvent
from qa.relay import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, Row, _Tick
from qa.selectors import LiveAccess
from tests.helpers import make_project, session_headers
from tests.helpers import staff as staff_project
from tests.qa.live_helpers import closed_with, open_socket, receive, receive_events

pytestmark = pytest.mark.django_db(transaction=True)


def event(org, *, to: str, member=None, staff: bool = True, project: int = 1) -> LiveEvent:
    """An outbox row as a reaction writes it, with a made-up import's progress."""
    return LiveEvent.objects.create(
        organization=org.organization,
        member=member,
        staff=staff,
        type="import.progressed",
        data={"import": 1, "project": project, "status": to, "rows_read": 0, "created": None,
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
            "project": None,
            "leaderboard": None,
            "stats": [],
        }
        written = await database_sync_to_async(event)(org, to="live")
        message = await receive(socket)
        assert (message["seq"], message["type"]) == (2, "batch")
        [sent] = message["data"]["events"]
        assert (sent["id"], sent["type"], sent["data"]["status"]) == (
            written.pk,
            written.type,
            "live",
        )
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
        for project in ("x", "-2", "1&project=2"):
            path = f"/ws/orgs/acme/?project={project}"
            assert await refused(path, member_headers) == CLOSE_BAD_REQUEST, project

    async_to_sync(scenario)()


def test_events_of_one_organization_do_not_reach_another(org, other_org):
    headers = session_headers(other_org.manager.user)

    async def scenario():
        listener, _ = await open_socket(headers, "/ws/orgs/globex/")
        await database_sync_to_async(event)(org, to="acme")
        own = await database_sync_to_async(event)(other_org, to="globex")
        # The relay delivers in outbox order: the other organization's row came first.
        message = await receive(listener)
        assert message["seq"] == 2
        assert [(e["id"], e["data"]["status"]) for e in message["data"]["events"]] == [
            (own.pk, "globex")
        ]
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
        assert message["seq"] == 2
        assert [e["id"] for e in message["data"]["events"]] == [own.pk]
        await annotator.disconnect()

    async_to_sync(scenario)()


def alert(org, *, project) -> LiveEvent:
    """A quality alert's row, as a rule writes it."""
    return LiveEvent.objects.create(
        organization=org.organization, type="quality.alert",
        data={"action": 1, "rule": 1, "annotator": org.annotator.pk, "project": project,
              "metric": "gold_accuracy", "value": 0.5, "threshold": 0.8, "effect": "alert"},
    )  # fmt: skip


def test_events_of_one_tick_arrive_in_one_batch_alerts_included(org):
    headers = session_headers(org.manager.user)

    def burst():
        with transaction.atomic():
            rows = [event(org, to=str(n)) for n in range(30)]
            return [*rows, alert(org, project=None)]

    async def scenario():
        socket, _ = await open_socket(headers)
        written = await database_sync_to_async(burst)()
        message = await receive(socket)
        assert message["seq"] == 2
        assert [e["id"] for e in message["data"]["events"]] == [row.pk for row in written]
        assert message["data"]["events"][-1]["type"] == "quality.alert"
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_project_socket_starts_from_its_leaderboard_and_hears_that_project_only(org):
    shown, other = make_project(org), make_project(org, name="Other")
    staff_project(shown, org.annotator)
    headers = session_headers(org.qa_lead.user)
    page = org.client("qa_lead").get(f"/api/v1/projects/{shown.pk}/accuracy").json()["results"]

    def rows():
        return [
            event(org, to="other", project=other.pk),
            event(org, to="shown", project=shown.pk),
            alert(org, project=None),
            alert(org, project=other.pk),
        ]

    async def scenario():
        socket, snapshot = await open_socket(headers, f"/ws/orgs/acme/?project={shown.pk}")
        assert snapshot["data"]["project"] == shown.pk
        assert snapshot["data"]["leaderboard"] == page
        assert [row["annotator"] for row in page] == [org.annotator.pk]
        written = await database_sync_to_async(rows)()
        got = await receive_events(socket, 2)
        assert [e["id"] for e in got] == [written[1].pk, written[2].pk]
        # The other project's alert came last; had it been sent, it would be here.
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_project_is_followed_only_by_who_may_see_it(org, other_org):
    theirs, foreign = make_project(org), make_project(other_org)
    annotator, lead = (session_headers(m.user) for m in (org.annotator_member, org.qa_lead))

    async def code(path, headers):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        assert (await communicator.connect())[0]
        return await closed_with(communicator)

    async def scenario():
        # An annotator follows only the projects they belong to; nobody another
        # organization's.
        assert await code(f"/ws/orgs/acme/?project={theirs.pk}", annotator) == CLOSE_NOT_FOUND
        assert await code(f"/ws/orgs/acme/?project={foreign.pk}", lead) == CLOSE_NOT_FOUND
        await database_sync_to_async(staff_project)(theirs, org.annotator)
        socket, snapshot = await open_socket(annotator, f"/ws/orgs/acme/?project={theirs.pk}")
        # The leaderboard is staff's.
        assert (snapshot["data"]["project"], snapshot["data"]["leaderboard"]) == (theirs.pk, None)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_ticks_batch_is_made_once_for_everyone_of_an_audience():
    """What a tick costs grows with audiences, not sockets: every staff socket of an
    organization is handed the very same text; an annotator only their own events."""
    from datetime import UTC, datetime

    def row(id_, *, member=None, staff=True, project=1):
        data = json.dumps({"project": project, "annotator": 7})
        return Row.read((id_, 1, member, staff, "annotation.submitted", data,
                         datetime(2026, 1, 1, tzinfo=UTC), project, 7))  # fmt: skip

    def ids(batch) -> list[int]:
        return [e["id"] for e in json.loads("{" + batch.text())["data"]["events"]]

    tick = _Tick([row(1, member=70), row(2, project=2), row(3, member=71, staff=False)], [])
    lead, manager = LiveAccess(10, 1, "qa_lead"), LiveAccess(11, 1, "manager")
    everything = tick.batch(lead, None)
    assert everything is tick.batch(manager, None)
    assert ids(everything) == [1, 2]
    assert tick.batch(lead, 1) is tick.batch(manager, 1) is not everything
    assert ids(tick.batch(lead, 1)) == [1]
    assert ids(tick.batch(LiveAccess(70, 1, "annotator"), None)) == [1]
    assert tick.batch(LiveAccess(70, 1, "annotator"), 2) is None
    assert tick.batch(LiveAccess(10, 2, "manager"), None) is None  # another organization


def test_the_schema_every_message_is_checked_against_is_served(org):
    # A description, as the OpenAPI one is: the same to anyone.
    for client in (org.client("annotator"), APIClient()):
        answer = client.get("/api/schema/live/")
        assert answer.status_code == 200
        assert answer.json() == live_schema.SCHEMA
