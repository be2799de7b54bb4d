"""Benchmark a project's agreement report and Dawid-Skene at 100,000 classification tasks.

Run with `BENCH_DATABASE=<name> .venv/bin/python bench/agreement_report.py [--tasks N]
[--annotators N]`. Creates a fresh PostgreSQL database (``BENCH_DATABASE``, default
``assay_bench_agreement``; dropped at the end), a classification project with 5 labels and an
overlap of 3, ``--annotators`` annotators (default 20) staffed on it, and writes with SQL what
``--tasks`` (default 100,000) complete tasks leave: three seats done, three submitted assignments
and annotations per task (three distinct annotators of the pool; each annotator right with a
probability of their own between 0.6 and 0.95, else a random label), and each task's
``TaskAgreement`` and ``TaskConsensus`` (majority vote) as its job stores them.

Then times, in process:

- ``project_agreement_report``: cold (no cached report), after new work (one more label
  invalidates the cache), and cached (p50 and p99 of 20 reads, which count the fingerprint);
- ``project_dawid_skene``: cold and cached;
- the fingerprint query alone, and the beat's catch-up scan finding nothing to do;
- the per-task job on 200 tasks whose agreement was removed.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import time

import _setup
import psycopg

DB_NAME = os.environ.get("BENCH_DATABASE", "assay_bench_agreement")
CLASSES = ["cat", "dog", "bird", "fish", "horse"]
OVERLAP = 3
# The cold report's budget on a 2-core machine; a cached read's.
COLD_TARGET_S, CACHED_TARGET_MS = 2.0, 100.0

TASKS = """
INSERT INTO tasks_task (project_id, external_id, data, priority, is_gold, gold_version, created_at,
                        completed_at)
SELECT %(project)s, 't-' || g, '{"text": "a review"}'::jsonb, 0, false, 0, now(), now()
FROM generate_series(1, %(tasks)s) AS g
"""

SLOTS = """
INSERT INTO tasks_slot (task_id, project_id, seat, state, task_priority)
SELECT t.id, %(project)s, s, 'done', 0
FROM tasks_task t CROSS JOIN generate_series(0, %(overlap)s - 1) AS s
WHERE t.project_id = %(project)s
"""

# Seat s of task t goes to annotator (t + s k) mod n of the pool, k from 1 to n / 2 - 1 by task:
# three distinct annotators, and every pair of the pool meets on some tasks.
# The truth of a task is fixed by its id; an annotator's accuracy by theirs.
WORK = """
WITH people AS (
    SELECT array_agg(annotator_id ORDER BY annotator_id) AS ids, count(*) AS n
    FROM tasks_projectmember WHERE project_id = %(project)s
), assignment AS (
    INSERT INTO tasks_assignment
        (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at, ended_at)
    SELECT s.task_id, s.id, %(project)s, p.ids[1 + (s.task_id + s.seat * (1 + (s.task_id * 31) %% (p.n / 2 - 1))) %% p.n], 'submitted',
           now(), now(), now()
    FROM tasks_slot s CROSS JOIN people p WHERE s.project_id = %(project)s
    RETURNING id, task_id, annotator_id
)
INSERT INTO tasks_annotation
    (assignment_id, task_id, project_id, annotator_id, payload, version, payload_version,
     duration_seconds, submitted_at)
SELECT a.id, a.task_id, %(project)s, a.annotator_id,
       jsonb_build_object('label', CASE
           WHEN random() < 0.6 + 0.35 * ((a.annotator_id * 7919) %% 1000) / 1000.0
           THEN (%(classes)s::text[])[1 + (a.task_id * 2654435761) %% 5]
           ELSE (%(classes)s::text[])[1 + floor(random() * 5)::int] END),
       1, 1, 30.0, now()
FROM assignment a
"""

# What each task's job stores: the label table, the share of agreeing pairs, the majority label
# (first in schema order on a tie) with its share, and each annotator's score against it.
STORED = """
WITH counted AS (
    SELECT a.task_id, a.payload->>'label' AS label, count(*) AS n,
           min(array_position(%(classes)s::text[], a.payload->>'label')) AS position
    FROM tasks_annotation a WHERE a.project_id = %(project)s GROUP BY 1, 2
), winner AS (
    SELECT DISTINCT ON (task_id) task_id, label, n FROM counted
    ORDER BY task_id, n DESC, position
), agreement AS (
    INSERT INTO qa_taskagreement
        (task_id, project_id, annotations, value, labels, annotation_ids, versions,
         task_completed_at, seats, seat_added, computed_at)
    SELECT c.task_id, %(project)s, sum(c.n), sum(c.n * (c.n - 1) / 2) / 3.0,
           jsonb_object_agg(c.label, c.n), '{}', '{}', t.completed_at, 3, false, now()
    FROM counted c JOIN tasks_task t ON t.id = c.task_id GROUP BY c.task_id, t.completed_at
)
INSERT INTO qa_taskconsensus (task_id, project_id, method, payload, confidence, scores, computed_at)
SELECT w.task_id, %(project)s, 'majority_vote', jsonb_build_object('label', w.label), w.n / 3.0,
       (SELECT jsonb_object_agg(a.annotator_id::text, (a.payload->>'label' = w.label)::int::float)
        FROM tasks_annotation a WHERE a.task_id = w.task_id),
       now()
FROM winner w
"""

IDS = """
UPDATE qa_taskagreement g SET annotation_ids = x.ids, versions = x.versions
FROM (SELECT task_id, array_agg(id ORDER BY id) AS ids, array_agg(version ORDER BY id) AS versions
      FROM tasks_annotation WHERE project_id = %(project)s GROUP BY task_id) x
WHERE g.task_id = x.task_id
"""


def seed(tasks: int, annotators: int):
    from tasks.services.projects import project_create

    organization, manager = _setup.organization_seed("agreement-bench")
    project = project_create(
        organization=organization,
        actor=manager.user,
        name="agreement",
        kind="classification",
        label_schema={"labels": [{"name": name} for name in CLASSES]},
        overlap=OVERLAP,
        status="active",
    )
    started = time.perf_counter()
    _setup.annotators_seed(organization, project, prefix="rater", count=annotators)
    params = {"project": project.pk, "tasks": tasks, "overlap": OVERLAP, "classes": CLASSES}
    with psycopg.connect(_setup.dsn(DB_NAME), autocommit=True) as conn:
        for sql in (TASKS, SLOTS, WORK, STORED, IDS):
            conn.execute(sql, params)
        conn.execute("VACUUM (ANALYZE)")
        labels = conn.execute(
            "SELECT count(*) FROM tasks_annotation WHERE project_id = %s", (project.pk,)
        ).fetchone()[0]
    print(f"seeded {tasks:,} tasks, {labels:,} labels by {annotators} annotators "
          f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return project, manager


def once(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def reads(call, runs: int = 20) -> list[float]:
    samples = []
    for _ in range(runs):
        seconds, _ = once(call)
        samples.append(seconds)
    return sorted(samples)


def report(label: str, seconds: float, target: float) -> bool:
    ok = seconds <= target
    print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {seconds * 1000:.0f} ms "
          f"(target <= {target * 1000:.0f} ms)")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=20)
    args = parser.parse_args()
    if args.annotators < 6:
        parser.error("--annotators must be at least 6")
    results = []
    with _setup.django_database(DB_NAME):
        from django.db import connection

        from qa import agreement_report
        from qa.models import AgreementReport, TaskAgreement
        from qa.task_agreement import stale_tasks, task_agreement_compute
        from tasks.models import Annotation

        project, _ = seed(args.tasks, args.annotators)
        print(f"agreement report, {args.tasks:,} tasks:")
        cold, body = once(lambda: agreement_report.project_agreement_report(project=project))
        results.append(report("cold", cold, COLD_TARGET_S))
        figures = body.body
        print(f"    fleiss {figures['fleiss']['kappa']:.4f} over {figures['fleiss']['tasks']:,} "
              f"tasks, alpha {figures['krippendorff']['nominal']:.4f}, "
              f"{len(figures['cohen'])} Cohen pairs, mean pairwise "
              f"{figures['mean_pairwise']['value']:.4f}")  # fmt: skip
        # New work: one label changes version (a correction); the next read rebuilds.
        Annotation.objects.filter(pk=Annotation.objects.filter(project=project).first().pk).update(
            version=2
        )
        rebuilt, answer = once(lambda: agreement_report.project_agreement_report(project=project))
        assert not answer.cached
        results.append(report("after new work", rebuilt, COLD_TARGET_S))
        cached = reads(lambda: agreement_report.project_agreement_report(project=project))
        results.append(report("cached p50", _setup.percentile(cached, 0.5), CACHED_TARGET_MS / 1e3))
        results.append(
            report("cached p99", _setup.percentile(cached, 0.99), CACHED_TARGET_MS / 1e3)
        )
        fingerprint = reads(
            lambda: agreement_report.work_fingerprint(project, labels=True, min_shared=10)
        )
        print(
            f"    of which the fingerprint: p50 {_setup.percentile(fingerprint, 0.5) * 1000:.0f} ms"
        )

        print("Dawid-Skene:")
        cold, model = once(lambda: agreement_report.project_dawid_skene(project=project))
        results.append(report("cold", cold, COLD_TARGET_S))
        print(f"    {model.body['iterations']} iterations, converged {model.body['converged']}")
        cached = reads(lambda: agreement_report.project_dawid_skene(project=project))
        results.append(
            report("cached p99", _setup.percentile(cached, 0.99), CACHED_TARGET_MS / 1e3)
        )
        assert AgreementReport.objects.count() == 2

        print("per-task job and catch-up:")
        scan = reads(lambda: stale_tasks(limit=500), runs=5)
        print(
            f"    catch-up scan finding nothing: p50 {_setup.percentile(scan, 0.5) * 1000:.0f} ms"
        )
        ids = list(
            TaskAgreement.objects.order_by("task_id").values_list("task_id", flat=True)[:200]
        )
        TaskAgreement.objects.filter(task_id__in=ids).delete()
        spent, _ = once(lambda: [task_agreement_compute(task_id=task) for task in ids])
        print(f"    job: {spent / len(ids) * 1000:.1f} ms per task ({len(ids)} tasks)")
        connection.close()
    # Other processes on the machine slow every figure: say how busy it was.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("all PASS" if all(results) else "some FAIL")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
