"""The embedded servers: the demo of `make run` on them, and the test session's fallback to them.

These start their own servers in temporary directories, never the ones the suite runs on.
"""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from config import embedded
from config.celery import app
from workforce.models import Organization

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
client = Client()
token = client.post("/api/v1/auth/token/", {"username": "ana@northwind", "password": "assay-demo-2026"})
auth = {"HTTP_AUTHORIZATION": "Token " + token.json()["token"]}
claim = client.post("/api/v1/claims/", {}, content_type="application/json", **auth)
assert claim.status_code == 201, claim.content
body = claim.json()
payloads = {
    "bbox": {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]},
    "classification": {"label": "ok"},
}
payload = {"payload": payloads[body["project"]["kind"]]}
submit = client.post(f"/api/v1/assignments/{body['id']}/submit", payload,
                     content_type="application/json", **auth)
assert submit.status_code == 201, submit.content
docs = client.get("/api/docs/")
assert docs.status_code == 200
# Without a broker the import job runs within the upload's request.
token = client.post("/api/v1/auth/token/", {"username": "maria@northwind", "password": "assay-demo-2026"})
auth = {"HTTP_AUTHORIZATION": "Token " + token.json()["token"]}
rows = b'{"external_id": "e1", "image": "a.jpg", "width": 640, "height": 480}\\n'
upload = SimpleUploadedFile("more.jsonl", rows)
project = body["project"]["id"]
job = client.post(f"/api/v1/projects/{project}/tasks/import", {"file": upload}, **auth)
assert job.status_code == 202, job.content
assert job.json()["status"] == "done" and job.json()["report"]["created"] == 1, job.content
print("embedded ok", body["project"]["kind"])
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postmaster_pid(server: embedded.Postgres) -> int:
    return int((server.data / "postmaster.pid").read_text().split("\n", 1)[0])


@pytest.mark.slow
def test_the_demo_runs_on_an_embedded_postgres_without_any_service(tmp_path):
    server = embedded.postgres_start(tmp_path / "postgres", durable=False)
    try:
        server.database_create("assay")
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        }
        env["DATABASE_URL"] = server.url("assay")
        env["ALLOWED_HOSTS"] = "testserver"

        def manage(*args):
            return subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
            ).stdout

        manage("migrate", "--noinput", "-v0")
        first = manage("seed_demo")
        assert "quentin" in first and "Sample projects created" in first
        assert "Sample projects created" not in manage("seed_demo")
        assert "embedded ok" in manage("shell", "-c", SCRIPT)
    finally:
        server.stop()
    assert not embedded.answers(str(server.data), None, default_port=5432)


def start_owner(data: Path) -> subprocess.Popen:
    """A process that starts the server of ``data`` and holds it until killed."""
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from config import embedded; "
         "embedded.postgres_start(Path(sys.argv[1]), durable=False); print('up', flush=True); "
         "time.sleep(300)", str(data)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert owner.stdout.readline().strip() == "up"
    return owner


def kill(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def test_an_embedded_postgres_is_shared_adopted_and_started_over_a_stale_pid(tmp_path):
    data = tmp_path / "postgres"
    owner = start_owner(data)
    try:
        shared = embedded.postgres_start(data)
        assert not shared.owned
        shared.stop()
        assert embedded.answers(str(data), None, default_port=5432)
        first_pid = postmaster_pid(shared)
    finally:
        # The owner dies without stopping its server, as `make run` does under `kill -9`.
        kill(owner)

    # Nobody owns the running server now: the next start adopts it, and stops it in the end.
    adopted = embedded.postgres_start(data)
    assert adopted.owned and postmaster_pid(adopted) == first_pid
    adopted.stop()
    assert not embedded.answers(str(data), None, default_port=5432)

    # Owner and server are killed, and the server's pid goes to another process: the pid file
    # left behind must not stop the next start.
    owner = start_owner(data)
    os.kill(postmaster_pid(adopted), signal.SIGKILL)
    kill(owner)
    pidfile = data / "postmaster.pid"
    lines = pidfile.read_text().split("\n")
    pidfile.write_text("\n".join([str(os.getpid()), *lines[1:]]))
    restarted = embedded.postgres_start(data, durable=False)
    assert restarted.owned and postmaster_pid(restarted) != os.getpid()
    restarted.database_create("assay")
    restarted.stop()
    assert not embedded.answers(str(data), None, default_port=5432)
    assert not pidfile.exists()


@pytest.mark.django_db
def test_the_session_database_and_broker_answer():
    """Run alone by the next test, this checks the servers the session chose for itself."""
    assert Organization.objects.count() == 0
    assert redis.Redis.from_url(settings.REDIS_URL).ping()
    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1)


def test_a_session_with_no_servers_at_its_urls_starts_embedded_ones():
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/assay",
        "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/11",
    }
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--timeout", "60", f"{__file__}::test_the_session_database_and_broker_answer"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = session.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        # Interrupted, a session still stops its servers.
        session.send_signal(signal.SIGINT)
        output, _ = session.communicate(timeout=30)
        pytest.fail(f"The session took over 150 s:\n{output}")
    assert session.returncode == 0, output
    assert "1 passed" in output
    services = re.search(r"^services: embedded PostgreSQL in (\S+), embedded Redis", output, re.M)
    assert services, output
    # The session stopped its servers and removed their files.
    assert not Path(services[1]).exists()
