"""Shared set-up for the database benchmarks: a fresh PostgreSQL database, Django, seeded state.

Every benchmark gets a database of its own, created empty and migrated at the start and dropped
at the end, so a run never touches the development or test databases and always starts from the
same table sizes.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg

HOST, PORT = "127.0.0.1", 5432
# ``BENCH_DATABASE`` names another, so that two benches can run at the same time.
DB_NAME = os.environ.get("BENCH_DATABASE", "assay_bench")
# Maintenance connection: databases are created and dropped from the ``postgres`` database.
ADMIN_DSN = f"host={HOST} port={PORT} user=postgres dbname=postgres"
PASSWORD = "bench-password-long-enough"
BBOX_SCHEMA = {"labels": [{"name": "car"}, {"name": "person"}, {"name": "bicycle"}]}
# Image sizes a street-scene dataset mixes; the bbox kind requires width and height.
IMAGE_SIZES = [(1920, 1080), (1280, 720), (640, 480), (4032, 3024), (1024, 768)]


def dsn(name: str = DB_NAME) -> str:
    return f"host={HOST} port={PORT} user=postgres dbname={name}"


def database_url(name: str = DB_NAME) -> str:
    return f"postgres://postgres@{HOST}:{PORT}/{name}"


def database_create(name: str = DB_NAME) -> None:
    """Create ``name`` empty, dropping a copy left behind by an interrupted run."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(name: str = DB_NAME) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def django_environment(name: str = DB_NAME) -> dict[str, str]:
    """The environment that points Django (in this process or a child) at the bench database."""
    return {
        "DATABASE_URL": database_url(name),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        # DEBUG would record every query in memory and slow each one down.
        "DEBUG": "0",
        "ALLOWED_HOSTS": HOST,
        "LOG_LEVEL": "WARNING",
    }


@contextmanager
def django_database(name: str = DB_NAME) -> Iterator[None]:
    """A fresh, migrated database with Django set up on it for this run; dropped at the end."""
    django_start(name)
    try:
        yield
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(name)


def django_start(name: str = DB_NAME) -> None:
    """Create the database, configure Django for it and migrate."""
    database_create(name)
    os.environ.update(django_environment(name))
    # The bench writes its data as a job does, with a job's database limits; the servers it
    # measures run with a web request's (``web_start``).
    os.environ.setdefault("DB_TIMEOUTS", "worker")
    # Without Redis, jobs run in-process; nothing here should send any.
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def write_image_rows(
    path: Path, count: int, *, prefix: str = "img", seed: int = 11, gold_boxes: int = 0
) -> int:
    """Write ``count`` JSON Lines task rows as an image dataset exports them; return bytes.

    With ``gold_boxes`` every row is a gold task whose answer has that many boxes
    (``bbox_boxes`` with the row's seed).
    """
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        for i in range(count):
            width, height = rng.choice(IMAGE_SIZES)
            row = {
                "external_id": f"{prefix}-{i:07d}",
                "data": {
                    "image": f"https://cdn.example.com/street/{i // 10_000:03d}/{i:07d}.jpg",
                    "width": width,
                    "height": height,
                    "camera": rng.choice(["front", "rear", "left", "right"]),
                },
            }
            if gold_boxes:
                row["gold_answer"] = {"boxes": bbox_boxes(gold_boxes, 640, 480, seed=i)}
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
    return path.stat().st_size


def bbox_boxes(count: int, width: int, height: int, *, seed: int = 0) -> list[dict]:
    """``count`` boxes in a ``width`` x ``height`` image (the smallest of ``IMAGE_SIZES`` fits
    640 x 480), each in a cell of its own so that none overlaps another, labels in turn."""
    rng = random.Random(seed)
    labels = [label["name"] for label in BBOX_SCHEMA["labels"]]
    columns = 10
    cell_w, cell_h = width / columns, height / -(-count // columns)
    return [
        {
            "label": labels[n % len(labels)],
            "x": round((n % columns) * cell_w + rng.uniform(0, cell_w * 0.2), 1),
            "y": round((n // columns) * cell_h + rng.uniform(0, cell_h * 0.2), 1),
            "w": round(cell_w * rng.uniform(0.5, 0.75), 1),
            "h": round(cell_h * rng.uniform(0.5, 0.75), 1),
        }
        for n in range(count)
    ]


def import_file(project, path: Path, *, on_error: str = "abort", progress: Callable | None = None):
    """Import a JSON Lines file through the real import service."""
    from tasks.services.imports import tasks_import

    return tasks_import(
        project=project,
        open_stream=lambda: path.open("rb"),
        fmt="jsonl",
        on_error=on_error,
        progress=progress,
    )


def organization_seed(slug: str):
    """An organization and its manager, built through the services; return both."""
    from workforce import services
    from workforce.models import Role

    organization = services.organization_create(name=slug.title(), slug=slug)
    manager = services.member_create(
        organization=organization,
        username=f"{slug}-manager",
        role=Role.MANAGER,
        actor=None,
        password=PASSWORD,
    )
    return organization, manager


def project_seed(organization, manager, *, name: str, **fields):
    """An active bbox project that lets one annotator hold many leases at once."""
    from tasks.services.projects import project_create

    fields.setdefault("status", "active")
    fields.setdefault("max_concurrent_tasks", 1000)
    return project_create(
        organization=organization,
        actor=manager.user,
        name=name,
        kind="bbox",
        label_schema=BBOX_SCHEMA,
        **fields,
    )


def annotators_seed(organization, project, *, prefix: str, count: int) -> list:
    """``count`` annotators qualified for ``project`` and staffed on it, with high limits.

    The first annotator can log in with ``PASSWORD`` (hashing one costs a third of a second);
    usernames are ``<prefix>-<n>``.
    """
    from tasks.services.projects import project_members_add
    from workforce import services
    from workforce.models import Annotator, Role

    annotators = []
    for n in range(count):
        member = services.member_create(
            organization=organization,
            username=f"{prefix}-{n}",
            role=Role.ANNOTATOR,
            actor=None,
            password=PASSWORD if n == 0 else None,
            profile={"max_concurrent_tasks": 1000},
        )
        annotator = Annotator.objects.get(member=member)
        services.annotator_skill_set(
            annotator=annotator, skill=project.kind, level=5, source="manual", actor=None
        )
        annotators.append(annotator)
    project_members_add(project=project, annotators=annotators, role="annotator", actor=None)
    return annotators


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an ascending list, nearest rank; NaN when empty."""
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[rank]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextmanager
def web(log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """The web server serving the bench database on a free port, for the ``with`` block; yields
    the port.

    ``env`` adds to its environment (``REDIS_URL``, to send jobs to a worker)."""
    port = free_port()
    process = web_start(port, log, env)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(15)


ROOT = Path(__file__).resolve().parent.parent


def web_command(port: int, log_level: str = "warning") -> list[str]:
    """How the README serves the API (``config/web.py``), on ``port``."""
    return [sys.executable, "-m", "config.web", "--host", HOST, "--port", str(port),
            "--log-level", log_level]  # fmt: skip


def web_served() -> str:
    """What serves the API in the benches, for their reports."""
    from config import web

    return f"granian, {web.processes()} processes x {web.threads()} threads (config/web.py)"


def web_start(port: int, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Serve the bench database as the README deploys the API."""
    env = {**os.environ, **django_environment(), "DB_TIMEOUTS": "web"}
    env.pop("REDIS_URL", None)
    env.update(extra_env or {})
    process = subprocess.Popen(
        web_command(port), env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the web server did not start within 30 seconds")


def login(port: int, username: str) -> str:
    """Log in through the API with the bench password; return the token."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        body = json.dumps({"username": username, "password": PASSWORD})
        conn.request(
            "POST", "/api/v1/auth/token/", body=body, headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"login of {username} answered {response.status}: {payload[:200]}")
        return json.loads(payload)["token"]
    finally:
        conn.close()


# Submitting a million annotations through the service would take hours; the rows it would
# write are inserted directly instead: one submitted assignment and its annotation per task,
# which completes the task.
_ANNOTATE = """
WITH taken AS (
    UPDATE tasks_slot SET state = 'done' WHERE project_id = %(project)s
    RETURNING id, task_id, project_id
), completed AS (
    UPDATE tasks_task SET completed_at = now() WHERE id IN (SELECT task_id FROM taken)
), assignment AS (
    INSERT INTO tasks_assignment
        (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
    SELECT task_id, id, project_id, %(annotator)s, 'submitted', now(), now() FROM taken
    RETURNING id, task_id, project_id, annotator_id
)
INSERT INTO tasks_annotation
    (assignment_id, task_id, project_id, annotator_id, payload, version, payload_version,
     duration_seconds, submitted_at)
SELECT id, task_id, project_id, annotator_id, %(payload)s::jsonb, 1, 1, 30.0, now()
FROM assignment
"""


def annotate_all(cursor, project, annotator, payload: dict) -> None:
    """Give every task of ``project`` one submitted annotation of ``annotator`` with ``payload``."""
    params = {"project": project.pk, "annotator": annotator.pk, "payload": json.dumps(payload)}
    cursor.execute(_ANNOTATE, params)


@contextmanager
def celery_worker(log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A Celery worker as the README runs it, on the bench database and ``env``'s broker.

    Jobs left on the broker by an earlier run are purged first, so that it runs only this one's.
    """
    env = {**os.environ, **django_environment(), "DB_TIMEOUTS": "worker", **env}
    celery = [str(Path(sys.executable).with_name("celery")), "-A", "config"]
    root = Path(__file__).resolve().parent.parent
    subprocess.run([*celery, "purge", "-f"], env=env, cwd=root, capture_output=True, check=True)
    process = subprocess.Popen(
        [*celery, "worker", "-l", "WARNING", "--without-heartbeat", "--without-gossip",
         "--without-mingle"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ping = [*celery, "inspect", "ping", "-t", "1"]
        while subprocess.run(ping, env=env, cwd=root, capture_output=True).returncode:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start: {log.read_text()[-2000:]}")
        yield process
    finally:
        process.terminate()
        process.wait(30)


def upload(
    port: int, path_: str, file: Path, *, fields: dict[str, str], headers: dict[str, str]
) -> tuple[int, bytes]:
    """POST ``file`` as the multipart field ``file``, streamed from disk; return the answer."""
    boundary = "assay-bench-boundary"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head.encode()
        with file.open("rb") as content:
            while chunk := content.read(2**20):
                yield chunk
        yield tail

    length = len(head.encode()) + file.stat().st_size + len(tail)
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    try:
        conn.request(
            "POST",
            path_,
            body=body(),
            headers={
                **headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length),
            },
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def api_get(port: int, path_: str, headers: dict[str, str]) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", path_, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path_} answered {response.status}: {payload[:200]}")
        return json.loads(payload)
    finally:
        conn.close()


class ServerWatch:
    """The peak resident memory and the CPU time of every process descending from ``root``,
    and the CPU time of the database's backends serving ``database``, sampled from a thread
    every 50 ms until ``stop``.

    A process seen once reports its own peak (``VmHWM``); only one that lives less than 50 ms
    can be missed, and a process's CPU time after its last sample. Processes are grouped by the
    child of ``root`` they descend from (the web server, the Celery worker), backends as "database".
    """

    def __init__(self, root: int, database: str, groups: dict[int, str]):
        import threading

        self.root, self.database, self.groups = root, database, groups
        self._peaks: dict[int, tuple[str, float]] = {}
        self._cpu: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        with psycopg.connect(dsn(self.database), autocommit=True) as conn:
            self._sample(conn)
        # CPU is counted from here: the servers' start-up is not the import's.
        self._before = self.cpu()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        with psycopg.connect(dsn(self.database), autocommit=True) as conn:
            self._sample(conn)

    def peaks(self) -> list[tuple[str, float]]:
        """(process, peak RSS in MB), largest first."""
        with self._lock:
            peaks = [(f"{name} [{pid}]", rss) for pid, (name, rss) in self._peaks.items()]
        return sorted(peaks, key=lambda item: -item[1])

    def cpu(self) -> dict[str, float]:
        """CPU seconds used by each group since the watch began."""
        totals: dict[str, float] = {}
        with self._lock:
            for group, seconds in self._cpu.values():
                totals[group] = totals.get(group, 0.0) + seconds
        before = getattr(self, "_before", {})
        return {group: seconds - before.get(group, 0.0) for group, seconds in totals.items()}

    def _run(self) -> None:
        with psycopg.connect(dsn(self.database), autocommit=True) as conn:
            while not self._stopping.wait(0.05):
                self._sample(conn)

    def _sample(self, conn) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        backends = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.database],
        ).fetchall()
        pending = [(self.root, "")] + [(pid, "database") for (pid,) in backends]
        while pending:
            pid, group = pending.pop()
            try:
                kids = children(pid)
                status = Path(f"/proc/{pid}/status").read_text()
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:  # it ended meanwhile
                continue
            if group != "database":
                pending.extend(
                    (int(kid), group or self.groups.get(int(kid), "other")) for kid in kids
                )
            if pid == self.root:
                continue
            peak = next(
                (int(line.split()[1]) / 1024 for line in status.splitlines()
                 if line.startswith("VmHWM:")),
                0.0,
            )  # fmt: skip
            name = command.decode(errors="replace").strip()[:80]
            if "multiprocessing" in name:  # a pool's process, apart from the one it serves
                group = f"{group} pool"
            with self._lock:
                if group != "database" and peak >= self._peaks.get(pid, ("", 0.0))[1]:
                    self._peaks[pid] = (name, peak)
                self._cpu[pid] = (group, (int(stat[11]) + int(stat[12])) / tick)


def children(pid: int) -> list[int]:
    """The ids of a process's children, whichever of its threads started them (a web
    worker's request threads start the upload check's processes)."""
    kids = []
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with suppress(OSError):  # the thread ended meanwhile
            kids.extend(int(kid) for kid in (thread / "children").read_text().split())
    return kids
