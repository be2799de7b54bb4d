"""Benchmark the task import: a million JSON Lines rows into a fresh project, then again.

Run with `.venv/bin/python bench/import.py [--rows N] [--on-error abort|skip] [--http]`. Generates an
image dataset to a temporary file, imports it with ``tasks_import`` into a project of a fresh
PostgreSQL database (``assay_bench``, dropped at the end), and prints rows per second, total
seconds against the 60 s target, and the peak resident memory, which must not grow with the
file. The second import of the same file must create nothing. Then raises the project's overlap
to 2 and times the job that gives every task its new seat. Not part of the test suite.

``--http`` instead measures the import as a manager runs it, deployed as README says: the web
server (``config/web.py``) and a Celery worker on Redis (``REDIS_URL``, default db 12 of the
local Redis; ``BENCH_REDIS_URL`` names another). The file is uploaded to the API, and the import polled
until it is ``done``; it prints the upload's seconds (the answer comes once every row is
checked; an all-or-nothing import's job is writing them meanwhile), the seconds from the answer
to ``done``, their total against 25 s for a million rows, the CPU of each in the processes
serving it (``web pool``: the processes checking the upload), and the peak resident memory
of each server process (the web server's workers, the Celery worker and any process they start).

``--nesting 10000,40000,100000`` instead times reading a JSON array, a JSON Lines file and a CSV
``data`` cell whose one row nests that deep, each in a fresh process (its peak RSS is the
reader's), capped at 8 GB of address space and 120 s. No database is needed.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _setup

TARGET_SECONDS = 60.0  # for a million rows, in-process
# Upload to done over HTTP, for a million rows: 16 times Label Studio's 2,450 rows/s here.
HTTP_TARGET_SECONDS = 25.0
# Peak memory must stay bounded whatever the file size: a few batches, never the whole file.
TARGET_RSS_MB = 512.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--on-error", choices=["abort", "skip"], default="abort")
    parser.add_argument("--http", action="store_true", help="upload to the web server and a worker")
    parser.add_argument("--nesting", help="comma-separated depths: time deep rows instead")
    parser.add_argument("--nesting-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nesting_child:
        return nesting_child(int(args.nesting_child[0]), args.nesting_child[1])
    if args.nesting:
        return nesting([int(depth) for depth in args.nesting.split(",")])

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
            if args.http:
                return run_http(path, args.rows, args.on_error, Path(tmp))
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


def run_http(path: Path, rows: int, on_error: str, tmp: Path) -> int:
    """Upload the file to the web server, let a Celery worker import it, poll until it is done."""
    import json

    organization, manager = _setup.organization_seed("import-bench")
    project = _setup.project_seed(organization, manager, name="Street scenes")
    broker = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    servers = {"REDIS_URL": broker}
    with (
        _setup.web(tmp / "web.log", env=servers) as port,
        _setup.celery_worker(tmp / "celery.log", env=servers) as worker,
    ):
        token = _setup.login(port, manager.user.username)
        headers = {"Authorization": f"Token {token}"}
        web = [pid for pid in _setup.children(os.getpid()) if pid != worker.pid]
        groups = {worker.pid: "worker", **{pid: "web" for pid in web}}
        watch = _setup.ServerWatch(os.getpid(), _setup.DB_NAME, groups)
        started = time.perf_counter()
        status, answer = _setup.upload(
            port,
            f"/api/v1/projects/{project.pk}/tasks/import",
            path,
            fields={"on_error": on_error},
            headers=headers,
        )
        uploaded = time.perf_counter()
        upload_cpu = watch.cpu()
        if status != 202:
            print(f"upload answered {status}: {answer[:500]!r}")
            return 1
        location = json.loads(answer)["id"]
        job: dict = {}
        while time.perf_counter() - started < 600:
            job = _setup.api_get(port, f"/api/v1/projects/{project.pk}/imports/{location}", headers)
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        finished = time.perf_counter()
        watch.stop()

    upload_seconds, job_seconds = uploaded - started, finished - uploaded
    total = finished - started
    report = job.get("report") or {}
    print()
    print(f"{'rows':>11}{'upload s':>10}{'job s':>8}{'total s':>9}{'rows/s':>10}  status")
    print(
        f"{rows:>11,}{upload_seconds:>10.1f}{job_seconds:>8.1f}{total:>9.1f}"
        f"{rows / total:>10,.0f}  {job.get('status')} {job.get('error', '')[:200]}"
    )
    job_cpu = watch.cpu()
    groups = sorted(job_cpu)
    print(f"CPU seconds{'':<10}" + "".join(f"{group:>10}" for group in groups))
    for name, cpu in (
        ("upload", upload_cpu),
        ("job", {g: job_cpu[g] - upload_cpu.get(g, 0.0) for g in groups}),
    ):
        print(f"  {name:<19}" + "".join(f"{cpu.get(group, 0.0):>10.1f}" for group in groups))
    # On idle cores the import takes at least its longest serial part, the job's one database
    # backend (an all-or-nothing upload's check runs beside it), and at least all the CPU it
    # used shared over the cores.
    used, cores = sum(job_cpu.values()), os.cpu_count() or 1
    idle = max(job_cpu.get("database", 0.0), used / cores)
    print(f"CPU-bound estimate on {cores} idle cores: {idle:.1f} s (the database's "
          f"{job_cpu.get('database', 0.0):.1f} s, or {used:.1f} CPU-seconds over the cores)")  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("peak RSS of the server processes (MB):")
    for name, rss in watch.peaks():
        print(f"  {rss:>7.0f}  {name}")
    scaled = total * 1_000_000 / rows
    checks = [
        (
            f"1,000,000 rows over HTTP in <= {HTTP_TARGET_SECONDS:.0f} s"
            + ("" if rows == 1_000_000 else f" (scaled from {rows:,}: {scaled:.1f} s)"),
            job.get("status") == "done" and scaled <= HTTP_TARGET_SECONDS,
            f"{total:.1f} s",
        ),
        (
            f"peak RSS of each server process <= {TARGET_RSS_MB:.0f} MB",
            max(rss for _, rss in watch.peaks()) <= TARGET_RSS_MB,
            f"{max(rss for _, rss in watch.peaks()):.0f} MB",
        ),
        (
            "every row imported once",
            report.get("created") == rows,
            f"created {report.get('created')}, invalid {report.get('invalid')}",
        ),
    ]
    for label, ok, figure in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {figure}")
    return 0 if all(ok for _, ok, _ in checks) else 1


NESTING_RSS_CAP = 8 * 2**30
NESTING_SECONDS = 120


def nesting(depths: list[int]) -> int:
    print(f"{'format':<8}{'depth':>9}{'seconds':>9}{'peak RSS MB':>13}  outcome")
    env = {**os.environ, **_setup.django_environment()}
    for depth in depths:
        for fmt in ("json", "jsonl", "csv"):
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--nesting-child", str(depth), fmt],
                    env=env, capture_output=True, text=True, timeout=NESTING_SECONDS,
                )  # fmt: skip
                line = done.stdout.strip() or f"{fmt:<8}{depth:>9,}  crashed: {done.stderr[-200:]}"
            except subprocess.TimeoutExpired:
                line = f"{fmt:<8}{depth:>9,}{'>' + str(NESTING_SECONDS):>9}  timed out"
            print(line, flush=True)
    return 0


def nesting_child(depth: int, fmt: str) -> int:
    """Read one file whose first row nests ``depth`` deep and a valid row after it."""
    resource.setrlimit(resource.RLIMIT_AS, (NESTING_RSS_CAP, NESTING_RSS_CAP))
    import django

    django.setup()
    from tasks.kinds import get_kind
    from tasks.task_files import read_rows

    deep = b"[" * depth + b"]" * depth
    valid = b'{"external_id": "ok", "data": {"width": 5, "height": 5}}'
    body = {
        "json": b"[" + deep + b"," + valid + b"]",
        "jsonl": deep + b"\n" + valid + b"\n",
        "csv": b'external_id,data\ndeep,"' + deep + b'"\nok,"{""width"": 5, ""height"": 5}"\n',
    }[fmt]
    started = time.perf_counter()
    try:
        rows = list(read_rows(io.BytesIO(body), fmt, kind=get_kind("bbox"), schema={}))
        outcome = "; ".join(
            "ok" if not isinstance(row, list) else f"row {row[0].row}: {row[0].message}"
            for row in rows
        )
    except BaseException as exc:  # what the reader let escape is the figure
        outcome = f"raised {type(exc).__name__}"
    seconds = time.perf_counter() - started
    print(f"{fmt:<8}{depth:>9,}{seconds:>9.2f}{_setup.peak_rss_mb():>13.0f}  {outcome[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
