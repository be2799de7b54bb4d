"""Benchmark submitting a scored gold bbox task of 50 boxes over HTTP, against a regular one.

Run with `BENCH_DATABASE=<name> .venv/bin/python bench/gold_submit.py [--quick]`. Creates a fresh
PostgreSQL database (``BENCH_DATABASE``, default ``assay_bench``; dropped at the end) with two bbox
projects staffed by the same annotators:

- a gold project where every claim is gold (gold rate 1, nobody counted a newcomer), with a few
  regular tasks (a claim is gold only once it found regular work, which it leaves open) and a
  gold task for every claim the run makes, each answer 50 boxes;
- a regular project (gold off) with a task for every claim the run makes.

The web server serves it as the README deploys it (``config/web.py``). Each of 16 client
threads logs in through the API as an annotator of its own and loops: claim a task of one
project (untimed), then submit the same 50-box payload, which partly matches every answer (the
boxes lie in the same grid cells, at other offsets and sizes). Only the submit is timed. The
phases, gold and regular, alternate in passes, so that the machine's drift favours neither.

Prints submits per second (each loop's claim included in the wall time), the submit's p50, p95
and p99 for each phase and pooled, the cost of scoring as the ratio of gold to regular latency,
the target (p99 at most 50 ms with 16 clients), the same submit from one client alone (its
service time, without queueing for a worker), and checks that every gold submission has its
``GoldScore`` and is counted in its annotator's accuracy row. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import _setup

CLIENTS = 16
BOXES = 50
P99_TARGET_MS = 50.0
# Untimed loops at the start of every phase: each web worker's connection loads its caches
# and plans, as a long-running server's have.
WARM_UP = 5
# The gold project's few regular tasks: a gold claim needs regular work open to be drawn at all.
GOLD_PROJECT_REGULAR = 50
GOLD, REGULAR = "gold (scored)", "regular"
# The payload every submission sends: boxes in the answers' grid cells, drawn with another seed.
PAYLOAD = {"boxes": _setup.bbox_boxes(BOXES, 640, 480, seed=999_999)}


@dataclass
class Phase:
    mode: str
    repeat: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return _setup.percentile(self.latencies, q) * 1000


@dataclass
class Seeded:
    organization: str
    projects: dict[str, int]  # mode -> project id
    usernames: list[str]


def seed(tmp: Path, clients: int, per_project: int) -> Seeded:
    """Both projects and ``clients`` annotators on both, who can log in with the bench password."""
    from tasks.services.projects import project_members_add

    organization, manager = _setup.organization_seed("gold-submit-bench")
    gold = _setup.project_seed(
        organization, manager, name="gold", gold_rate=1.0, newcomer_gold_rate=1.0,
        newcomer_gold_tasks=0,
    )  # fmt: skip
    regular = _setup.project_seed(organization, manager, name="regular")
    for project, name, count, boxes in (
        (gold, "gold-regular", GOLD_PROJECT_REGULAR, 0),
        (gold, "gold", per_project, BOXES),
        (regular, "regular", per_project, 0),
    ):
        path = tmp / f"{name}.jsonl"
        _setup.write_image_rows(path, count, prefix=name, gold_boxes=boxes)
        started = time.perf_counter()
        report = _setup.import_file(project, path, on_error="abort")
        path.unlink()
        print(f"seeded {report.created:,} {name} tasks in {time.perf_counter() - started:.1f} s",
              flush=True)  # fmt: skip
    annotators = _setup.annotators_seed(organization, gold, prefix="submitter", count=clients)
    project_members_add(project=regular, annotators=annotators, role="annotator", actor=None)
    for annotator in annotators[1:]:
        user = annotator.member.user
        user.set_password(_setup.PASSWORD)
        user.save(update_fields=["password"])
    return Seeded(
        organization.slug,
        {GOLD: gold.pk, REGULAR: regular.pk},
        [a.member.user.username for a in annotators],
    )


class Client:
    """One annotator's connection to the web server (kept open between requests)."""

    def __init__(self, port: int, token: str, organization: str):
        self.conn = http.client.HTTPConnection(_setup.HOST, port, timeout=60)
        self.headers = {
            "Authorization": f"Token {token}",
            "X-Organization": organization,
            "Content-Type": "application/json",
        }
        self.body = json.dumps({"payload": PAYLOAD}).encode()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def claim(self, project_id: int) -> int:
        status, body = self.post("/api/v1/claims/", json.dumps({"project": project_id}).encode())
        if status != 201:
            raise RuntimeError(f"claim answered {status}: {body[:300]!r}")
        return json.loads(body)["id"]

    def submit(self, assignment_id: int) -> float:
        """Submit the payload; return the seconds it took."""
        started = time.perf_counter()
        status, body = self.post(f"/api/v1/assignments/{assignment_id}/submit/", self.body)
        elapsed = time.perf_counter() - started
        if status != 201:
            raise RuntimeError(f"submit answered {status}: {body[:300]!r}")
        return elapsed


def run_phase(phase: Phase, project_id: int, clients: list[Client], iterations: int) -> None:
    """Every client warms up, then all loop claim + submit ``iterations`` times together."""
    start = threading.Barrier(len(clients))
    per_client: list[list[float]] = [[] for _ in clients]
    errors: list[str] = []
    ended: list[float] = []

    def loop(index: int, client: Client) -> None:
        try:
            for _ in range(WARM_UP):
                client.submit(client.claim(project_id))
            start.wait()
            for _ in range(iterations):
                per_client[index].append(client.submit(client.claim(project_id)))
            ended.append(time.perf_counter())
        except threading.BrokenBarrierError:
            return
        except Exception as exc:  # handed to the main thread, which stops the run
            errors.append(repr(exc))
            start.abort()

    threads = [threading.Thread(target=loop, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    begun = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]}")
    # From the last client through the barrier (about when the first timed loop began) to the
    # last one done.
    phase.seconds = max(ended) - begun
    phase.latencies = sorted(x for per in per_client for x in per)


def check_scores(state: Seeded, expected: int) -> tuple[bool, str]:
    """Every gold submission has its score, and accuracy rows count them all."""
    from django.db.models import Avg, Count, Sum

    from qa.models import Accuracy, GoldScore
    from tasks.models import Annotation

    project_id = state.projects[GOLD]
    annotations = Annotation.objects.filter(project_id=project_id).count()
    scores = GoldScore.objects.filter(project_id=project_id).aggregate(
        n=Count("pk"), mean=Avg("score")
    )
    counted = Accuracy.objects.filter(project_id=project_id).aggregate(n=Sum("scored"))["n"] or 0
    ok = annotations == scores["n"] == counted == expected
    return ok, (
        f"{expected:,} gold submissions, {annotations:,} annotations, {scores['n']:,} gold scores "
        f"(mean score {scores['mean'] or 0:.3f}), {counted:,} counted in accuracy rows"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 loops per client, 2 passes")
    parser.add_argument("--iterations", type=int, help="timed loops per client and phase (200)")
    parser.add_argument("--repeat", type=int, help="passes over both phases (default 3)")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args()
    iterations = args.iterations or (60 if args.quick else 200)
    repeat = args.repeat or (2 if args.quick else 3)
    clients = args.clients
    # Each annotator has each gold task at most once: one for every loop of the run, and then
    # some, so that the claim's search for one they never had is never near its end.
    # The last pass, one client alone (the service time without queueing), takes more tasks.
    per_project = (clients * repeat + 1) * (iterations + WARM_UP)

    with tempfile.TemporaryDirectory(prefix="assay-gold-submit-") as tmp, _setup.django_database():
        state = seed(Path(tmp), clients, per_project)
        with _setup.web(Path(tmp) / "web.log") as port:
            tokens = [_setup.login(port, name) for name in state.usernames]
            print(f"{_setup.web_served()} on port {port}; {clients} clients, each logged in as "
                  f"an annotator of its own; {iterations} timed loops per client and phase; "
                  f"{BOXES} boxes per payload", flush=True)  # fmt: skip
            phases: list[Phase] = []
            for n in range(repeat):
                # The order turns from pass to pass.
                for mode in (GOLD, REGULAR) if n % 2 == 0 else (REGULAR, GOLD):
                    phase = Phase(mode, n)
                    web = [Client(port, token, state.organization) for token in tokens]
                    run_phase(phase, state.projects[mode], web, iterations)
                    phases.append(phase)
                    print(f"  pass {n + 1} {mode:<15} {phase.rate:7,.1f} submits/s  submit p50 "
                          f"{phase.p(0.5):6.2f} ms  p95 {phase.p(0.95):6.2f} ms  p99 "
                          f"{phase.p(0.99):6.2f} ms  ({len(phase.latencies):,} submits)",
                          flush=True)  # fmt: skip
            alone = []
            for mode in (GOLD, REGULAR):
                phase = Phase(mode, repeat)
                run_phase(phase, state.projects[mode], [Client(port, tokens[0], state.organization)],
                          iterations)  # fmt: skip
                alone.append(phase)
        report(phases, clients)
        for phase in alone:
            print(f"  one client alone, {phase.mode:<15} submit p50 {phase.p(0.5):6.2f} ms  "
                  f"p99 {phase.p(0.99):6.2f} ms  ({len(phase.latencies)} submits)")  # fmt: skip
        ok, figure = check_scores(state, (clients * repeat + 1) * (iterations + WARM_UP))
        print(f"  [{'PASS' if ok else 'FAIL'}] every gold submission scored and counted: {figure}")
        return 0


def report(phases: list[Phase], clients: int) -> None:
    def pooled(mode: str) -> list[float]:
        return sorted(x for p in phases if p.mode == mode for x in p.latencies)

    print()
    print(f"{'mode':<16}{'submits':>9}{'submits/s':>11}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for mode in (GOLD, REGULAR):
        runs = [p for p in phases if p.mode == mode]
        latencies = pooled(mode)
        rate = statistics.median(p.rate for p in runs)
        print(f"{mode:<16}{len(latencies):>9,}{rate:>11,.1f}"
              f"{_setup.percentile(latencies, 0.5) * 1000:>9.2f}"
              f"{_setup.percentile(latencies, 0.95) * 1000:>9.2f}"
              f"{_setup.percentile(latencies, 0.99) * 1000:>9.2f}")  # fmt: skip
    gold, regular = pooled(GOLD), pooled(REGULAR)
    print()
    for q in (0.5, 0.99):
        ratio = _setup.percentile(gold, q) / _setup.percentile(regular, q)
        print(f"  cost of scoring: gold p{q * 100:.0f} / regular p{q * 100:.0f} = {ratio:.2f}x")
    by_pass = [
        g.p(0.5) / r.p(0.5)
        for g in phases
        if g.mode == GOLD
        for r in phases
        if r.mode == REGULAR and r.repeat == g.repeat
    ]
    print(f"  gold p50 / regular p50 per pass: {', '.join(f'{x:.2f}' for x in by_pass)}")
    p99 = _setup.percentile(gold, 0.99) * 1000
    print(f"  [{'PASS' if p99 <= P99_TARGET_MS else 'FAIL'}] gold submit p99 <= "
          f"{P99_TARGET_MS:.0f} ms with {clients} clients: {p99:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
