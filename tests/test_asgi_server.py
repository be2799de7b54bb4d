"""End to end on a real ASGI server (uvicorn) and PostgreSQL.

An annotator claims and submits over HTTP while a QA lead watches the WebSocket: the
submission arrives live, through the outbox and the server's relay.
"""

import asyncio
import json

import httpx
import pytest
import websockets
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from qa.relay import CLOSE_UNAUTHENTICATED
from tests.helpers import asgi_server, image_rows, import_rows, make_project, staff
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
