"""Benchmark the annotator's loop, "claim the next task, submit it", over HTTP, with quality on.

Run with `BENCH_DATABASE=<name> .venv/bin/python bench/loop.py [--sizes 10000,100000,1000000]
[--seconds 20] [--runs 3] [--peer label-studio]`. Creates a fresh PostgreSQL database
(``BENCH_DATABASE``, default ``assay_bench``; dropped at the end) with one bbox project per size:
that many regular tasks at overlap 1, plus ``GOLD_TASKS`` gold tasks served at gold rate 0.1
(nobody counted a newcomer, whose rate would be higher), an organization quality rule that every
scored gold submission is evaluated against, and ``CLIENTS`` annotators of its own.
Beside them, a finished project of ``HISTORY_TASKS`` annotated tasks: the assignments and
annotations of a server in use, so that no table the loop reads starts empty.

Assay is served as the README deploys it: granian with ``config/web.py``, Redis
(database ``REDIS_DB``) as cache and broker, and one Celery worker for the jobs the submissions
queue. Each of ``CLIENTS`` client threads is one annotator in a closed loop with no think time:
``POST /api/v1/claims/``, then ``POST /api/v1/assignments/{id}/submit/`` with a three-box
payload, again. A gold claim is scored in its submit's transaction; its accuracy row is updated
there too, and the quality rules are evaluated after its commit, in the web process
(``workforce.queue.run_after_commit``; on the worker only when that fails).

A run lasts ``--seconds`` or until the clients have taken half the project's regular tasks
(so that a claim that finds nothing is always wrong); each client first makes a few untimed
cycles, as a long-running server's workers have loaded their caches long before. Between runs
the project is reset (annotations, scores, assignments and events deleted, slots opened) and
vacuumed. Printed per run and pooled per size: cycles per second, claim and submit latency
p50/p95/p99, and CPU per cycle split into web (the web server's processes), jobs (the Celery
worker), database (the PostgreSQL backends of the bench database and the server's WAL writer,
checkpointer and background writer; ``postgres_meter``) and
client (this process), each read from ``/proc/<pid>/stat``, with what the rest of the machine
used meanwhile ("others": figures are comparable between runs that shared the machine alike).
Then the correctness checks, over every run's rows before they are reset: no regular task held
or annotated by more annotators than its overlap, no annotator twice on a task, no claim that
answered "nothing open" (204) while open work remained, and every gold submission scored and
counted in its annotator's accuracy row.

With ``--peer label-studio`` it also installs Label Studio (``PEER_VERSION``) into a scratch
virtualenv outside the repository (``--peer-venv``, default ``/work/peer-ls``) with a PostgreSQL
database of its own on the same server, serves it with uWSGI as its image does, imports the
same tasks into it over its API, and runs its own loop ("next task", then "submit annotation")
with the same clients, in runs alternating with Assay's in the same window. Both imports of
``IMPORT_TASKS`` tasks over HTTP are timed there too. The default run needs nothing but Assay.
With ``--next`` Assay's loop also runs at one request per task, as its annotator's page works
(``"next": true`` on each submit claims the next task), in runs alternating with the others;
it is printed beside the targets, which are judged on the two-request loop.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _setup
import psycopg

CLIENTS = 8
SIZES = (10_000, 100_000, 1_000_000)
GOLD_TASKS = 1_000
# A finished project's annotated tasks, as a server in use holds: see ``seed``.
HISTORY_TASKS = 100_000
GOLD_RATE = 0.1
BOXES = 3
# Untimed cycles each client makes at the start of a run.
WARM_UP = 5
# Redis database of the bench's cache and broker, flushed at the start.
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
ROOT = _setup.ROOT

# Targets from the issue.
RATE_TARGET = 150.0  # cycles/s at 10,000 tasks
SUBMIT_CLAIM_P50 = 1.5  # submit p50 at most this times claim p50
CPU_TARGET_MS = 12.0  # server and database CPU per cycle
P99_GROWTH = 1.3  # p99 at 1,000,000 tasks against 10,000
PEER_RATIO = 20.0  # cycles/s against Label Studio, in the same window

PAYLOAD = {"boxes": _setup.bbox_boxes(BOXES, 640, 480, seed=424_242)}
ASSAY = "assay"
# Assay's loop at one request per task: each submit claims the next (``--next``).
ASSAY_NEXT = "assay+next"


# --- CPU ---------------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, reaped children's CPU seconds) of a process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # Fields 4, 14-17 of proc(5), counted from the state (field 3) here.
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / TICK
    reaped = (int(fields[13]) + int(fields[14])) / TICK
    return ppid, own, reaped


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(entry.name)) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


class CpuMeter:
    """CPU seconds spent by a changing set of processes since ``start()``.

    ``pids()`` names the processes now; each is sampled at the start, every ``EVERY`` seconds
    and at the end, and charged the CPU it used since it was first seen (from zero when it was
    born after the start). A process that exits between two samples keeps what the last one saw;
    ``reaper``, when given, is a parent whose reaped children's CPU is counted in full instead.
    """

    EVERY = 0.5

    def __init__(self, pids: Callable[[], list[int]], reaper: int | None = None):
        self.pids, self.reaper = pids, reaper
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def _sample(self, first: bool) -> None:
        for pid in self.pids():
            stat = _stat(pid)
            if stat is None:
                continue
            self.first.setdefault(pid, stat[1] if first else 0.0)
            self.last[pid] = stat[1]

    def _reaped(self) -> float:
        stat = _stat(self.reaper) if self.reaper else None
        return stat[2] if stat else 0.0

    def start(self) -> None:
        self.first.clear()
        self.last.clear()
        self.reaped = self._reaped()
        self._sample(first=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.EVERY):
            self._sample(first=False)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        used = sum(self.last[pid] - self.first[pid] for pid in self.last)
        return used + self._reaped() - self.reaped


def postgres_meter(database: str, *, ended: bool = False) -> CpuMeter:
    """What the bench's work costs the database: the backends connected to ``database`` and the
    server's own background processes (WAL writer, checkpointer, background writer, autovacuum
    launcher). Other databases' backends are left out.

    A backend that ends between two samples keeps only what the last one saw. Assay's keep
    their connections (``CONN_MAX_AGE``), so none ends during a run. For a system that opens a
    connection per request (Label Studio does), ``ended`` counts in full the backends the
    server's postmaster reaped during the run: other databases' that ended meanwhile too, so on
    a machine others use the figure is then an upper bound.
    """
    conn = psycopg.connect(_setup.dsn(database), autocommit=True)
    lock = threading.Lock()
    (backend,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    postmaster = _stat(backend)[0]

    def pids() -> list[int]:
        with lock:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                "(datname = %s OR (datname IS NULL AND backend_type <> 'client backend'))",
                (database,),
            ).fetchall()
        return [postmaster, *(pid for (pid,) in rows)]

    return CpuMeter(pids, reaper=postmaster if ended else None)


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (every core, every process) since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    values = [int(x) for x in fields[:8]]
    return (sum(values) - values[3] - values[4]) / TICK


def client_cpu() -> float:
    stat = _stat(os.getpid())
    return stat[1] if stat else 0.0


# --- runs --------------------------------------------------------------------------------------


@dataclass
class Run:
    system: str
    size: int
    index: int
    seconds: float = 0.0
    cycles: int = 0
    empty: int = 0
    claims: list[float] = field(default_factory=list)
    submits: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    others: float = 0.0  # CPU seconds the rest of the machine used during the run

    @property
    def others_share(self) -> float:
        """The share of the machine's cores the rest of it kept busy during the run."""
        return self.others / (self.seconds * (os.cpu_count() or 1)) if self.seconds else 0.0

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0

    def per_cycle_ms(self, part: str) -> float:
        return self.cpu.get(part, 0.0) / self.cycles * 1000 if self.cycles else float("nan")

    @property
    def server_ms(self) -> float:
        return sum(self.per_cycle_ms(p) for p in ("web", "jobs", "database"))


class Connection:
    """One client's HTTP connection; it reconnects when the server closed it after an answer."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.conn = http.client.HTTPConnection(_setup.HOST, port, timeout=120)
        self.headers = headers

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


class AssayClient:
    """An annotator of Assay: claim the next task, submit three boxes."""

    def __init__(self, port: int, token: str, organization: str):
        self.http = Connection(
            port,
            {
                "Authorization": f"Token {token}",
                "X-Organization": organization,
                "Content-Type": "application/json",
            },
        )
        self.submit_body = json.dumps({"payload": PAYLOAD, "active_seconds": 0}).encode()

    def claim(self) -> int | None:
        """The claimed assignment's id, or None when nothing is open (204)."""
        status, body = self.http.call("POST", "/api/v1/claims/", b"{}")
        if status == 204:
            return None
        if status != 201:
            raise RuntimeError(f"claim answered {status}: {body[:300]!r}")
        return json.loads(body)["id"]

    def submit(self, assignment: int) -> bytes:
        """The submit's answer, a 201's body."""
        path = f"/api/v1/assignments/{assignment}/submit/"
        status, body = self.http.call("POST", path, self.submit_body)
        if status != 201:
            raise RuntimeError(f"submit answered {status}: {body[:300]!r}")
        return body


class AssayNextClient(AssayClient):
    """An annotator of Assay whose submit also claims the next task (``"next": true``): one
    request per task, as Assay's own page works. Its claims are the tasks those submits
    brought (no request, so no time), but for the first of a run and after one that brought
    none."""

    def __init__(self, port: int, token: str, organization: str):
        super().__init__(port, token, organization)
        self.submit_body = json.dumps(
            {"payload": PAYLOAD, "active_seconds": 0, "next": True}
        ).encode()
        self.held: int | None = None

    def claim(self) -> int | None:
        if self.held is None:
            return super().claim()
        held, self.held = self.held, None
        return held

    def submit(self, assignment: int) -> bytes:
        body = super().submit(assignment)
        following = json.loads(body)["next"]["assignment"]
        self.held = following and following["id"]
        return body


def run_loop(run: Run, clients: list, limit: int, seconds: float, meters: dict[str, CpuMeter]):
    """All clients loop claim + submit together for ``seconds`` or ``limit`` cycles each."""
    begun, deadline, cpu_before, busy_before = [0.0], [0.0], [0.0], [0.0]

    def go() -> None:
        # Run by the last thread through the barrier, before any is released.
        for meter in meters.values():
            meter.start()
        cpu_before[0] = client_cpu()
        busy_before[0] = machine_busy()
        begun[0] = time.perf_counter()
        deadline[0] = begun[0] + seconds

    start = threading.Barrier(len(clients) + 1, action=go)
    stop = threading.Barrier(len(clients) + 1)
    errors: list[str] = []
    per_client: list[tuple[list[float], list[float], int]] = [([], [], 0)] * len(clients)

    def loop(index: int, client) -> None:
        claims, submits, empty = [], [], 0
        try:
            for _ in range(WARM_UP):
                client.submit(client.claim())
            start.wait()
            while len(submits) < limit:
                t0 = time.perf_counter()
                if t0 >= deadline[0]:
                    break
                task = client.claim()
                t1 = time.perf_counter()
                if task is None:
                    # Never right here: a run takes at most half the open work.
                    empty += 1
                    break
                client.submit(task)
                claims.append(t1 - t0)
                submits.append(time.perf_counter() - t1)
        except threading.BrokenBarrierError:
            return
        except Exception as exc:  # handed to the main thread, which stops the run
            errors.append(repr(exc))
            start.abort()
        finally:
            per_client[index] = (claims, submits, empty)
            with contextlib.suppress(threading.BrokenBarrierError):
                stop.wait()

    threads = [threading.Thread(target=loop, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        # A client failed while warming up: the others are told through the stop barrier.
        stop.abort()
        for t in threads:
            t.join()
        raise RuntimeError(f"a client failed: {errors}") from None
    with contextlib.suppress(threading.BrokenBarrierError):
        stop.wait()
    run.seconds = time.perf_counter() - begun[0]
    run.cpu = {name: meter.stop() for name, meter in meters.items()}
    run.cpu["client"] = client_cpu() - cpu_before[0]
    # What everything else on the machine took meanwhile (other benches, test suites): the
    # figures above are only comparable between runs that shared the machine alike.
    run.others = max(0.0, machine_busy() - busy_before[0] - sum(run.cpu.values()))
    for t in threads:
        t.join()
    for client in clients:
        client.http.close()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]}")
    for claims, submits, empty in per_client:
        run.claims.extend(claims)
        run.submits.extend(submits)
        run.empty += empty
    run.cycles = len(run.submits)
    run.claims.sort()
    run.submits.sort()


def ms(values: list[float], q: float) -> float:
    return _setup.percentile(values, q) * 1000


def claim_columns(system: str, claims: list[float], widths: tuple[int, int, int]) -> str:
    """Claim p50/p95/p99 in ms; a dash for the loop whose submits bring its claims (no request,
    so nothing to time)."""
    if system == ASSAY_NEXT:
        return " ".join(f"{'-':>{width}}" for width in widths)
    return " ".join(
        f"{ms(claims, q):>{w}.1f}" for q, w in zip((0.5, 0.95, 0.99), widths, strict=True)
    )


def print_run(run: Run) -> None:
    print(
        f"  {run.system:<12} {run.size:>9,} tasks run {run.index + 1}: {run.rate:7.1f} cycles/s"
        f"  claim p50/p95/p99 {claim_columns(run.system, run.claims, (6, 6, 6))}"
        f" ms  submit {ms(run.submits, 0.5):6.1f}"
        f" {ms(run.submits, 0.95):6.1f} {ms(run.submits, 0.99):6.1f} ms  CPU/cycle"
        + "".join(f" {p} {run.per_cycle_ms(p):.1f}" for p in ("web", "jobs", "database", "client"))
        + f" ms  ({run.cycles:,} cycles{f', {run.empty} empty claims' if run.empty else ''};"
        f" others {run.others_share:.0%} of the machine)",
        flush=True,
    )


# --- Assay -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    organization: str
    projects: dict[int, int] = field(default_factory=dict)  # size -> project id
    tokens: dict[int, list[str]] = field(default_factory=dict)  # size -> annotators' tokens
    manager: object = None
    manager_token: str = ""


def seed(sizes: list[int], tmp: Path) -> Seeded:
    """One project per size, its tasks and gold tasks, its annotators and their tokens."""
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from qa.rules import quality_rule_create

    organization, manager = _setup.organization_seed("loop-bench")
    state = Seeded(
        organization.slug,
        manager=manager,
        manager_token=Token.objects.create(user=manager.user).key,
    )
    # Every scored gold submission has the rules evaluated after its commit; this one reads the
    # annotator's latest submissions and the project's median, and does not fire (all of 20
    # under a quarter of the median), so that every run does the same work.
    quality_rule_create(
        organization=organization, actor=manager.user, metric="fast_submissions", threshold=0.99,
        window=20, min_sample=5, action="alert",
    )  # fmt: skip
    # The history of a server in use: without it the assignments and annotations would start
    # each run empty, and PL/pgSQL caches each statement's plan as it first finds its tables. On
    # a table analyzed empty that plan reads the whole table, which then grows with the run: a
    # fresh database's first minute (until autovacuum analyzes the table and the plans are made
    # again), not the steady state this measures.
    history = _setup.project_seed(organization, manager, name="history", overlap=1)
    path = tmp / "history.jsonl"
    _setup.write_image_rows(path, HISTORY_TASKS, prefix="history")
    started = time.perf_counter()
    _setup.import_file(history, path, on_error="abort")
    path.unlink()
    (author,) = _setup.annotators_seed(organization, history, prefix="history", count=1)
    with connection.cursor() as cursor:
        _setup.annotate_all(cursor, history, author, PAYLOAD)
    print(f"seeded {HISTORY_TASKS:,} annotated tasks of history in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    for size in sizes:
        project = _setup.project_seed(
            organization,
            manager,
            name=f"{size:,} tasks",
            overlap=1,
            gold_rate=GOLD_RATE,
            newcomer_gold_tasks=0,
        )
        for name, count, boxes in (("tasks", size, 0), ("gold", GOLD_TASKS, BOXES)):
            path = tmp / f"{name}-{size}.jsonl"
            _setup.write_image_rows(path, count, prefix=f"{name}-{size}", gold_boxes=boxes)
            started = time.perf_counter()
            report = _setup.import_file(project, path, on_error="skip")
            path.unlink()
            print(f"seeded {report.created:,} {name} of the {size:,}-task project in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        annotators = _setup.annotators_seed(
            organization, project, prefix=f"annotator-{size}", count=CLIENTS
        )
        state.projects[size] = project.pk
        state.tokens[size] = [Token.objects.create(user=a.member.user).key for a in annotators]
    with psycopg.connect(_setup.dsn(), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return state


# Everything a run writes in its project, undone. Rows are deleted child first.
_RESET = [
    "DELETE FROM qa_goldscore WHERE project_id = %(p)s",
    "DELETE FROM qa_accuracy WHERE project_id = %(p)s",
    "DELETE FROM qa_qualityrulestate WHERE project_id = %(p)s",
    "DELETE FROM qa_liveevent",
    "DELETE FROM tasks_annotation WHERE project_id = %(p)s",
    "UPDATE tasks_slot SET state = 'open', assignment_id = NULL, lease_expires_at = NULL "
    "WHERE project_id = %(p)s AND state <> 'open'",
    "DELETE FROM tasks_assignment WHERE project_id = %(p)s",
    "UPDATE tasks_task SET completed_at = NULL WHERE project_id = %(p)s AND completed_at IS NOT NULL",
    "UPDATE tasks_projectmember SET gold_submitted = 0 WHERE project_id = %(p)s",
]
_RESET_VACUUM = (
    "qa_goldscore", "qa_accuracy", "qa_liveevent", "tasks_annotation", "tasks_slot",
    "tasks_assignment", "tasks_task", "tasks_projectmember",
)  # fmt: skip


def reset(project_id: int) -> None:
    with psycopg.connect(_setup.dsn(), autocommit=True) as conn:
        for sql in _RESET:
            conn.execute(sql, {"p": project_id})
        for table in _RESET_VACUUM:
            conn.execute(f"VACUUM (ANALYZE) {table}")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


_OVER_OVERLAP = """
SELECT count(*) FROM (
    SELECT a.task_id FROM tasks_assignment a
    JOIN tasks_task t ON t.id = a.task_id AND NOT t.is_gold
    JOIN tasks_project p ON p.id = a.project_id
    WHERE a.project_id = %(p)s
      AND (a.status = 'submitted' OR (a.status = 'active' AND a.lease_expires_at > now()))
    GROUP BY a.task_id, p.overlap HAVING count(*) > p.overlap
) over
"""
_ANNOTATIONS_OVER = """
SELECT count(*) FROM (
    SELECT n.task_id FROM tasks_annotation n
    JOIN tasks_task t ON t.id = n.task_id AND NOT t.is_gold
    JOIN tasks_project p ON p.id = n.project_id
    WHERE n.project_id = %(p)s GROUP BY n.task_id, p.overlap HAVING count(*) > p.overlap
) over
"""
_TWICE = """
SELECT count(*) FROM (
    SELECT 1 FROM tasks_assignment WHERE project_id = %(p)s
    GROUP BY task_id, annotator_id HAVING count(*) > 1
) twice
"""
_OPEN = "SELECT count(*) FROM tasks_slot WHERE project_id = %(p)s AND state = 'open'"
_GOLD = """
SELECT (SELECT count(*) FROM tasks_annotation n JOIN tasks_task t ON t.id = n.task_id
        WHERE n.project_id = %(p)s AND t.is_gold),
       (SELECT count(*) FROM qa_goldscore WHERE project_id = %(p)s),
       (SELECT COALESCE(sum(scored), 0) FROM qa_accuracy WHERE project_id = %(p)s),
       (SELECT count(*) FROM tasks_annotation WHERE project_id = %(p)s)
"""


def assay_checks(run: Run, project_id: int) -> list[Check]:
    """The invariants over what one run wrote, read before the reset."""
    with psycopg.connect(_setup.dsn(), autocommit=True) as conn:

        def one(sql: str):
            return conn.execute(sql, {"p": project_id}).fetchone()

        (over,), (annotated_over,), (twice,), (still_open,) = (
            one(_OVER_OVERLAP), one(_ANNOTATIONS_OVER), one(_TWICE), one(_OPEN)
        )  # fmt: skip
        gold, scored, counted, annotations = one(_GOLD)
    expected = run.cycles + WARM_UP * CLIENTS
    return [
        Check("no task over its overlap", over == 0 and annotated_over == 0,
              f"{over} tasks held, {annotated_over} annotated, beyond overlap"),
        Check("no annotator twice on a task", twice == 0, f"{twice} (task, annotator) twice"),
        Check("no 'nothing open' while open work remained", run.empty == 0 or still_open == 0,
              f"{run.empty} empty claims, {still_open:,} slots open after the run"),
        Check("every submission stored, every gold one scored and counted",
              annotations == expected and gold == scored == counted,
              f"{annotations:,} annotations of {expected:,} cycles, {gold:,} gold, "
              f"{scored:,} scored, {counted:,} counted"),
    ]  # fmt: skip


class Server:
    """A process group serving the bench, stopped at the end of the ``with`` block."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT):
        self.log = log
        self.process = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_port(self, port: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited: {self.log.read_text()[-3000:]}")
            try:
                with _setup.socket.create_connection((_setup.HOST, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.log.name}: nothing listens on {port} after {seconds} s")

    def meter(self) -> CpuMeter:
        return CpuMeter(lambda: process_tree(self.process.pid), reaper=self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def assay_environment() -> dict[str, str]:
    env = {**os.environ, **_setup.django_environment(), "DB_TIMEOUTS": "web"}
    env["REDIS_URL"] = REDIS_URL
    return env


def web_start(tmp: Path, checkout: Path = ROOT) -> tuple[Server, int]:
    """The web server serving ``checkout``'s code as its README deploys it; return it and its
    port. A checkout from before ``config/web.py`` is served by gunicorn with its configuration,
    as it was then (``pip install 'gunicorn>=27,<28'`` into the virtualenv first): how the
    switch to granian was measured."""
    port = _setup.free_port()
    if (checkout / "config" / "web.py").exists():
        args = _setup.web_command(port)
    else:
        args = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn_conf.py",
                "config.wsgi:application", "-b", f"{_setup.HOST}:{port}"]  # fmt: skip
    web = Server(
        args,
        {**assay_environment(), "PYTHONPATH": str(checkout)},
        tmp / f"web-{port}.log",
        cwd=checkout,
    )
    web.wait_port(port)
    return web, port


def celery_start(tmp: Path) -> Server:
    """One Celery worker for the jobs the submissions queue, on an empty broker database."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return Server(
        [str(Path(sys.executable).with_name("celery")), "-A", "config", "worker", "-c", "1",
         "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        {**assay_environment(), "DB_TIMEOUTS": "worker"}, tmp / "celery.log",
    )  # fmt: skip


def assay_run(
    system: str, state: Seeded, size: int, index: int, port: int, seconds: float, meters
) -> Run:
    run = Run(system, size, index)
    project = state.projects[size]
    reset(project)
    client = AssayNextClient if system == ASSAY_NEXT else AssayClient
    clients = [client(port, token, state.organization) for token in state.tokens[size]]
    limit = max(1, (size // 2) // CLIENTS - WARM_UP)
    run_loop(run, clients, limit, seconds, meters)
    return run


def import_over_http(port: int, token: str, organization: str, project: int, path: Path) -> float:
    """Upload a JSON Lines file to Assay's import endpoint and wait for ``done``; seconds."""
    conn = Connection(port, {"Authorization": f"Token {token}", "X-Organization": organization})
    boundary = "loop-bench-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="on_error"\r\n\r\nabort\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="tasks.jsonl"\r\nContent-Type: application/x-ndjson\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn.headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    started = time.perf_counter()
    status, answer = conn.call("POST", f"/api/v1/projects/{project}/tasks/import", body)
    if status != 202:
        raise RuntimeError(f"import answered {status}: {answer[:300]!r}")
    job = json.loads(answer)["id"]
    conn.headers.pop("Content-Type")
    while True:
        status, answer = conn.call("GET", f"/api/v1/projects/{project}/imports/{job}")
        report = json.loads(answer)
        if report["status"] == "done":
            elapsed = time.perf_counter() - started
            conn.close()
            return elapsed
        if report["status"] == "failed":
            raise RuntimeError(f"import failed: {report}")
        time.sleep(0.1)


# --- report ------------------------------------------------------------------------------------


def pooled(runs: list[Run], attr: str) -> list[float]:
    return sorted(x for run in runs for x in getattr(run, attr))


def report(runs: list[Run], sizes: list[int], checks: list[Check], imports: dict) -> bool:
    systems = list(dict.fromkeys(run.system for run in runs))
    print()
    print(f"{'system':<13}{'tasks':>10}{'runs':>5}{'cycles/s':>10}  "
          f"{'claim p50/p95/p99 ms':>22}  {'submit p50/p95/p99 ms':>22}  "
          f"{'CPU ms/cycle web+jobs+db = server; client':>42}  others")  # fmt: skip
    medians: dict[tuple[str, int], float] = {}
    for system in systems:
        for size in sizes:
            mine = [r for r in runs if r.system == system and r.size == size]
            if not mine:
                continue
            claims, submits = pooled(mine, "claims"), pooled(mine, "submits")
            rate = medians[system, size] = statistics.median(r.rate for r in mine)
            cpu = {
                p: statistics.median(r.per_cycle_ms(p) for r in mine)
                for p in ("web", "jobs", "database", "client")
            }
            server = statistics.median(r.server_ms for r in mine)
            print(f"{system:<13}{size:>10,}{len(mine):>5}{rate:>10.1f}  "
                  f"{claim_columns(system, claims, (6, 6, 7))}  "
                  f"{ms(submits, .5):>6.1f} {ms(submits, .95):>6.1f} {ms(submits, .99):>7.1f}  "
                  f"{cpu['web']:>7.1f} +{cpu['jobs']:>5.1f} +{cpu['database']:>6.1f} = "
                  f"{server:>6.1f}; {cpu['client']:>5.1f}  "
                  f"{statistics.median(r.others_share for r in mine):>5.0%}")  # fmt: skip
    if imports:
        print()
        for system, seconds in imports.items():
            print(f"  import of {IMPORT_TASKS:,} tasks over HTTP, {system}: {seconds:.1f} s "
                  f"({IMPORT_TASKS / seconds:,.0f} tasks/s)")  # fmt: skip
        if len(imports) == 2:
            print(f"  import ratio: {imports[PEER] / imports[ASSAY]:.1f}x")

    ok = True
    print()

    def verdict(passed: bool, text: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"  [{'PASS' if passed else 'FAIL'}] {text}")

    mine = [r for r in runs if r.system == ASSAY]
    if sizes[0] == 10_000 and (ASSAY, 10_000) in medians:
        verdict(medians[ASSAY, 10_000] >= RATE_TARGET,
                f">= {RATE_TARGET:.0f} cycles/s at 10,000 tasks: {medians[ASSAY, 10_000]:.1f}")  # fmt: skip
    claims, submits = pooled(mine, "claims"), pooled(mine, "submits")
    ratio = ms(submits, 0.5) / ms(claims, 0.5)
    verdict(ratio <= SUBMIT_CLAIM_P50,
            f"submit p50 <= {SUBMIT_CLAIM_P50}x claim p50: {ms(submits, .5):.1f} / "
            f"{ms(claims, .5):.1f} ms = {ratio:.2f}x")  # fmt: skip
    server = statistics.median(r.server_ms for r in mine)
    verdict(server <= CPU_TARGET_MS,
            f"server + database CPU per cycle <= {CPU_TARGET_MS:.0f} ms: {server:.1f} ms "
            f"(client {statistics.median(r.per_cycle_ms('client') for r in mine):.1f} ms more)")  # fmt: skip
    if 10_000 in sizes and 1_000_000 in sizes:
        small = pooled([r for r in mine if r.size == 10_000], "claims") + pooled(
            [r for r in mine if r.size == 10_000], "submits"
        )
        large = pooled([r for r in mine if r.size == 1_000_000], "claims") + pooled(
            [r for r in mine if r.size == 1_000_000], "submits"
        )
        for name, a, b in (
            (
                "claim",
                pooled([r for r in mine if r.size == 10_000], "claims"),
                pooled([r for r in mine if r.size == 1_000_000], "claims"),
            ),
            (
                "submit",
                pooled([r for r in mine if r.size == 10_000], "submits"),
                pooled([r for r in mine if r.size == 1_000_000], "submits"),
            ),
        ):
            growth = ms(b, 0.99) / ms(a, 0.99)
            verdict(growth <= P99_GROWTH,
                    f"{name} p99 at 1,000,000 tasks <= {P99_GROWTH}x 10,000: {ms(b, .99):.1f} / "
                    f"{ms(a, .99):.1f} ms = {growth:.2f}x")  # fmt: skip
        del small, large
    for size in sizes:
        if (BASELINE, size) in medians:
            pairs = [
                (a.rate / b.rate, b.server_ms / a.server_ms)
                for a in runs if a.system == ASSAY and a.size == size
                for b in runs if b.system == BASELINE and b.size == size and b.index == a.index
            ]  # fmt: skip
            print(f"  against the baseline at {size:,} tasks, per pair of runs: cycles/s "
                  f"{', '.join(f'{r:.2f}x' for r, _ in pairs)}; server CPU per cycle "
                  f"{', '.join(f'{c:.2f}x' for _, c in pairs)} less")  # fmt: skip
        if (PEER, size) in medians:
            same_window = [
                a.rate / p.rate
                for a in runs if a.system == ASSAY and a.size == size
                for p in runs if p.system == PEER and p.size == size and p.index == a.index
            ]  # fmt: skip
            ratio = medians[ASSAY, size] / medians[PEER, size]
            verdict(ratio >= PEER_RATIO,
                    f">= {PEER_RATIO:.0f}x Label Studio's cycles/s at {size:,} tasks: {ratio:.1f}x "
                    f"(per pair of runs {', '.join(f'{x:.1f}' for x in same_window)})")  # fmt: skip
        if (PEER, size) in medians and (ASSAY_NEXT, size) in medians:
            # Not a target: the loop compared is two requests per task on both sides.
            ratio = medians[ASSAY_NEXT, size] / medians[PEER, size]
            print(f"  one request per task (submit with next) at {size:,} tasks: "
                  f"{medians[ASSAY_NEXT, size]:.1f} cycles/s, {ratio:.1f}x Label Studio's")  # fmt: skip
    print()
    for check in checks:
        verdict(check.ok, f"{check.name}: {check.detail}")
    return ok


# --- main --------------------------------------------------------------------------------------
PEER = "label-studio"
PEER_SIZES = (10_000, 100_000)
BASELINE = "baseline"
IMPORT_TASKS = 100_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="regular tasks per project, comma-separated")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a run")
    parser.add_argument("--runs", type=int, default=3, help="runs per size and system")
    parser.add_argument("--peer", choices=[PEER], help="also run Label Studio, alternating")
    parser.add_argument("--peer-venv", type=Path, default=Path("/work/peer-ls"))
    parser.add_argument("--next", action="store_true",
                        help="also run Assay's loop at one request per task, each submit "
                        "claiming the next, alternating")  # fmt: skip
    parser.add_argument("--baseline", type=Path,
                        help="another checkout of Assay (a worktree of an earlier commit) served "
                        "on the same database too, alternating: before and after in one window")  # fmt: skip
    args = parser.parse_args()
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))

    peer = None
    if args.peer:
        import _label_studio

        peer = _label_studio.LabelStudio(args.peer_venv)
        peer.install()
    # Label Studio is compared where the issue compares it; a million of its tasks would take
    # its import most of an hour.
    peer_sizes = [size for size in sizes if size in PEER_SIZES]

    runs: list[Run] = []
    checks: list[Check] = []
    imports: dict[str, float] = {}
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="assay-loop-") as tmp, _setup.django_database():
        tmp_path = Path(tmp)
        state = seed(sizes, tmp_path)
        try:
            jobs = celery_start(tmp_path)
            servers.append(jobs)
            if peer is not None:
                # Rows for Label Studio's projects and for both timed imports.
                rows = tmp_path / "peer-rows.jsonl"
                _setup.write_image_rows(rows, max(IMPORT_TASKS, *peer_sizes), prefix="peer")
                peer.start(tmp_path, peer_sizes, CLIENTS, rows)
            database = postgres_meter(_setup.DB_NAME)
            # Each system: what runs one of its runs.
            systems: dict[str, Callable[[int, int], Run]] = {}
            for name, checkout in [(ASSAY, ROOT)] + (
                [(BASELINE, args.baseline)] if args.baseline else []
            ):
                web, port = web_start(tmp_path, checkout)
                servers.append(web)
                meters = {"web": web.meter(), "jobs": jobs.meter(), "database": database}
                systems[name] = lambda size, index, name=name, port=port, meters=meters: assay_run(
                    name, state, size, index, port, args.seconds, meters
                )
                print(f"{name}: {checkout} served on port {port}", flush=True)
                if name == ASSAY and args.next:
                    systems[ASSAY_NEXT] = lambda size, index, port=port, meters=meters: assay_run(
                        ASSAY_NEXT, state, size, index, port, args.seconds, meters
                    )
                if name == ASSAY and peer is not None:
                    imports = time_imports(state, port, peer, rows)
            if peer is not None:
                systems[PEER] = lambda size, index: peer.run(size, index, args.seconds, PAYLOAD)
            print(f"{CLIENTS} annotators, {args.seconds:g} s runs", flush=True)
            # Sizes and systems take turns, and the order turns from run to run, so that the
            # machine's drift (other work on it) favours none of them.
            for index in range(args.runs):
                for size in sizes:
                    names = [n for n in systems if n != PEER or size in peer_sizes]
                    shift = index % len(names)
                    for name in names[shift:] + names[:shift]:
                        run = systems[name](size, index)
                        if name == PEER:
                            checks.extend(peer.checks(run))
                        else:
                            checks.extend(assay_checks(run, state.projects[size]))
                        runs.append(run)
                        print_run(run)
            for size in sizes:
                reset(state.projects[size])
        finally:
            for server in servers:
                server.stop()
            if peer is not None:
                peer.stop()
    checks = merge_checks(checks)
    return 0 if report(runs, sizes, checks, imports) else 1


def merge_checks(checks: list[Check]) -> list[Check]:
    """One line per check: failed if any run failed it, with the first failure's detail."""
    merged: dict[str, Check] = {}
    for check in checks:
        seen = merged.get(check.name)
        if seen is None or (seen.ok and not check.ok):
            merged[check.name] = Check(check.name, check.ok and (seen is None or seen.ok),
                                       check.detail)  # fmt: skip
    return list(merged.values())


def time_imports(state: Seeded, port: int, peer, rows: Path) -> dict[str, float]:
    """Both systems import the same ``IMPORT_TASKS`` tasks over HTTP, one after the other."""
    path = rows.with_name("import.jsonl")
    with rows.open() as source, path.open("w") as out:
        for _, line in zip(range(IMPORT_TASKS), source, strict=False):
            out.write(line)
    manager = state.manager
    project = _setup.project_seed(manager.organization, manager, name="import timing")
    assay = import_over_http(port, state.manager_token, state.organization, project.pk, path)
    print(f"Assay imported {IMPORT_TASKS:,} tasks over HTTP in {assay:.1f} s", flush=True)
    path.unlink()
    label_studio = peer.import_timed(rows, IMPORT_TASKS)
    print(f"Label Studio imported {IMPORT_TASKS:,} tasks over HTTP in {label_studio:.1f} s",
          flush=True)  # fmt: skip
    return {ASSAY: assay, PEER: label_studio}


if __name__ == "__main__":
    sys.exit(main())
