"""Benchmark the task import: a million JSON Lines rows into a fresh project, then again.

Run with `.venv/bin/python bench/import.py [--rows N] [--on-error abort|skip]`. Generates an
image dataset to a temporary file, imports it with ``tasks_import`` into a project of a fresh
PostgreSQL database (``assay_bench``, dropped at the end), and prints rows per second, total
seconds against the 60 s target, and the peak resident memory, which must not grow with the
file. The second import of the same file must create nothing. Then raises the project's overlap
to 2 and times the job that gives every task its new seat. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _setup

TARGET_SECONDS = 60.0  # for a million rows
# Peak memory must stay bounded whatever the file size: a few batches, never the whole file.
TARGET_RSS_MB = 512.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--on-error", choices=["abort", "skip"], default="abort")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="assay-import-") as tmp:
        path = Path(tmp) / "tasks.jsonl"
        started = time.perf_counter()
        size = _setup.write_image_rows(path, args.rows)
        print(
            f"generated {args.rows:,} rows ({size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        with _setup.django_database():
            return run(path, args.rows, args.on_error)


def run(path: Path, rows: int, on_error: str) -> int:
    from django.db import connection

    organization, manager = _setup.organization_seed("import-bench")
    project = _setup.project_seed(organization, manager, name="Street scenes")
    rss_before = _setup.peak_rss_mb()

    printed = set()

    def progress(done: int) -> None:
        # The service reports after every batch and once more at the end.
        if done % 200_000 == 0 and done not in printed:
            printed.add(done)
            print(f"  {done:>9,} rows  {time.perf_counter() - started:6.1f} s", flush=True)

    print(f"import ({on_error}, batches of 5,000):", flush=True)
    started = time.perf_counter()
    first = _setup.import_file(project, path, on_error=on_error, progress=progress)
    first_seconds = time.perf_counter() - started
    rss_first = _setup.peak_rss_mb()

    started = time.perf_counter()
    again = _setup.import_file(project, path, on_error=on_error)
    again_seconds = time.perf_counter() - started
    rss_again = _setup.peak_rss_mb()

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tasks_task WHERE project_id = %s", [project.pk])
        tasks = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM tasks_slot WHERE project_id = %s AND state = 'open'",
            [project.pk],
        )
        slots = cursor.fetchone()[0]

    print()
    print(f"{'run':<10}{'rows':>11}{'created':>11}{'existing':>11}{'invalid':>9}"
          f"{'seconds':>9}{'rows/s':>10}{'peak RSS MB':>13}")  # fmt: skip
    for name, report, seconds, rss in (
        ("first", first, first_seconds, rss_first),
        ("re-import", again, again_seconds, rss_again),
    ):
        print(
            f"{name:<10}{report.rows:>11,}{report.created:>11,}{report.existing:>11,}"
            f"{report.invalid:>9,}{seconds:>9.1f}{report.rows / seconds:>10,.0f}{rss:>13.0f}"
        )
    print(f"peak RSS before importing: {rss_before:.0f} MB; tasks {tasks:,}, open slots {slots:,}")

    # Raising the overlap afterwards: the job adds a second seat to every task.
    from tasks.models import Slot
    from tasks.services.projects import project_seats_add

    type(project).objects.filter(pk=project.pk).update(overlap=2)
    started = time.perf_counter()
    seats_added = project_seats_add(project=project)
    seats_seconds = time.perf_counter() - started
    seats_total = Slot.objects.filter(project=project).count()
    print(f"overlap raised to 2: {seats_added:,} seats added in {seats_seconds:.1f} s "
          f"({seats_added / seats_seconds:,.0f} seats/s)")  # fmt: skip
    print()

    scaled = first_seconds * 1_000_000 / rows
    checks = [
        (
            f"1,000,000 rows in <= {TARGET_SECONDS:.0f} s"
            + ("" if rows == 1_000_000 else f" (scaled from {rows:,}: {scaled:.1f} s)"),
            scaled <= TARGET_SECONDS,
            f"{first_seconds:.1f} s",
        ),
        (
            f"peak RSS <= {TARGET_RSS_MB:.0f} MB",
            rss_again <= TARGET_RSS_MB,
            f"{rss_again:.0f} MB (+{rss_again - rss_before:.0f} MB while importing)",
        ),
        (
            "re-import creates nothing",
            again.created == 0 and again.existing == rows,
            f"created {again.created:,}, existing {again.existing:,}",
        ),
        ("every row imported once", tasks == rows == slots, f"{tasks:,} tasks, {slots:,} slots"),
        (
            "raising the overlap gives every task its second seat",
            seats_added == rows and seats_total == 2 * rows,
            f"{seats_added:,} added, {seats_total:,} seats",
        ),
    ]
    for label, ok, figure in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {figure}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
