"""The embedded defaults behind `make run`: SQLite, in-memory layer, jobs in-process."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
client = Client()
token = client.post("/api/v1/auth/token/", {"username": "ana", "password": "assay-demo-2026"})
auth = {"HTTP_AUTHORIZATION": "Token " + token.json()["token"]}
claim = client.post("/api/v1/claims/", {}, content_type="application/json", **auth)
assert claim.status_code == 201, claim.content
body = claim.json()
payload = {"payload": {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}}
submit = client.post(f"/api/v1/assignments/{body['id']}/submit", payload,
                     content_type="application/json", **auth)
assert submit.status_code == 201, submit.content
docs = client.get("/api/docs/")
assert docs.status_code == 200
# Without a broker the import job runs within the upload's request.
token = client.post("/api/v1/auth/token/", {"username": "maria", "password": "assay-demo-2026"})
auth = {"HTTP_AUTHORIZATION": "Token " + token.json()["token"]}
rows = b'{"external_id": "e1", "image": "a.jpg", "width": 640, "height": 480}\\n'
upload = SimpleUploadedFile("more.jsonl", rows)
project = body["project"]["id"]
job = client.post(f"/api/v1/projects/{project}/tasks/import", {"file": upload}, **auth)
assert job.status_code == 202, job.content
assert job.json()["status"] == "done" and job.json()["report"]["created"] == 1, job.content
print("embedded ok", body["project"]["kind"])
"""


def test_demo_runs_on_sqlite_without_any_service(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
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
    assert "embedded ok bbox" in manage("shell", "-c", SCRIPT)
