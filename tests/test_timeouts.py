"""A transaction holding rows costs the requests that need those rows a short, clear 503, and
costs nobody else anything.

Web connections run with ``lock_timeout`` (3 s), ``statement_timeout`` and
``idle_in_transaction_session_timeout`` (config/settings/base.py); a request that hits one answers
503 with ``Retry-After`` and the error envelope (config/middleware.py, config/api.py), in DRF
views and plain Django views alike. The lock holder is another PostgreSQL session
(``tests.faults.lock_held``), as psql would be.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from config.settings import base as base_settings
from tasks.models import Annotation, Assignment
from tests.faults import lock_held
from tests.helpers import (
    image_rows,
    import_rows,
    make_project,
    staff,
    web_server,
)
from workforce.models import Role

pytestmark = pytest.mark.django_db(transaction=True)

LOCK_TIMEOUT = settings.DB_LOCK_TIMEOUT_MS / 1000
# In-process tests wait this long on the lock: the value in force is checked on its own below.
SHORT_LOCK_TIMEOUT = 1.0
# What a loaded two-core machine may add to a refusal that PostgreSQL makes on time.
MARGIN = 2.0
BOX = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 20, "h": 20}]}
# A session holding every task of one project, as the adversarial pass's psql did.
LOCK_TASKS = "SELECT id FROM tasks_task WHERE project_id = %s FOR UPDATE"


@pytest.fixture
def world(org, other_org):
    project = make_project(org)
    import_rows(project, image_rows(6))
    extra = [org.add_annotator(f"acme-extra-{i}") for i in range(3)]
    staff(project, org.annotator, *extra)
    other = make_project(other_org, name="Globex project")
    import_rows(other, image_rows(2))
    return project, other, extra


@pytest.fixture
def short_lock_timeout(db):
    """This test's own connection waits one second for a lock, not three."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{SHORT_LOCK_TIMEOUT}s'")
    yield SHORT_LOCK_TIMEOUT
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


def _claimed(client) -> int:
    response = client.post("/api/v1/claims/", {}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _assert_timed_out(response, elapsed: float, timeout: float = LOCK_TIMEOUT) -> None:
    assert response.status_code == 503, response.content
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "timed_out"
    assert elapsed < timeout + MARGIN, elapsed


def _timed(call):
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def test_web_connections_carry_the_timeouts(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), "
            "current_setting('idle_in_transaction_session_timeout')"
        )
        lock, statement, idle = cursor.fetchone()
    assert (lock, statement, idle) == ("3s", "15s", "1min")


def test_a_locked_project_answers_503_and_others_are_not_held(
    org, other_org, world, short_lock_timeout
):
    project, other, _ = world
    annotator = org.client(Role.ANNOTATOR)
    assignment = _claimed(annotator)
    with lock_held(LOCK_TASKS, (project.pk,)):
        response, elapsed = _timed(
            lambda: annotator.post(
                f"/api/v1/assignments/{assignment}/submit/", {"payload": BOX}, format="json"
            )
        )
        _assert_timed_out(response, elapsed, short_lock_timeout)
        response, elapsed = _timed(lambda: annotator.post("/api/v1/claims/", {}, format="json"))
        _assert_timed_out(response, elapsed, short_lock_timeout)
        # Nobody else needs those rows: the health check and another organization's list
        # answer at once.
        response, elapsed = _timed(lambda: Client().get("/healthz"))
        assert response.status_code == 200 and elapsed < 1.0
        response, elapsed = _timed(lambda: other_org.client(Role.MANAGER).get("/api/v1/projects/"))
        assert response.status_code == 200 and elapsed < 1.0
        assert [p["id"] for p in response.json()["results"]] == [other.pk]
    # The refused submit stored nothing; once the holder is gone it goes through.
    assert not Annotation.objects.exists()
    response = annotator.post(
        f"/api/v1/assignments/{assignment}/submit/", {"payload": BOX}, format="json"
    )
    assert response.status_code == 201, response.content


def test_a_plain_django_view_answers_503_too(org, short_lock_timeout):
    """Logging out (no DRF) deletes the session's row: a held row times out."""
    client = Client()
    client.force_login(org.manager.user)
    key = client.session.session_key
    with lock_held("SELECT 1 FROM django_session WHERE session_key = %s FOR UPDATE", (key,)):
        response, elapsed = _timed(lambda: client.post("/accounts/logout/"))
        _assert_timed_out(response, elapsed, short_lock_timeout)


@pytest.mark.slow
def test_requests_stuck_on_a_lock_free_the_web_workers(org, other_org, world):
    """Every web worker busy with a request waiting on the lock is what held /healthz and
    another organization's list for 36.5 s: the timeout gives each worker back within seconds.
    """
    project, _, extra = world
    processes, threads = 1, 2
    workers = processes * threads
    annotators = [org.annotator, *extra]
    tokens = [Token.objects.create(user=a.member.user).key for a in annotators]
    manager = Token.objects.create(user=other_org.manager.user).key
    with web_server(processes, threads) as (base, _):
        headers = [{"Authorization": f"Token {t}", "X-Organization": "acme"} for t in tokens]
        assignments = []
        for h in headers:
            response = httpx.post(f"{base}/api/v1/claims/", json={}, headers=h, timeout=10)
            assert response.status_code == 201, response.text
            assignments.append(response.json()["id"])

        def submit(i: int):
            url = f"{base}/api/v1/assignments/{assignments[i]}/submit/"
            return _timed(lambda: httpx.post(url, json={"payload": BOX}, headers=headers[i],
                                             timeout=60))  # fmt: skip

        with lock_held(LOCK_TASKS, (project.pk,)), ThreadPoolExecutor(len(headers)) as pool:
            # More requests waiting on the lock than there are workers.
            stuck = [pool.submit(submit, i) for i in range(len(headers))]
            time.sleep(0.5)
            health, health_s = _timed(lambda: httpx.get(f"{base}/healthz", timeout=60))
            listed, listed_s = _timed(
                lambda: httpx.get(
                    f"{base}/api/v1/projects/",
                    headers={"Authorization": f"Token {manager}", "X-Organization": "globex"},
                    timeout=60,
                )
            )
            results = [future.result() for future in stuck]
    assert health.status_code == 200 and listed.status_code == 200
    # Queued behind at most one round of lock waits on each worker.
    waves = -(-len(headers) // workers)
    assert health_s < waves * LOCK_TIMEOUT + MARGIN, health_s
    assert listed_s < waves * LOCK_TIMEOUT + MARGIN, listed_s
    for response, _ in results:
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.json()["error"]["code"] == "timed_out"
    assert not Annotation.objects.exists()
    assert Assignment.objects.filter(status="active").count() == len(headers)


@pytest.mark.parametrize(
    ("argv", "worker"),
    [
        (["/venv/bin/celery", "-A", "config", "worker", "-l", "INFO"], True),
        ([".../celery/__main__.py", "-A", "config", "worker"], True),
        (["/venv/bin/celery", "-A", "config", "beat"], False),
        (["/srv/assay/config/web.py", "--port", "8000"], False),
        (["manage.py", "runserver"], False),
        (["/srv/assay/manage.py", "migrate"], True),
        (["manage.py", "import_tasks", "7", "rows.jsonl"], True),
        (["/venv/bin/pytest", "tests"], False),
    ],
)
def test_workers_and_commands_get_their_own_timeouts(monkeypatch, argv, worker):
    """Jobs may hold one long transaction (an all-or-nothing import), and a migration may run
    long statements: workers and commands are not held to the web's 15 s statements and 60 s
    idle transactions (WORKER_DB_* settings instead)."""
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("DB_TIMEOUTS", raising=False)
    assert base_settings._long_jobs() is worker
    monkeypatch.setenv("DB_TIMEOUTS", "web")
    assert base_settings._long_jobs() is False
