"""Benchmark the check that a label schema change orphans no stored work, and an export's check.

Run with `.venv/bin/python bench/label_use.py [--rows N]`. Imports N image tasks (default
1,000,000) into a bbox project of a fresh PostgreSQL database (``assay_bench_labels``, dropped at
the end), gives every task one submitted annotation of five boxes and every twentieth a gold
answer, then times, through the real services:

- a schema change that removes no label (no query at all);
- removing a label nothing uses (accepted: the worst case, every payload is read);
- removing a label in use (refused with a 409);
- ``export_check``, which every export runs before its first byte.

Prints the median and the slowest of a few runs each, and the query's plan. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _setup

DB_NAME = "assay_bench_labels"
RUNS = 3
# A manager waits for the answer; a schema change is rare, but should not outlast a web request.
TARGET_SECONDS = 10.0
# car, person, bicycle: the payloads below use the first two.
SCHEMA = _setup.BBOX_SCHEMA
BOXES = {
    "boxes": [
        {"label": label, "x": 10 + 40 * i, "y": 20, "w": 30, "h": 50}
        for i, label in enumerate(["car", "person", "car", "person", "car"])
    ]
}

GOLD = """
UPDATE tasks_task SET is_gold = true, gold_answer = %(payload)s::jsonb
WHERE project_id = %(project)s AND id %% 20 = 0
"""


def timed(call) -> tuple[float, float, object]:
    """Run ``call`` RUNS times; return (median seconds, slowest seconds, its last outcome)."""
    seconds, outcome = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        try:
            outcome = call()
        except Exception as exc:  # the refusals are outcomes here
            outcome = exc
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), max(seconds), outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assay-labels-") as tmp:
        path = Path(tmp) / "tasks.jsonl"
        _setup.write_image_rows(path, args.rows)
        with _setup.django_database(DB_NAME):
            return run(path, args.rows)


def run(path: Path, rows: int) -> int:
    from django.db import connection, transaction

    from config.errors import Conflict
    from tasks.exports import export_check
    from tasks.models import Project
    from tasks.selectors import _NAMES_OUTSIDE_SQL
    from tasks.services.projects import project_update

    organization, manager = _setup.organization_seed("labels-bench")
    project = _setup.project_seed(organization, manager, name="Street scenes")
    started = time.perf_counter()
    _setup.import_file(project, path, on_error="skip")
    annotator = _setup.annotators_seed(organization, project, prefix="annotator", count=1)[0]
    with connection.cursor() as cursor:
        params = {"project": project.pk, "annotator": annotator.pk, "payload": json.dumps(BOXES)}
        _setup.annotate_all(cursor, project, annotator, BOXES)
        cursor.execute(GOLD, params)
        cursor.execute("VACUUM (ANALYZE)")
    print(f"seeded {rows:,} annotated tasks in {time.perf_counter() - started:.1f} s", flush=True)

    def change(schema: dict):
        def call():
            # Rolled back whatever happens, so that every run starts from the same schema.
            with transaction.atomic():
                fresh = Project.objects.get(pk=project.pk)
                project_update(project=fresh, actor=manager.user, label_schema=schema)
                transaction.set_rollback(True)
            return "accepted"

        return call

    cases = [
        ("no label removed", change({"labels": [*SCHEMA["labels"], {"name": "truck"}]})),
        ("unused label removed", change({"labels": SCHEMA["labels"][:2]})),
        ("used label removed", change({"labels": SCHEMA["labels"][1:]})),
        ("export_check", lambda: export_check(Project.objects.get(pk=project.pk)) or "passed"),
    ]
    print()
    print(f"{'case':<24}{'median s':>10}{'slowest s':>11}  outcome")
    checks = []
    for name, call in cases:
        median, slowest, outcome = timed(call)
        shown = f"{type(outcome).__name__} {outcome}" if isinstance(outcome, Conflict) else outcome
        print(f"{name:<24}{median:>10.3f}{slowest:>11.3f}  {str(shown)[:70]}", flush=True)
        expected = Conflict if name == "used label removed" else str
        checks.append(
            (
                f"{name}: {'refused' if expected is Conflict else 'accepted'} "
                f"within {TARGET_SECONDS:.0f} s",
                isinstance(outcome, expected) and slowest <= TARGET_SECONDS,
                f"{slowest:.2f} s",
            )
        )

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + _NAMES_OUTSIDE_SQL,
            {
                "project": project.pk,
                "gold": True,
                "lists": ["labels"],
                "paths": ["$.boxes[*].label"],
                "allowed": [json.dumps(["car", "person"])],
            },
        )
        print()
        print("\n".join(row[0] for row in cursor.fetchall()))
    print()
    for label, ok, figure in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {figure}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
