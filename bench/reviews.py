"""Benchmark review claims: ``review_claim`` in-process and ``POST /api/v1/reviews/claim`` over
HTTP.

Run with `BENCH_DATABASE=<name> .venv/bin/python bench/reviews.py [--quick]`. Creates a fresh
PostgreSQL database (``BENCH_DATABASE``, default ``assay_bench``; dropped at the end) with a bbox
project of 100,000 annotated tasks (``--quick``: 30,000) whose one review layer sampled them all,
so that every annotation waits as a review item, and 16 reviewers on the project (plus, on the
HTTP run, the same reviewers logged in through the API). The annotations and their items are
written in bulk SQL, as ``review_arrive`` would have written them one by one.

Three phases, each run ``--repeat`` times in turn:

- in-process: 16 threads, each a reviewer of its own on a connection of its own, call
  ``qa.reviews.review_claim`` (the GIL limits them: a floor, not the target);
- over HTTP: the web server as the README deploys it (``config/web.py``), and 16 client
  processes, each logged in as a reviewer of its own, post ``/api/v1/reviews/claim``;
- the reference: task claims (``POST /api/v1/claims/``) on the same server by 16 annotators of
  a second project of as many open tasks, so that the review claim is judged against the task
  claim on the same machine at the same moment (this machine's throughput drifts).

Every phase starts from the same table: the items it leased are opened again and the table
vacuumed. Clients make ten untimed claims first, as a long-running server's connections have
loaded their caches and plans. Only the claim is timed. Prints claims per second, p50 and p99,
and PASS or FAIL against the target: at least 500 claims/s over HTTP with p99 at most 50 ms, for
16 clients. Checks after each phase that no item was handed out twice. Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import _setup

CLIENTS = 16
TARGET_RATE = 500.0
P99_TARGET_MS = 50.0
WARM_UP = 10
# How many leases a reviewer may hold: the most a project allows. The fastest of 16 in-process
# clients reaches it in about 9 s at 1,800 claims/s, which bounds a phase.
REVIEWER_LEASES = 1_000
IN_PROCESS, HTTP, REFERENCE = "in-process", "HTTP", "HTTP task claims (ref.)"
MODES = (IN_PROCESS, HTTP, REFERENCE)
REVIEW, TASK = "/api/v1/reviews/claim", "/api/v1/claims/"
PAYLOAD = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 40, "h": 40}]}

# Every annotation of the project waits at its layer, oldest first, as a submission leaves it.
_ITEMS = """
INSERT INTO qa_reviewitem
    (annotation_id, version, layer_id, project_id, task_id, author_member_id, sampled, rate,
     basis, arrived_at, state, released_by)
SELECT a.id, 1, %(layer)s, a.project_id, a.task_id, %(author)s, true, 1.0, 'newcomer',
    a.submitted_at, 'open', '{}'
FROM tasks_annotation a WHERE a.project_id = %(project)s ORDER BY a.id
"""
_TASKS_REOPEN = """
WITH opened AS (
    UPDATE tasks_slot SET state = 'open', assignment_id = NULL, lease_expires_at = NULL
    WHERE project_id = %(project)s AND state <> 'open'
)
DELETE FROM tasks_assignment WHERE project_id = %(project)s
"""
_REOPEN = """
UPDATE qa_reviewitem SET state = 'open', reviewer_id = NULL, leased_at = NULL,
    lease_expires_at = NULL
WHERE project_id = %s AND state = 'leased'
"""


@dataclass
class Phase:
    mode: str
    repeat: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    handed: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return _setup.percentile(self.latencies, q) * 1000


@dataclass
class Seeded:
    organization: str
    project: int
    reviewers: list  # Member
    usernames: list[str]
    task_project: int
    annotator_names: list[str]


def seed(tmp: Path, tasks: int, clients: int) -> Seeded:
    from django.db import connection

    from qa.models import ReviewLayer
    from qa.review_policy import review_policy_set
    from tasks.services.projects import project_members_add
    from workforce import services
    from workforce.models import Annotator, Role

    organization, manager = _setup.organization_seed("review-bench")
    # The reviewers never judge: each holds every item it claims until the phase ends.
    project = _setup.project_seed(
        organization, manager, name="reviews", max_concurrent_tasks=REVIEWER_LEASES
    )
    path = tmp / "tasks.jsonl"
    _setup.write_image_rows(path, tasks, prefix="review")
    started = time.perf_counter()
    _setup.import_file(project, path, on_error="abort")
    path.unlink()
    review_policy_set(
        project=project,
        layers=[{"name": "Peer review", "sample_rate": 1.0, "floor_rate": 0.0}],
        error_tags=[{"code": "loose-box", "description": "A box larger than its object."}],
        actor=manager.user,
    )
    (author,) = _setup.annotators_seed(organization, project, prefix="author", count=1)
    layer = ReviewLayer.objects.get(project=project, position=1)
    with connection.cursor() as cursor:
        _setup.annotate_all(cursor, project, author, PAYLOAD)
        cursor.execute(
            _ITEMS, {"layer": layer.pk, "author": author.member_id, "project": project.pk}
        )
        items = cursor.rowcount
    print(f"seeded {tasks:,} annotated tasks and {items:,} review items in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    reviewers = []
    for n in range(clients):
        member = services.member_create(
            organization=organization,
            username=f"reviewer-{n}",
            role=Role.REVIEWER,
            actor=None,
            password=_setup.PASSWORD,
        )
        reviewers.append(member)
    project_members_add(
        project=project,
        annotators=list(Annotator.objects.filter(member__in=reviewers)),
        role="reviewer",
        actor=None,
    )
    # The reference: a project of as many open tasks, and annotators to claim them.
    tasks_project = _setup.project_seed(organization, manager, name="tasks")
    _setup.write_image_rows(path, tasks, prefix="task")
    _setup.import_file(tasks_project, path, on_error="abort")
    path.unlink()
    annotators = _setup.annotators_seed(organization, tasks_project, prefix="ann", count=clients)
    for annotator in annotators[1:]:
        annotator.member.user.set_password(_setup.PASSWORD)
        annotator.member.user.save(update_fields=["password"])
    # Everything written, vacuumed and analyzed at once: otherwise autovacuum would do it during
    # the first phase, which then measured a third slower than the others.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    return Seeded(
        organization.slug,
        project.pk,
        reviewers,
        [m.user.username for m in reviewers],
        tasks_project.pk,
        [a.member.user.username for a in annotators],
    )


def reopen(state: Seeded) -> None:
    """Every phase starts from the same tables: what the last one leased is open again."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_REOPEN, [state.project])
        cursor.execute(_TASKS_REOPEN, {"project": state.task_project})
        for table in ("qa_reviewitem", "tasks_slot", "tasks_assignment"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def run_threads(phase: Phase, workers: list, seconds: float) -> None:
    """Each worker (a callable returning the item id and the seconds it took) warms up, then
    all claim together for ``seconds``."""
    start = threading.Barrier(len(workers) + 1)
    per_worker: list[list[tuple[int, float]]] = [[] for _ in workers]
    warm: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def loop(index: int, claim) -> None:
        try:
            for _ in range(WARM_UP):
                warm.append(claim()[0])
            start.wait()
            while not stop.is_set():
                per_worker[index].append(claim())
        except threading.BrokenBarrierError:
            return
        except Exception as exc:  # handed to the main thread, which stops the run
            errors.append(repr(exc))
            start.abort()
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=loop, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    # A client that failed while warming up breaks the barrier; the error is raised below.
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    begun = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - begun
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]}")
    phase.latencies = sorted(elapsed for per in per_worker for _item, elapsed in per)
    phase.handed = warm + [item for per in per_worker for item, _elapsed in per]


def run_processes(
    phase: Phase, port: int, tokens: list[str], organization: str, path: str, seconds: float
) -> None:
    """As ``run_threads``, with each HTTP client in a process of its own, as each reviewer's
    browser is: threads of one process would queue for its interpreter, and the latency
    measured would be partly the bench's own."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(tokens) + 1)
    stop, results = context.Event(), context.Queue()
    processes = [
        context.Process(
            target=_client_process,
            args=(port, token, organization, path, start, stop, results),
        )
        for token in tokens
    ]
    for process in processes:
        process.start()
    # A client that failed while warming up breaks the barrier; its error comes below.
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=120)
    begun = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    found = [results.get(timeout=120) for _ in processes]
    phase.seconds = time.perf_counter() - begun
    for process in processes:
        process.join()
    errors = [error for _warm, _claims, error in found if error]
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]}")
    phase.latencies = sorted(elapsed for _w, claims, _e in found for _item, elapsed in claims)
    phase.handed = [item for warm, claims, _e in found for item in [*warm, *(i for i, _ in claims)]]


def _client_process(port, token, organization, path, start, stop, results) -> None:
    warm: list[int] = []
    claims: list[tuple[int, float]] = []
    try:
        claim = Client(port, token, organization, path)
        for _ in range(WARM_UP):
            warm.append(claim()[0])
        start.wait(timeout=120)
        while not stop.is_set():
            claims.append(claim())
        results.put((warm, claims, None))
    except Exception as exc:
        start.abort()
        results.put((warm, claims, repr(exc)))


def in_process(member):
    from qa.reviews import review_claim

    def claim() -> tuple[int, float]:
        started = time.perf_counter()
        result = review_claim(member=member)
        elapsed = time.perf_counter() - started
        if result.claimed is None:
            raise RuntimeError(f"no claim: {result.outcome}")
        return result.claimed.item_id, elapsed

    return claim


class Client:
    """One reviewer's (or, for the reference, annotator's) connection to the web server."""

    def __init__(self, port: int, token: str, organization: str, path: str):
        self.path = path
        self.conn = http.client.HTTPConnection(_setup.HOST, port, timeout=60)
        self.headers = {
            "Authorization": f"Token {token}",
            "X-Organization": organization,
            "Content-Type": "application/json",
        }

    def __call__(self) -> tuple[int, float]:
        started = time.perf_counter()
        self.conn.request("POST", self.path, body=b"{}", headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 201:
            raise RuntimeError(f"claim answered {response.status}: {body[:300]!r}")
        return json.loads(body)["id"], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30,000 tasks instead of 100,000")
    parser.add_argument(
        "--seconds",
        type=float,
        help="timed seconds per phase (6); a reviewer holds at most REVIEWER_LEASES leases",
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes over both phases")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args()
    tasks = 30_000 if args.quick else 100_000
    seconds = args.seconds or 6.0

    with tempfile.TemporaryDirectory(prefix="assay-reviews-") as tmp, _setup.django_database():
        state = seed(Path(tmp), tasks, args.clients)
        phases: list[Phase] = []
        with _setup.web(Path(tmp) / "web.log") as port:
            tokens = [_setup.login(port, name) for name in state.usernames]
            annotator_tokens = [_setup.login(port, name) for name in state.annotator_names]
            print(f"{_setup.web_served()} on port {port}; {args.clients} clients, each a "
                  f"reviewer of their own; {seconds:.0f} s per phase", flush=True)  # fmt: skip
            for n in range(args.repeat):
                for mode in MODES:
                    reopen(state)
                    phase = Phase(mode, n)
                    if mode == HTTP:
                        run_processes(phase, port, tokens, state.organization, REVIEW, seconds)
                    elif mode == REFERENCE:
                        run_processes(
                            phase, port, annotator_tokens, state.organization, TASK, seconds
                        )
                    else:
                        workers = [in_process(m) for m in state.reviewers]
                        run_threads(phase, workers, seconds)
                    phases.append(phase)
                    twice = len(phase.handed) - len(set(phase.handed))
                    print(f"  pass {n + 1} {mode:<22} {phase.rate:7,.1f} claims/s  p50 "
                          f"{phase.p(0.5):6.2f} ms  p99 {phase.p(0.99):6.2f} ms  "
                          f"({len(phase.latencies):,} claims; handed twice: {twice})",
                          flush=True)  # fmt: skip
                    if twice:
                        print("  [FAIL] an item was handed out twice")
                        return 1
        return report(phases, args.clients)


def report(phases: list[Phase], clients: int) -> int:
    print()
    medians, verdict = {}, 1
    for mode in MODES:
        mine = [p for p in phases if p.mode == mode]
        rate = statistics.median(p.rate for p in mine)
        p50 = statistics.median(p.p(0.5) for p in mine)
        p99 = statistics.median(p.p(0.99) for p in mine)
        medians[mode] = rate
        print(f"{mode:<22} median of {len(mine)} passes: {rate:7,.1f} claims/s, p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms")  # fmt: skip
        if mode == HTTP:
            ok = rate >= TARGET_RATE and p99 <= P99_TARGET_MS
            verdict = 0 if ok else 1
    print(f"review claims over HTTP at {medians[HTTP] / medians[REFERENCE]:.2f}x the task claims' "
          "rate, on the same server at the same time")  # fmt: skip
    print(f"  [{'PASS' if verdict == 0 else 'FAIL'}] target with {clients} clients: at least "
          f"{TARGET_RATE:.0f} review claims/s over HTTP and p99 at most "
          f"{P99_TARGET_MS:.0f} ms")  # fmt: skip
    return verdict


if __name__ == "__main__":
    sys.exit(main())
