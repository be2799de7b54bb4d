"""Live events under faults: Redis hung or killed, access that ends while a socket is open,
deployments that share a Redis."""

import asyncio
import json
import time

import httpx
import psycopg
import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from rest_framework.authtoken.models import Token

from qa import relay
from qa.models import LiveEvent
from tests.faults import own_redis  # noqa: F401  (a fixture)
from tests.helpers import (
    asgi_server,
    database_url,
    image_rows,
    import_rows,
    make_project,
    session_headers,
    staff,
)
from tests.qa.live_helpers import closed_with, first_event, open_socket, receive, receive_events
from workforce.models import Annotator, Member
from workforce.services import annotator_set_status

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}


def write(org, status: str, *, member=None, staff: bool = True) -> int:
    return LiveEvent.objects.create(
        organization=org.organization, member=member, staff=staff, type="import.progressed",
        data={"import": 1, "project": 1, "status": status, "rows_read": 0, "created": None,
              "invalid": None},
    ).pk  # fmt: skip


def session_key(headers) -> str:
    cookie = dict(headers)[b"cookie"].decode()
    return cookie.split("=", 1)[1]


def deactivate_membership(org, member, headers):
    Member.objects.filter(pk=member.pk).update(is_active=False)


def deactivate_user(org, member, headers):
    get_user_model().objects.filter(pk=member.user_id).update(is_active=False)


def offboard(org, member, headers):
    annotator = Annotator.objects.get(member=member)
    annotator_set_status(annotator=annotator, action="offboard", actor=None, reason="left")


def log_out(org, member, headers):
    Session.objects.filter(session_key=session_key(headers)).delete()


@pytest.mark.parametrize(
    ("role", "change"),
    [
        ("manager", deactivate_membership),
        ("qa_lead", deactivate_user),
        ("annotator", offboard),
    ],
)
def test_a_socket_whose_access_ends_is_closed_at_once(org, monkeypatch, role, change):
    """The change writes ``access.changed`` in its own transaction (``qa/live.sql``): the relay
    checks at its next tick, without waiting for its periodic check (here: never)."""
    monkeypatch.setattr(relay, "ACCESS_CHECK_SECONDS", 3600)
    member = org.member(role)
    headers = session_headers(member.user)

    async def scenario():
        socket, _ = await open_socket(headers)
        started = time.monotonic()
        await database_sync_to_async(change)(org, member, headers)
        code = await closed_with(socket, timeout=5)
        return code, time.monotonic() - started

    code, waited = async_to_sync(scenario)()
    assert code == relay.CLOSE_ACCESS_ENDED
    assert waited < 0.5, waited
    # Nobody receives the row that told the relay.
    assert LiveEvent.objects.filter(type="access.changed", member=member).count() == 1


def test_a_socket_whose_session_ends_is_closed_within_seconds(org, monkeypatch):
    """A logout writes no row: the periodic check closes the socket."""
    monkeypatch.setattr(relay, "ACCESS_CHECK_SECONDS", 0.3)
    member = org.manager
    headers = session_headers(member.user)

    async def scenario():
        socket, _ = await open_socket(headers)
        started = time.monotonic()
        await database_sync_to_async(log_out)(org, member, headers)
        code = await closed_with(socket, timeout=5)
        return code, time.monotonic() - started

    code, waited = async_to_sync(scenario)()
    assert code == relay.CLOSE_ACCESS_ENDED
    assert waited < 2, waited


def test_a_socket_whose_role_loses_staff_is_regrouped_at_once(org, monkeypatch):
    monkeypatch.setattr(relay, "ACCESS_CHECK_SECONDS", 3600)
    lead = org.qa_lead
    headers = session_headers(lead.user)

    async def scenario():
        socket, _ = await open_socket(headers)
        staff_only = await database_sync_to_async(write)(org, "staff only, before")
        assert [e["id"] for e in await receive_events(socket, 1)] == [staff_only]
        await database_sync_to_async(Member.objects.filter(pk=lead.pk).update)(role="reviewer")
        snapshot = await receive(socket)
        assert snapshot["type"] == "snapshot" and snapshot["data"]["role"] == "reviewer"
        await database_sync_to_async(write)(org, "staff only")
        own = await database_sync_to_async(write)(org, "own", member=lead, staff=False)
        message = await receive(socket)
        assert message["seq"] == snapshot["seq"] + 1
        assert [e["id"] for e in message["data"]["events"]] == [own]
        await socket.disconnect()

    async_to_sync(scenario)()


def test_submissions_and_sockets_need_no_redis(org, own_redis, settings):  # noqa: F811
    """Redis hung (SIGSTOP), then killed: submits answer at normal speed, events still arrive,
    and a new WebSocket handshake succeeds."""
    settings.REDIS_URL = own_redis.url(3)
    project = make_project(org)
    import_rows(project, image_rows(6))
    staff(project, org.annotator)
    token = Token.objects.create(user=org.annotator.member.user).key
    cookie = dict(session_headers(org.qa_lead.user))[b"cookie"].decode()
    api = {"Authorization": f"Token {token}", "X-Organization": "acme"}
    ws_headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}

    async def submit_and_watch(base: str, count: int) -> list[float]:
        url = base.replace("http://", "ws://") + "/ws/orgs/acme/"
        async with websockets.connect(url, additional_headers=ws_headers) as socket_:
            snapshot = json.loads(await asyncio.wait_for(socket_.recv(), 10))
            assert snapshot["type"] == "snapshot"
            waits = []
            async with httpx.AsyncClient(base_url=base, headers=api, timeout=30) as http:
                for _ in range(count):
                    started = time.monotonic()
                    claim = await http.post("/api/v1/claims/", json={})
                    assert claim.status_code == 201, claim.text
                    submit = await http.post(
                        f"/api/v1/assignments/{claim.json()['id']}/submit", json={"payload": BOX}
                    )
                    assert submit.status_code == 201, submit.text
                    waits.append(time.monotonic() - started)
                    event = await first_event(socket_, "annotation.submitted", timeout=5)
                    assert event["data"]["annotation"] == submit.json()["id"]
            return waits

    with asgi_server() as base:
        own_redis.hang()
        hung = asyncio.run(submit_and_watch(base, 3))
        own_redis.kill()
        killed = asyncio.run(submit_and_watch(base, 3))
    # A claim and a submit, over HTTP, on a loaded machine: well under any Redis timeout chain.
    assert max(hung) < 1.5 and max(killed) < 1.5, (hung, killed)


def test_deployments_sharing_a_redis_do_not_hear_each_other():
    """Redis pub/sub channels are global to a server, whatever database a URL names: nothing
    travels that way. Live events go through each deployment's own database (the outbox), and
    there is no channel layer to share."""
    assert get_channel_layer() is None
    assert not getattr(django_settings, "CHANNEL_LAYERS", None)


def test_the_relay_reconnects_when_its_database_connection_dies(org):
    headers = session_headers(org.manager.user)

    def kill_relay_session() -> int:
        # As a database restart or a failover would.
        with psycopg.connect(database_url(), autocommit=True) as admin:
            return admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (relay.APPLICATION_NAME,),
            ).fetchone()[0]

    async def scenario():
        socket, _ = await open_socket(headers)
        assert await database_sync_to_async(kill_relay_session)() == 1
        written = await database_sync_to_async(write)(org, "after the failure")
        message = await receive(socket, timeout=10)
        assert message["seq"] == 2
        assert [e["id"] for e in message["data"]["events"]] == [written]
        await socket.disconnect()

    async_to_sync(scenario)()
