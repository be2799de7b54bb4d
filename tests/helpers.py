"""Helpers the tests share: organizations, projects and tasks built through the real services.

Fixtures stay in ``conftest.py``; tests import plain helpers from here, never from
``conftest`` or from another test module.
"""

import functools
import io
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection, connections
from django.db.models import Count, F
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tasks.models import Assignment, Slot, SlotState
from tasks.services.claims import assignment_release, claim_next
from tasks.services.imports import tasks_import
from tasks.services.projects import project_create, project_members_add
from workforce import services
from workforce.models import Annotator, Role


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


BBOX_SCHEMA = {"labels": [{"name": "car"}, {"name": "person"}]}


def make_project(org: Org, *, kind: str = "bbox", schema: dict | None = None, **fields):
    """An active project created through the service."""
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
    for annotator in annotators:
        services.annotator_skill_set(
            annotator=annotator, skill=project.kind, level=skill_level, source="manual", actor=None
        )
    project_members_add(project=project, annotators=list(annotators), role="annotator", actor=None)


def session_headers(user) -> list[tuple[bytes, bytes]]:
    """WebSocket handshake headers carrying a logged-in session for ``user``."""
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")]


def at_once(*calls: Callable[[], object]) -> list:
    """Run each call in a thread of its own, all released together, and return what each
    returned, in order. Each thread closes its database connection when done; the first error
    any call raised fails the test, listed with the others."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def run_claimers(
    annotators, project, *, seconds: float = 120, churn: float = 0.03
) -> list[list[Assignment]]:
    """Each thread claims until nothing is left, releasing and lapsing ``churn`` of its leases.

    Returns each annotator's assignments, in the order they were claimed.
    """
    deadline = time.monotonic() + seconds

    def claimer(index: int) -> list[Assignment]:
        rng = random.Random(index)
        annotator, claimed = annotators[index], []
        misses = 0
        while time.monotonic() < deadline and misses < 3:
            claim = claim_next(annotator=annotator, project_id=project.pk).claimed
            if claim is None:
                # The rest may only be locked by other claimers for a moment.
                misses += 1
                time.sleep(0.01)
                continue
            misses = 0
            assignment = Assignment.objects.get(pk=claim.assignment_id)
            claimed.append(assignment)
            roll = rng.random()
            if roll < churn:
                assignment_release(assignment=assignment)
            elif roll < 2 * churn:
                # Let this lease lapse at once, so another claimer may take the slot over.
                past = timezone.now() - timedelta(seconds=1)
                Slot.objects.filter(assignment=assignment).update(lease_expires_at=past)
        return claimed

    return at_once(*[functools.partial(claimer, i) for i in range(len(annotators))])


def assert_invariants(project, claimed) -> None:
    """Invariant 1 on ``project`` after ``run_claimers``: overlap held, no task twice."""
    # Nobody was handed the same task twice.
    for per_annotator in claimed:
        tasks = [a.task_id for a in per_annotator]
        assert len(tasks) == len(set(tasks))
    assert not (
        Assignment.objects.values("task_id", "annotator_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .exists()
    )
    # Every slot is held by at most one assignment, of its own task.
    holders = Slot.objects.filter(project=project, assignment__isnull=False)
    assert not holders.exclude(assignment__slot_id=F("pk")).exists()
    assert holders.count() == holders.values("assignment_id").distinct().count()
    # Per task, holders (leased or submitted) never exceed the overlap.
    held = Counter(
        Slot.objects.filter(
            project=project, state__in=[SlotState.LEASED, SlotState.DONE]
        ).values_list("task_id", flat=True)
    )
    assert max(held.values()) <= project.overlap
    # Each live lease belongs to a distinct annotator on its task.
    for task_id in list(held)[:2000]:
        annotators = list(
            Assignment.objects.filter(
                pk__in=Slot.objects.filter(task_id=task_id).values("assignment_id")
            ).values_list("annotator_id", flat=True)
        )
        assert len(annotators) == len(set(annotators))
    # Every claim either still holds its slot, was released, or lost a lapsed lease.
    total = sum(len(c) for c in claimed)
    assert Assignment.objects.filter(project=project).count() == total


@contextmanager
def nested_plans() -> Iterator[list[str]]:
    """The plans of every statement run in the block on this connection, those inside SQL
    functions included (``auto_explain``), one per statement: for tests that pin a plan's shape."""
    plans: list[str] = []
    with connection.cursor() as cursor:
        for setting in ("auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on",
                        "auto_explain.log_level = notice", "client_min_messages = notice"):  # fmt: skip
            cursor.execute(f"SET {setting}")
        cursor.execute("LOAD 'auto_explain'")

        def collect(notice) -> None:
            plans.append(notice.message_primary)

        cursor.connection.add_notice_handler(collect)
        try:
            yield plans
        finally:
            cursor.connection.remove_notice_handler(collect)
            cursor.execute("RESET ALL")


def plans_of(plans: list[str], *texts: str) -> list[str]:
    """The plans (``nested_plans``) whose statement holds every one of ``texts``."""
    return [plan for plan in plans if all(text in plan for text in texts)]


def wait_for(condition, *, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy, and return that.

    Fails the test when ``timeout`` seconds pass first, so a test waiting on a worker or a
    server checks a real state instead of sleeping and hoping.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}.")
        time.sleep(interval)


def database_url() -> str:
    """The URL of the database the tests run on, for the processes they start.

    Built from the settings in force (the test database's name once it exists), so that it
    names the embedded PostgreSQL the session may have started as well as a given server.
    """
    database = connection.settings_dict
    password = f":{quote(database['PASSWORD'], safe='')}" if database["PASSWORD"] else ""
    port = f":{database['PORT']}" if database["PORT"] else ""
    return (
        f"postgres://{quote(database['USER'], safe='')}{password}"
        f"@{quote(database['HOST'], safe='')}{port}/{database['NAME']}"
    )


ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def project_row_held(project, seconds: float) -> Iterator[None]:
    """Another connection holds the project's row for ``seconds`` (as an import writing its
    file does) while this one's ``lock_timeout`` is 100 ms: what waits for that row within
    the block must wait past its lock timeout to get it."""
    import psycopg

    holder = psycopg.connect(database_url())
    holder.execute("SELECT id FROM tasks_project WHERE id = %s FOR NO KEY UPDATE", [project.pk])
    release = threading.Timer(seconds, holder.rollback)
    release.start()
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', '100ms', false)")
    try:
        yield
    finally:
        release.join()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def asgi_server(
    *, allowed_hosts: str = "127.0.0.1", env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve the app on uvicorn at a free local port, against the test database and Redis.

    Yields the server's base URL once it answers ``/healthz``, and stops it on exit. The
    server is another process: it sees only committed rows, so the tests that use it run with
    ``transaction=True``. ``env`` adds to its environment.
    """
    port = free_port()
    args = ["-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with _serving("uvicorn", args, port, allowed_hosts=allowed_hosts, env=env) as (base, _):
        yield base


@contextmanager
def web_server(processes: int, threads: int, log: Path | None = None) -> Iterator[tuple[str, int]]:
    """Serve the app as the README deploys the API (``config/web.py``), with ``processes``
    processes of ``threads`` threads, against the test database and Redis; yields its base URL
    and the process id of its main process, as ``asgi_server`` does. With ``log``, what the
    server says of its processes is written there."""
    port = free_port()
    args = ["-m", "config.web", "--port", str(port), "--log-level", "info" if log else "warning"]
    env = {"WEB_PROCESSES": str(processes), "WEB_THREADS": str(threads)}
    with _serving("the web server", args, port, env=env, log=log) as served:
        yield served


@contextmanager
def _serving(
    name: str,
    args: list[str],
    port: int,
    *,
    allowed_hosts: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[tuple[str, int]]:
    """Run ``python args`` until the ``with`` block ends, its output in ``log`` if given; yield
    its base URL, once it answers ``/healthz``, and its process id."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ALLOWED_HOSTS": allowed_hosts,
        **(env or {}),
    }
    # The server keeps Django's async-safety check, whatever the test process allows itself.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    output = log.open("wb") if log else None
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=output, stderr=output
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with code {process.returncode} before serving.")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=30, interval=0.1, what=f"{name} to answer /healthz")
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)
        if output:
            output.close()


CLASS_SCHEMA = {"labels": [{"name": "car"}, {"name": "person"}]}
