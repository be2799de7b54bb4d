"""Benchmark reading a project's accuracy table: 1,000 annotators, 1,000,000 scored gold tasks.

Run with `BENCH_DATABASE=<name> .venv/bin/python bench/accuracy.py [--quick]`. Creates a fresh
PostgreSQL database (``BENCH_DATABASE``, default ``assay_bench``; dropped at the end), a bbox
project with 1,000 gold tasks and 1,000 annotators staffed on it, and writes with SQL what a
million scored gold submissions leave: every annotator's assignment, annotation and
``GoldScore`` on every gold task (each annotator with a skill of their own, each score drawn
around it), then each annotator's ``Accuracy`` row from their scores (n, k, the latest 50 scores
in order). ``--quick`` writes the accuracy rows alone: the read never touches the scores.

Then times, after a few untimed reads:

- in process, ``qa.selectors.project_accuracy(project=…)``: every annotator's row with n, mean,
  Wilson interval and recent mean, ranked;
- over HTTP, ``GET /api/v1/projects/{id}/accuracy`` as the project's manager on the web server as
  the README deploys it (``config/web.py``), one client: each page (500 rows, the most a
  page holds) and the whole table (both pages, one after the other).

Prints p50 and p99 of each against the target of the issue, 50 ms; ``--profile`` first prints
where an in-process read's time goes. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _setup
import psycopg

ANNOTATORS, GOLD_TASKS = 1_000, 1_000
TARGET_MS = 50.0
PAGE_SIZE = 500  # the most a page holds (config.api.Pagination)
# Enough untimed reads for every web worker to have served a few.
WARM_UP = 20

# Every annotator on every gold task: an assignment, its annotation, its score. An annotator's
# skill is spread over [0.5, 0.95] by their id; each score is drawn around it and clamped.
SCORES = """
WITH skill AS (
    SELECT m.annotator_id AS id, 0.5 + 0.45 * ((m.annotator_id * 7919) %% 1000) / 1000.0 AS skill
    FROM tasks_projectmember m WHERE m.project_id = %(project)s
), assignment AS (
    INSERT INTO tasks_assignment
        (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at,
         ended_at)
    SELECT t.id, NULL, %(project)s, s.id, 'submitted', %(at)s, %(at)s, %(at)s
    FROM skill s CROSS JOIN tasks_task t WHERE t.project_id = %(project)s AND t.is_gold
    RETURNING id, task_id, annotator_id
), annotation AS (
    INSERT INTO tasks_annotation
        (assignment_id, task_id, project_id, annotator_id, payload, version, duration_seconds,
         submitted_at)
    SELECT id, task_id, %(project)s, annotator_id, '{"boxes": []}'::jsonb, 1, 30.0, %(at)s
    FROM assignment
    RETURNING id, task_id, annotator_id
)
INSERT INTO qa_goldscore
    (annotation_id, task_id, project_id, annotator_id, score, details, answer_version, scored_at)
SELECT a.id, a.task_id, %(project)s, a.annotator_id,
    LEAST(1, GREATEST(0, s.skill + (random() - 0.5) * 0.4)), '{}'::jsonb, 1,
    %(at)s + a.id * interval '1 millisecond'
FROM annotation a JOIN skill s ON s.id = a.annotator_id
"""

# Each annotator's row as the submissions would have left it: n, k, the latest scores in order.
ACCURACY_FROM_SCORES = """
INSERT INTO qa_accuracy
    (annotator_id, project_id, scored, score_sum, recent, day, scored_before_day,
     sum_before_day, updated_at)
SELECT g.annotator_id, %(project)s, count(*), LEAST(sum(g.score), count(*)),
    (SELECT array_agg(score ORDER BY scored_at) FROM (
        SELECT l.score, l.scored_at FROM qa_goldscore l
        WHERE l.project_id = %(project)s AND l.annotator_id = g.annotator_id
        ORDER BY l.scored_at DESC LIMIT %(recent)s) AS latest),
    %(day)s, count(*), LEAST(sum(g.score), count(*)), %(at)s
FROM qa_goldscore g WHERE g.project_id = %(project)s
GROUP BY g.annotator_id
"""

# ``--quick``: the rows alone, with the same totals (1,000 scored each) and random scores.
ACCURACY_ALONE = """
INSERT INTO qa_accuracy
    (annotator_id, project_id, scored, score_sum, recent, day, scored_before_day,
     sum_before_day, updated_at)
SELECT m.annotator_id, %(project)s, %(per)s, s.skill * %(per)s, r.recent, %(day)s, %(per)s,
    s.skill * %(per)s, %(at)s
FROM tasks_projectmember m
CROSS JOIN LATERAL (
    SELECT 0.5 + 0.45 * ((m.annotator_id * 7919) %% 1000) / 1000.0 AS skill) s
CROSS JOIN LATERAL (
    -- g in the aggregate makes it this level's (s and m are the outer query's).
    SELECT array_agg(LEAST(1, GREATEST(0, s.skill + (random() - 0.5) * 0.4 + 0 * g))) AS recent
    FROM generate_series(1, %(recent)s) AS g) r
WHERE m.project_id = %(project)s
"""


def seed(tmp: Path, scores: bool):
    """The project, its manager, its annotators and a million scores' worth of rows."""
    from datetime import UTC, datetime, timedelta

    from qa.gold import RECENT_N
    from qa.models.gold import RECENT_KEPT

    organization, manager = _setup.organization_seed("accuracy-bench")
    project = _setup.project_seed(organization, manager, name="accuracy", gold_rate=0.05)
    path = tmp / "gold.jsonl"
    _setup.write_image_rows(path, GOLD_TASKS, prefix="gold", gold_boxes=3)
    _setup.import_file(project, path, on_error="abort")
    path.unlink()
    started = time.perf_counter()
    _setup.annotators_seed(organization, project, prefix="scored", count=ANNOTATORS)
    print(f"seeded {GOLD_TASKS:,} gold tasks and {ANNOTATORS:,} annotators "
          f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    at = datetime.now(UTC) - timedelta(days=2)
    params = {
        "project": project.pk,
        "at": at,
        "day": at.date(),
        "recent": RECENT_KEPT,
        "per": GOLD_TASKS,
    }
    with psycopg.connect(_setup.dsn(), autocommit=True) as conn:
        started = time.perf_counter()
        if scores:
            conn.execute(SCORES, params)
            conn.execute(ACCURACY_FROM_SCORES, params)
        else:
            conn.execute(ACCURACY_ALONE, params)
        # The latest scores' sum, as each scored submission keeps it.
        conn.execute(
            "UPDATE qa_accuracy SET recent_sum = (SELECT sum(x) FROM unnest("
            "recent[greatest(cardinality(recent) - %(window)s + 1, 1):]) AS x) "
            "WHERE project_id = %(project)s",
            params | {"window": RECENT_N},
        )
        conn.execute("VACUUM (ANALYZE)")
        n, k, rows = conn.execute(
            "SELECT sum(scored), sum(score_sum), count(*) FROM qa_accuracy WHERE project_id = %s",
            (project.pk,),
        ).fetchone()
        written = conn.execute(
            "SELECT count(*) FROM qa_goldscore WHERE project_id = %s", (project.pk,)
        ).fetchone()[0]
    print(f"seeded {rows:,} accuracy rows counting {n:,} scored (mean {k / n:.3f}) and "
          f"{written:,} gold score rows ({time.perf_counter() - started:.0f} s), vacuumed",
          flush=True)  # fmt: skip
    return organization, manager, project


def in_process_read(project) -> Callable[[], int]:
    """The selector the endpoint calls: every annotator's row, ranked."""
    from qa.selectors import project_accuracy

    # Every row built, as a client reading the whole table has them built.
    return lambda: len(project_accuracy(project=project)[:])


def profile(read: Callable[[], object], runs: int = 50) -> None:
    """Where a read's time goes: the functions that took most of it, in process."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        read()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


def timed(read: Callable[[], object], runs: int) -> list[float]:
    for _ in range(WARM_UP):
        read()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        samples.append(time.perf_counter() - started)
    return sorted(samples)


def line(label: str, samples: list[float]) -> tuple[str, bool]:
    p50, p99 = (_setup.percentile(samples, q) * 1000 for q in (0.5, 0.99))
    ok = p99 <= TARGET_MS
    return (
        f"  [{'PASS' if ok else 'FAIL'}] {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"({len(samples)} reads; target p99 <= {TARGET_MS:.0f} ms)"
    ), ok


def http_reads(port: int, token: str, organization: str, project_id: int, runs: int):
    """Time each page and the whole table."""
    conn = http.client.HTTPConnection(_setup.HOST, port, timeout=60)
    headers = {"Authorization": f"Token {token}", "X-Organization": organization}
    pages = -(-ANNOTATORS // PAGE_SIZE)

    def page(n: int) -> dict:
        url = f"/api/v1/projects/{project_id}/accuracy/?page_size={PAGE_SIZE}&page={n}"
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"accuracy answered {response.status}: {body[:300]!r}")
        return json.loads(body)

    first = page(1)
    if first["count"] != ANNOTATORS:
        raise RuntimeError(f"the endpoint counted {first['count']} annotators")
    per_page: list[float] = []

    def whole() -> None:
        for n in range(1, pages + 1):
            started = time.perf_counter()
            page(n)
            per_page.append(time.perf_counter() - started)

    try:
        table = timed(whole, runs)
    finally:
        conn.close()
    return sorted(per_page[WARM_UP * pages :]), table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accuracy rows only, 50 reads")
    parser.add_argument("--runs", type=int, help="timed reads of each kind (default 200)")
    parser.add_argument("--profile", action="store_true", help="print where a read's time goes")
    args = parser.parse_args()
    runs = args.runs or (50 if args.quick else 200)

    with tempfile.TemporaryDirectory(prefix="assay-accuracy-") as tmp, _setup.django_database():
        organization, manager, project = seed(Path(tmp), scores=not args.quick)
        read = in_process_read(project)
        if read() != ANNOTATORS:
            raise RuntimeError("the read did not return every annotator")
        if args.profile:
            profile(read)
        results = [line("in process, qa.selectors.project_accuracy", timed(read, runs))]
        with _setup.web(Path(tmp) / "web.log") as port:
            token = _setup.login(port, manager.user.username)
            over_http = http_reads(port, token, organization.slug, project.pk, runs)
        per_page, table = over_http
        results.append(line(f"over HTTP, one page of {PAGE_SIZE} rows", per_page))
        results.append(line(f"over HTTP, the whole table ({ANNOTATORS:,} rows, 2 pages)", table))
        print()
        print(f"reading the accuracy of {ANNOTATORS:,} annotators with {GOLD_TASKS:,} scored "
              f"gold tasks each:")  # fmt: skip
        for text, _ok in results:
            print(text)
        return 0


if __name__ == "__main__":
    sys.exit(main())
