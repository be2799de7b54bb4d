"""Shared fixtures. The suite runs on PostgreSQL and Redis; it stops at once if either is down."""

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from tests.helpers import Org


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    checks = [
        ("PostgreSQL", os.environ.get("DATABASE_URL", "postgres://127.0.0.1:5432"), 5432),
        ("Redis", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), 6379),
    ]
    for name, url, port in checks:
        if not _reachable(url, port):
            pytest.exit(
                f"{name} is not reachable at {urlparse(url).netloc or url}: start it and run "
                "`make test` again.",
                returncode=3,
            )


@pytest.fixture
def org(db) -> Org:
    return Org("acme")


@pytest.fixture
def other_org(db) -> Org:
    return Org("globex")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real Celery worker on the Redis broker, using the test database.

    Tests that use it must commit their data (``transaction=True``) and send jobs with
    ``eager_jobs_off``.
    """
    from django.db import connection

    from config.celery import app

    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        env=env,
    )  # fmt: skip
    # The worker is ready once it answers a ping through the broker.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            break
    else:
        process.terminate()
        pytest.fail("The Celery worker did not start within 30 seconds.")
    yield process
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture
def eager_jobs_off():
    """Send jobs to the broker instead of running them in-process."""
    from config.celery import app

    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True
