"""The outbox and its relay: rows in commit order, catch-up, bounds, the in-transaction hook."""

import asyncio
import json
from datetime import timedelta

import psycopg
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from config.celery import app
from qa import live, relay
from qa.models import LiveEvent
from qa.selectors import LiveAccess, SocketKey
from tasks import events
from tasks.models import Annotation, Assignment
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import database_url, image_rows, import_rows, make_project, session_headers
from tests.helpers import staff as staff_project
from tests.qa.live_helpers import checked, open_socket, receive, receive_events
from tests.qa.review_helpers import layer, set_policy

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = (
    "INSERT INTO qa_liveevent (organization_id, member_id, staff, type, data) "
    "VALUES (%s, %s, true, 'import.progressed', %s) RETURNING id"
)


def progress(status: str) -> str:
    return json.dumps({"import": 1, "project": 1, "status": status, "rows_read": 0,
                       "created": None, "invalid": None})  # fmt: skip


def write(org, status: str, *, member=None, staff: bool = True) -> int:
    return LiveEvent.objects.create(
        organization=org.organization, member=member, staff=staff,
        type="import.progressed", data=json.loads(progress(status)),
    ).pk  # fmt: skip


def test_a_row_committed_late_is_delivered_and_holds_nothing_back(org):
    headers = session_headers(org.qa_lead.user)
    # Another session takes an id and keeps its transaction open, as a long import would.
    late = psycopg.connect(database_url())
    late_id = late.execute(INSERT, (org.organization.pk, None, progress("late"))).fetchone()[0]

    async def scenario():
        socket, _ = await open_socket(headers)
        after = await database_sync_to_async(write)(org, "after")
        assert after > late_id
        message = await receive(socket)
        assert message["seq"] == 2  # not held back by the open one
        assert [e["id"] for e in message["data"]["events"]] == [after]
        await asyncio.get_running_loop().run_in_executor(None, late.commit)
        message = await receive(socket)
        assert message["seq"] == 3
        [event] = message["data"]["events"]
        assert (event["id"], event["data"]["status"]) == (late_id, "late")
        # Delivered once.
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    try:
        async_to_sync(scenario)()
    finally:
        late.close()


def test_a_row_of_a_transaction_younger_than_the_last_to_commit_is_not_lost(org):
    """A snapshot does not list transactions from its ``xmax`` on (one past the latest to
    complete): B, younger than A, takes an id first, A one after it and commits; the relay
    sees A's row, B's lies below it, and B is listed nowhere. It is delivered when B
    commits."""
    headers = session_headers(org.qa_lead.user)
    older, younger = psycopg.connect(database_url()), psycopg.connect(database_url())
    a = older.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
    b = younger.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
    assert a < b
    b_id = younger.execute(INSERT, (org.organization.pk, None, progress("b"))).fetchone()[0]
    a_id = older.execute(INSERT, (org.organization.pk, None, progress("a"))).fetchone()[0]
    assert b_id < a_id

    async def scenario():
        socket, _ = await open_socket(headers)
        await asyncio.get_running_loop().run_in_executor(None, older.commit)
        assert [e["id"] for e in await receive_events(socket, 1)] == [a_id]
        await asyncio.get_running_loop().run_in_executor(None, younger.commit)
        assert [e["id"] for e in await receive_events(socket, 1)] == [b_id]
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    try:
        async_to_sync(scenario)()
    finally:
        older.close()
        younger.close()


def test_reads_past_the_limit_deliver_every_row_once_in_order(org, monkeypatch):
    monkeypatch.setattr(relay, "READ_LIMIT", 3)
    headers = session_headers(org.manager.user)
    open_ = psycopg.connect(database_url())
    open_id = open_.execute(INSERT, (org.organization.pk, None, progress("open"))).fetchone()[0]

    async def scenario():
        socket, _ = await open_socket(headers)
        written = await database_sync_to_async(lambda: [write(org, str(i)) for i in range(10)])()
        await asyncio.get_running_loop().run_in_executor(None, open_.commit)
        seen = [event["id"] for event in await receive_events(socket, 11)]
        assert sorted(seen) == sorted([*written, open_id])
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    try:
        async_to_sync(scenario)()
    finally:
        open_.close()


def test_a_reconnecting_client_gets_what_it_missed_and_only_what_it_may_see(org):
    annotator = org.annotator_member
    headers = session_headers(annotator.user)
    LiveEvent.objects.all().delete()
    seen = write(org, "seen", member=annotator, staff=False)
    missed = [
        write(org, "staff only"),
        write(org, "mine", member=annotator, staff=False),
        write(org, "mine too", member=annotator),
    ]

    async def scenario():
        socket, snapshot = await open_socket(headers, f"/ws/orgs/acme/?after={seen}")
        assert snapshot["data"]["cursor"] == missed[-1]
        caught_up = await receive(socket)  # in one batch
        assert caught_up["seq"] == 2
        assert [e["id"] for e in caught_up["data"]["events"]] == missed[1:]
        live_id = await database_sync_to_async(write)(org, "live", member=annotator)
        message = await receive(socket)
        assert message["seq"] == 3
        assert [e["id"] for e in message["data"]["events"]] == [live_id]
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_cursor_older_than_the_outbox_keeps_gets_resync(org):
    headers = session_headers(org.manager.user)
    old = write(org, "old")
    kept = write(org, "kept")
    LiveEvent.objects.filter(pk=old).update(created_at=timezone.now() - live.RETENTION * 2)
    assert live.live_events_prune() == 1

    async def scenario():
        socket, snapshot = await open_socket(headers, f"/ws/orgs/acme/?after={old - 1}")
        assert snapshot["data"]["cursor"] == kept
        message = await receive(socket)
        assert (message["type"], message["data"], message["seq"]) == (
            "resync",
            {"reason": "cursor_expired"},
            2,
        )
        # The socket goes on from the snapshot.
        live_id = await database_sync_to_async(write)(org, "live")
        assert [e["id"] for e in await receive_events(socket, 1)] == [live_id]
        await socket.disconnect()

    async_to_sync(scenario)()


def progress_event(n: int) -> str:
    return live.event_text("import.progressed", at=timezone.now(), data=progress(str(n)), id=n)


def test_a_socket_that_cannot_send_gets_one_batch_of_all_that_waits():
    """Batches queued behind one not yet sent join it: a slow socket (or a busy server) sends
    fewer, larger messages, every event in order, and nothing waits in more than one."""
    sent, gate = [], None
    snapshot = {"organization": "acme", "role": "manager", "member": 1, "cursor": 0,
                "project": None, "leaderboard": None, "stats": []}  # fmt: skip

    async def scenario():
        nonlocal gate
        gate = asyncio.Event()

        async def send(text):
            await gate.wait()
            sent.append(checked(json.loads(text)))

        async def close(code):
            raise AssertionError(code)

        socket = relay.LiveSocket(
            key=SocketKey(1, "acme", None), access=LiveAccess(1, 1, "manager"),
            organization="acme", send=send, close=close,
        )  # fmt: skip
        socket.begin(live.message(live.SNAPSHOT, snapshot))
        await asyncio.sleep(0)  # the snapshot is being sent
        for n in range(1, 31):
            socket.push(relay.Batch([progress_event(n)], "unused: joined to the others"))
            assert len(socket._queue) == 1
        gate.set()
        while len(sent) < 2:
            await asyncio.sleep(0.01)
        socket.push(relay.Batch([progress_event(31)]))
        while len(sent) < 3:
            await asyncio.sleep(0.01)
        socket.stop()

    async_to_sync(scenario)()
    assert [(m["type"], m["seq"]) for m in sent] == [("snapshot", 1), ("batch", 2), ("batch", 3)]
    assert [e["id"] for e in sent[1]["data"]["events"]] == list(range(1, 31))
    assert [e["id"] for e in sent[2]["data"]["events"]] == [31]


def test_a_socket_that_falls_behind_is_told_to_resync_and_closed():
    sent, closed, unblock = [], [], asyncio.Event
    snapshot = {"organization": "acme", "role": "manager", "member": 1, "cursor": 0,
                "project": None, "leaderboard": None, "stats": []}  # fmt: skip

    async def scenario():
        gate = unblock()

        async def send(text):
            await gate.wait()  # a client that does not read
            sent.append(checked(json.loads(text)))

        async def close(code):
            closed.append(code)

        socket = relay.LiveSocket(
            key=SocketKey(1, "acme", None), access=LiveAccess(1, 1, "manager"),
            organization="acme", send=send, close=close, max_waiting=5,
        )  # fmt: skip
        socket.begin(live.message(live.SNAPSHOT, snapshot))
        for n in range(1, 51):
            socket.push(relay.Batch([progress_event(n)]))
            await asyncio.sleep(0)
            assert len(socket._queue) <= 2  # the bound: one batch, or the resync and the close
        gate.set()
        for _ in range(100):
            if closed:
                break
            await asyncio.sleep(0.01)

    async_to_sync(scenario)()
    # The snapshot was already being sent; then the resync, then the close.
    assert [m["type"] for m in sent] == ["snapshot", "resync"]
    assert [m["seq"] for m in sent] == [1, 2] and sent[1]["data"] == {"reason": "too_slow"}
    assert closed == [relay.CLOSE_TOO_SLOW]


def test_a_handler_in_the_transaction_that_fails_fails_the_write(org, monkeypatch):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff_project(project, org.annotator)
    # With review layers, a submission has work left for its transaction: the handlers run.
    set_policy(org, project, [layer()])
    claimed = claim_next(annotator=org.annotator).claimed

    def refuse(**payload):
        raise RuntimeError("scoring failed")

    monkeypatch.setitem(events._in_transaction, events.ANNOTATION_SUBMITTED, [refuse])
    assignment = Assignment.objects.get(pk=claimed.assignment_id)
    with pytest.raises(RuntimeError, match="scoring failed"):
        assignment_submit(assignment=assignment, payload={"boxes": []})
    assert not Annotation.objects.exists()
    # Published outside a transaction, in-transaction handlers would be atomic with nothing.
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        events.publish(events.ANNOTATION_SUBMITTED, annotation_id=1)
    with transaction.atomic(), pytest.raises(RuntimeError, match="scoring failed"):
        events.publish(events.ANNOTATION_SUBMITTED, annotation_id=1)


def test_the_prune_job_deletes_what_is_older_than_the_retention(org):
    rows = [write(org, str(i)) for i in range(5)]
    LiveEvent.objects.filter(pk__in=rows[:3]).update(
        created_at=timezone.now() - live.RETENTION - timedelta(minutes=1)
    )
    app.loader.import_default_modules()
    job = app.tasks["qa.prune_live_events"]  # the name the beat schedule gives
    assert job.apply().get() == 3
    assert list(LiveEvent.objects.values_list("pk", flat=True)) == rows[3:]
    assert job.apply().get() == 0


def test_a_client_that_missed_more_than_a_batch_may_carry_gets_resync(org, monkeypatch):
    monkeypatch.setattr(relay, "MAX_CAUGHT_UP", 2)
    headers = session_headers(org.manager.user)
    first = write(org, "seen")
    missed = [write(org, str(i)) for i in range(3)]

    async def scenario():
        socket, snapshot = await open_socket(headers, f"/ws/orgs/acme/?after={first}")
        assert snapshot["data"]["cursor"] == missed[-1]
        message = await receive(socket)
        assert (message["type"], message["data"]) == ("resync", {"reason": "too_far_behind"})
        await socket.disconnect()

    async_to_sync(scenario)()
