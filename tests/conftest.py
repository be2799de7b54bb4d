"""Shared fixtures. The suite runs on PostgreSQL and Redis: the ones at DATABASE_URL and
REDIS_URL when they answer, else embedded ones that the session starts and stops."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.helpers import Org, database_url

services_key = pytest.StashKey[str]()


def pytest_configure(config):
    """Use the PostgreSQL and Redis the settings name, or start embedded ones for the session.

    pytest-django loads the settings before this runs, so an embedded server's address is
    written into them (and into the environment, for the processes tests start).
    """
    from django.conf import settings

    from config import embedded

    scratch = None

    def scratch_dir() -> Path:
        nonlocal scratch
        if scratch is None:
            scratch = Path(tempfile.mkdtemp(prefix="assay-test-"))
            config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))
        return scratch

    used = []
    database = settings.DATABASES["default"]
    if embedded.answers(database["HOST"], database["PORT"], default_port=5432):
        used.append(f"PostgreSQL at {database['HOST']}:{database['PORT'] or 5432}")
    else:
        server = embedded.postgres_start(scratch_dir() / "postgres", durable=False)
        config.add_cleanup(server.stop)
        database.update(HOST=str(server.data), PORT="", USER=embedded.SUPERUSER, PASSWORD="")
        os.environ["DATABASE_URL"] = server.url(database["NAME"])
        used.append(f"embedded PostgreSQL in {server.data}")

    redis_url = urlparse(settings.REDIS_URL)
    if not settings.REDIS_URL:
        used.append("no Redis")
    elif embedded.answers(redis_url.hostname or "localhost", redis_url.port, default_port=6379):
        used.append(f"Redis at {redis_url.netloc}")
    else:
        from config.celery import app

        redis = embedded.redis_start(scratch_dir() / "redis")
        config.add_cleanup(redis.stop)
        url = redis.url(int(redis_url.path.strip("/") or 0))
        settings.REDIS_URL = url
        settings.CELERY_BROKER_URL = app.conf.broker_url = url
        os.environ["REDIS_URL"] = url
        used.append(f"embedded Redis at 127.0.0.1:{redis.port}")
    config.stash[services_key] = "services: " + ", ".join(used)

    if config.getoption("nomigrations", default=False):
        from django.db.models.signals import pre_migrate

        pre_migrate.connect(_btree_gist, dispatch_uid="assay-tests-btree-gist")


def _btree_gist(using: str, **kwargs) -> None:
    """Tables built from the models (``--no-migrations``) need the extension a migration
    otherwise creates first: the reviews' exclusion constraints compare bigints in GiST."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")


def pytest_report_header(config):
    return config.stash.get(services_key, None)


@pytest.fixture
def org(db) -> Org:
    return Org("acme")


@pytest.fixture
def other_org(db) -> Org:
    return Org("globex")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup):
    """A real Celery worker on the Redis broker, using the test database.

    Tests that use it must commit their data (``transaction=True``) and send jobs with
    ``eager_jobs_off``.
    """
    from django.conf import settings

    from config.celery import app

    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    # A queue and a name of this session's own: a worker another run left behind on the same
    # broker neither takes these jobs nor answers for this one.
    name = f"assay-test-{uuid.uuid4().hex[:12]}"
    env["CELERY_TASK_DEFAULT_QUEUE"] = name
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "-Q", name, "-n", f"{name}@%h",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        env=env,
    )  # fmt: skip
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = name
    # The worker is ready once it answers a ping through the broker.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5):
            break
    else:
        process.terminate()
        pytest.fail("The Celery worker did not start within 30 seconds.")
    yield process
    app.conf.task_default_queue = default_queue
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture
def eager_jobs_off():
    """Send jobs to the broker instead of running them in-process."""
    from config.celery import app

    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True
