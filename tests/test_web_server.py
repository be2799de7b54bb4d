"""The web server as the README deploys the API (``config/web.py``): what one bad client or one
dead process costs everyone else.

The tests start the real server on the test database (``tests.helpers.web_server``) and talk to
it over a socket, as a client would; what the server's processes hand Django as a request's
environ is checked on ``config.web.request_only`` itself.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from config import web
from tests.helpers import ROOT, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)


def _children(pid: int) -> set[int]:
    return {
        int(kid)
        for thread in Path(f"/proc/{pid}/task").iterdir()
        for kid in (thread / "children").read_text().split()
    }


def _address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname, parts.port


def test_a_killed_web_process_is_started_again_and_the_other_serves_meanwhile(tmp_path):
    log = tmp_path / "web.log"
    with web_server(processes=2, threads=1, log=log) as (base, main):
        wait_for(
            lambda: log.read_text().count("Started worker") == 2,
            timeout=30,
            what="both processes to have loaded the application",
        )
        workers = _children(main)
        assert len(workers) == 2, workers
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        # The survivor answers every request while the dead one is replaced.
        answered = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answered.append(httpx.get(f"{base}/healthz", timeout=5).status_code)
            if log.read_text().count("Started worker") == 3:
                break
            time.sleep(0.1)
        assert set(answered) == {200}, answered
        replaced = _children(main)
        assert len(replaced) == 2 and killed not in replaced, (workers, replaced)
        assert all(httpx.get(f"{base}/healthz", timeout=5).status_code == 200 for _ in range(20))


def test_a_body_over_the_limit_is_refused_before_the_client_sends_it():
    """The request reaches Django as it arrives: a declared gigabyte is answered 413 at once,
    with nothing of it sent, rather than read (or held in memory) first."""
    with (
        web_server(processes=1, threads=1) as (base, _),
        socket.create_connection(_address(base), timeout=10) as client,
    ):
        client.sendall(
            b"POST /api/v1/claims/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{"
        )
        answer = http.client.HTTPResponse(client)
        answer.begin()
        body = json.loads(answer.read())
    assert answer.status == 413, body
    assert body["error"]["code"] == "payload_too_large", body


def test_clients_slow_to_send_their_headers_hold_no_thread():
    """A client trickling its request line holds a connection in the server, not one of the
    Python threads: with one thread in all, another client is answered at once."""
    with web_server(processes=1, threads=1) as (base, _):
        slow = [socket.create_connection(_address(base), timeout=10) for _ in range(8)]
        try:
            for client in slow:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 12")
            started = time.monotonic()
            response = httpx.get(f"{base}/healthz", timeout=10)
            elapsed = time.monotonic() - started
        finally:
            for client in slow:
                client.close()
    assert response.status_code == 200
    assert elapsed < 2, elapsed


def test_the_processes_end_when_the_main_process_is_killed():
    """Killed outright, the main process cannot stop its processes: they stop themselves rather
    than serve on, holding the port, out of any supervisor's sight."""
    with web_server(processes=2, threads=1) as (base, main):
        workers = _children(main)
        assert len(workers) == 2, workers
        os.kill(main, signal.SIGKILL)
        wait_for(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
            timeout=10,
            what="the server's processes to end",
        )
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=2)


def test_a_request_sees_its_own_environ_not_the_servers_environment():
    """granian starts every request's environ from the process's environment: the database's
    address and the secret key would be in every request's META, and what is logged of it."""
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return [b""]

    environment = {"DATABASE_URL": "postgres://assay:secret@db/assay", "SECRET_KEY": "s"}
    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "assay.example.com"}
    served = {"SCRIPT_NAME": "", "wsgi.version": (1, 0)}
    web.request_only(app, frozenset(environment))(environment | served | request, None)
    assert seen == served | request


def test_the_web_server_refuses_to_start_with_a_variable_named_as_a_request_key():
    """Set in its environment, ``HTTP_X_FORWARDED_FOR`` would be every request's client address
    that did not send one: the server says so and does not start."""
    env = {**os.environ, "HTTP_X_FORWARDED_FOR": "203.0.113.9", "DJANGO_SETTINGS_MODULE": "x"}
    started = subprocess.run(
        [sys.executable, "-m", "config.web", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode == 2, started
    assert "unset HTTP_X_FORWARDED_FOR for the web server" in started.stderr
