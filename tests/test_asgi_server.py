"""End to end on a real ASGI server (uvicorn), PostgreSQL and the Redis channel layer.

An annotator claims and submits over HTTP while a QA lead watches the WebSocket: the
submission arrives live.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.helpers import database_url, image_rows, import_rows, make_project, staff

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server():
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.terminate()
        pytest.fail("uvicorn did not start within 30 seconds")
    yield port
    process.terminate()
    process.wait(timeout=15)


def test_a_submission_over_http_reaches_the_qa_leads_websocket(org, server):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    token = Token.objects.create(user=org.annotator.member.user).key
    browser = Client()
    browser.force_login(org.qa_lead.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    base = f"http://127.0.0.1:{server}"
    headers = {"Authorization": f"Token {token}", "X-Organization": "acme"}

    async def scenario():
        async with websockets.connect(
            f"ws://127.0.0.1:{server}/ws/orgs/acme/",
            additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"},
        ) as socket_:
            snapshot = json.loads(await asyncio.wait_for(socket_.recv(), 10))
            assert snapshot["type"] == "snapshot" and snapshot["data"]["role"] == "qa_lead"
            async with httpx.AsyncClient(base_url=base, headers=headers) as http:
                claim = await http.post("/api/v1/claims/", json={})
                assert claim.status_code == 201, claim.text
                assignment = claim.json()["id"]
                box = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
                submit = await http.post(
                    f"/api/v1/assignments/{assignment}/submit", json={"payload": box}
                )
                assert submit.status_code == 201, submit.text
            event = json.loads(await asyncio.wait_for(socket_.recv(), 10))
            assert event["type"] == "annotation.submitted"
            assert event["data"]["annotation"] == submit.json()["id"]

    asyncio.run(scenario())


def test_the_server_refuses_an_anonymous_websocket(org, server):
    async def scenario():
        # The consumer closes before accepting, so the server refuses the handshake itself.
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(
                f"ws://127.0.0.1:{server}/ws/orgs/acme/",
                additional_headers={"Origin": "http://127.0.0.1"},
            ) as socket_:
                await asyncio.wait_for(socket_.recv(), 10)
        assert refused.value.response.status_code == 403

    asyncio.run(scenario())
