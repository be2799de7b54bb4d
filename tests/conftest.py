"""Shared fixtures. The suite runs on PostgreSQL and Redis; it stops at once if either is down."""

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from workforce import services
from workforce.models import Annotator, Role


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


class Org:
    """A test organization with one member per role, built through the real services."""

    def __init__(self, slug: str):
        self.organization = services.organization_create(name=slug.title(), slug=slug)
        self.manager = self.add(f"{slug}-manager", Role.MANAGER)
        self.qa_lead = self.add(f"{slug}-qa", Role.QA_LEAD)
        self.reviewer = self.add(f"{slug}-reviewer", Role.REVIEWER)
        self.annotator_member = self.add(f"{slug}-annotator", Role.ANNOTATOR)
        self.annotator = Annotator.objects.get(member=self.annotator_member)

    def add(self, username: str, role: str, **profile):
        return services.member_create(
            organization=self.organization,
            username=username,
            role=role,
            actor=None,
            password="pw-long-enough",
            profile=profile or None,
        )

    def add_annotator(self, username: str, **profile) -> Annotator:
        return Annotator.objects.get(member=self.add(username, Role.ANNOTATOR, **profile))

    def member(self, role: str):
        return {
            Role.MANAGER: self.manager,
            Role.QA_LEAD: self.qa_lead,
            Role.REVIEWER: self.reviewer,
            Role.ANNOTATOR: self.annotator_member,
        }[role]

    def client(self, role: str) -> APIClient:
        member = self.member(role)
        # A real token, so that every API test goes through the authentication the API uses.
        token, _ = Token.objects.get_or_create(user=member.user)
        client = APIClient()
        client.credentials(
            HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_X_ORGANIZATION=self.organization.slug
        )
        return client


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


BBOX_SCHEMA = {"labels": [{"name": "car"}, {"name": "person"}]}


def make_project(org: Org, *, kind: str = "bbox", schema: dict | None = None, **fields):
    """An active project created through the service."""
    from tasks.services.projects import project_create

    fields.setdefault("status", "active")
    return project_create(
        organization=org.organization,
        actor=org.manager.user,
        name=fields.pop("name", f"{kind} project"),
        kind=kind,
        label_schema=BBOX_SCHEMA if schema is None else schema,
        **fields,
    )


def import_rows(project, rows: list[dict], *, on_error: str = "abort"):
    """Import rows as a JSON Lines file through the real import service."""
    import io
    import json

    from tasks.services.imports import tasks_import

    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return tasks_import(
        project=project, open_stream=lambda: io.BytesIO(body), fmt="jsonl", on_error=on_error
    )


def image_rows(count: int, *, start: int = 0, **extra) -> list[dict]:
    return [
        {
            "external_id": f"img-{i}",
            "data": {"image": f"s3://b/{i}.jpg", "width": 640, "height": 480},
        }
        | extra
        for i in range(start, start + count)
    ]


def staff(project, *annotators, skill_level: int = 5):
    """Make annotators project members with the skill the project needs."""
    from tasks.services.projects import project_members_add

    for annotator in annotators:
        services.annotator_skill_set(
            annotator=annotator, skill=project.kind, level=skill_level, source="manual", actor=None
        )
    project_members_add(project=project, annotators=list(annotators), role="annotator", actor=None)
