"""End to end on a real ASGI server (uvicorn) and PostgreSQL.

An annotator claims and submits over HTTP while a QA lead watches the WebSocket: the
submission arrives live, through the outbox and the server's relay; with Redis and a real
Celery worker behind it, so do the annotator's stats and the alert the worker's job raises.
"""

import asyncio
import json

import httpx
import pytest
import websockets
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from config.celery import app
from qa.relay import CLOSE_UNAUTHENTICATED
from qa.rules import quality_rule_create
from tests.helpers import (
    asgi_server,
    image_rows,
    import_rows,
    make_project,
    session_headers,
    staff,
)
from tests.qa.gold_helpers import label_gold_project
from tests.qa.live_helpers import checked, first_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server():
    """The base URL of a uvicorn serving the app."""
    with asgi_server() as base:
        yield base


def test_a_submission_over_http_reaches_the_qa_leads_websocket(org, server):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    token = Token.objects.create(user=org.annotator.member.user).key
    browser = Client()
    browser.force_login(org.qa_lead.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = {"Authorization": f"Token {token}", "X-Organization": "acme"}

    async def scenario():
        async with websockets.connect(
            server.replace("http://", "ws://") + "/ws/orgs/acme/",
            additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"},
        ) as socket_:
            snapshot = checked(json.loads(await asyncio.wait_for(socket_.recv(), 10)))
            assert snapshot["type"] == "snapshot" and snapshot["data"]["role"] == "qa_lead"
            assert snapshot["seq"] == 1
            async with httpx.AsyncClient(base_url=server, headers=headers) as http:
                claim = await http.post("/api/v1/claims/", json={})
                assert claim.status_code == 201, claim.text
                assignment = claim.json()["id"]
                box = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
                submit = await http.post(
                    f"/api/v1/assignments/{assignment}/submit", json={"payload": box}
                )
                assert submit.status_code == 201, submit.text
            event = await first_event(socket_, "annotation.submitted")
            assert event["data"]["annotation"] == submit.json()["id"]
            assert event["id"] > snapshot["data"]["cursor"]

    asyncio.run(scenario())


def test_the_server_refuses_an_anonymous_websocket(org, server):
    async def scenario():
        # Accepted, then closed with the code that says why: closed before the accept, the
        # server would refuse the handshake with a bare 403 and the code would be lost.
        with pytest.raises(websockets.ConnectionClosed) as refused:
            async with websockets.connect(
                server.replace("http://", "ws://") + "/ws/orgs/acme/",
                additional_headers={"Origin": "http://127.0.0.1"},
            ) as socket_:
                await asyncio.wait_for(socket_.recv(), 10)
        assert refused.value.rcvd.code == CLOSE_UNAUTHENTICATED

    asyncio.run(scenario())


def test_a_gold_submission_over_http_brings_stats_and_the_workers_alert_live(
    org, celery_worker_process, eager_jobs_off
):
    """The whole stack: uvicorn serving HTTP and the socket, Redis as broker, a Celery worker.
    A wrong gold answer is scored in its submission's transaction, which counts it in the
    annotator's hour; the worker's job evaluates the quality rule, which alerts. The QA lead's
    project socket receives the submission, its score, the stats and the alert, each message
    in the schema."""
    project = label_gold_project(org, org.annotator)
    quality_rule_create(
        organization=org.organization, actor=org.qa_lead.user, project_id=project.pk,
        metric="gold_recent_mean", threshold=0.8, window=5, min_sample=1, action="alert",
    )  # fmt: skip
    token = Token.objects.create(user=org.annotator.member.user).key
    cookie = dict(session_headers(org.qa_lead.user))[b"cookie"].decode()
    api = {"Authorization": f"Token {token}", "X-Organization": "acme"}
    # The server sends its jobs to this session's worker.
    worker = {"CELERY_TASK_DEFAULT_QUEUE": app.conf.task_default_queue,
              "CELERY_TASK_ALWAYS_EAGER": "0"}  # fmt: skip

    async def scenario(base: str) -> dict[str, dict]:
        url = base.replace("http://", "ws://") + f"/ws/orgs/acme/?project={project.pk}"
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"}
        ) as socket_:
            snapshot = checked(json.loads(await asyncio.wait_for(socket_.recv(), 10)))
            assert [row["annotator"] for row in snapshot["data"]["leaderboard"]] == [
                org.annotator.pk
            ]
            async with httpx.AsyncClient(base_url=base, headers=api, timeout=30) as http:
                claim = await http.post("/api/v1/claims/", json={})
                assert claim.status_code == 201, claim.text
                submit = await http.post(
                    f"/api/v1/assignments/{claim.json()['id']}/submit",
                    json={"payload": {"label": "person"}},
                )
                assert submit.status_code == 201, submit.text
            seen: dict[str, dict] = {}
            wanted = {"annotation.submitted", "gold.scored", "stats.updated", "quality.alert"}
            while not wanted <= set(seen):
                event = await first_event(socket_, None, timeout=30)
                seen.setdefault(event["type"], event)
            return seen | {"submit": submit.json()}

    with asgi_server(env=worker) as base:
        seen = asyncio.run(scenario(base))
    assert seen["annotation.submitted"]["data"]["annotation"] == seen["submit"]["id"]
    assert seen["gold.scored"]["data"]["score"] == 0.0
    stats = seen["stats.updated"]["data"]
    assert (stats["annotator"], stats["submitted"], stats["gold_scored"]) == (
        org.annotator.pk, 1, 1,
    )  # fmt: skip
    alert = seen["quality.alert"]["data"]
    assert (alert["annotator"], alert["project"], alert["value"]) == (
        org.annotator.pk, project.pk, 0.0,
    )  # fmt: skip
