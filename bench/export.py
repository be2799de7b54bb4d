"""Benchmark the export of a large annotated project in each of its formats.

Run with `.venv/bin/python bench/export.py [--rows N]`. Imports N image tasks (default 1,000,000)
into a bbox project of a fresh PostgreSQL database (``assay_bench``, dropped at the end), gives
every task one submitted annotation, then exports the project in each format the kind offers
(COCO and JSON Lines):

- in this process through ``export_project``, as the export command does, measuring how far the
  resident memory rises, which must not grow with the project;
- over HTTP from ``GET /api/v1/projects/{id}/export`` on the web server as the README deploys
  it (``config/web.py``), as a manager downloads it; the body must be the same bytes, and the
  web server's processes must not hold it (their peak resident memory).

Prints, per format and way, the time to the first byte, the total time, rows and megabytes per
second. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import _setup

# An export streams: its memory must not grow with the project.
TARGET_RSS_GROWTH_MB = 200.0
# A download this long would tie up one of the web server's threads for as long.
TARGET_HTTP_SECONDS = 300.0
BOX = {"boxes": [{"label": "car", "x": 10, "y": 20, "w": 100, "h": 50}]}


def rss_mb() -> float:
    """The resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class RssSampler:
    """Samples the resident set size every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assay-export-") as tmp:
        path = Path(tmp) / "tasks.jsonl"
        _setup.write_image_rows(path, args.rows)
        with _setup.django_database(), _setup.web(Path(tmp) / "web.log") as port:
            return run(path, args.rows, port)


def download(port: int, url: str, headers: dict) -> tuple[int, float, float]:
    """GET ``url`` and read the body; return (bytes, seconds to the first byte, seconds)."""
    conn = http.client.HTTPConnection(_setup.HOST, port, timeout=TARGET_HTTP_SECONDS)
    started = time.perf_counter()
    try:
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}: {response.read()[:300]}")
        size = len(response.read(1))
        first = time.perf_counter() - started
        while block := response.read(1 << 16):
            size += len(block)
        return size, first, time.perf_counter() - started
    finally:
        conn.close()


def web_peak_mb(watch: _setup.ServerWatch) -> float:
    """The highest peak resident memory of the web server's processes so far, in MB."""
    return max((rss for _, rss in watch.peaks()), default=0.0)


def run(path: Path, rows: int, port: int) -> int:
    from django.db import connection

    from tasks.exports import export_formats, export_project

    organization, manager = _setup.organization_seed("export-bench")
    project = _setup.project_seed(organization, manager, name="Street scenes")
    started = time.perf_counter()
    _setup.import_file(project, path, on_error="skip")
    annotator = _setup.annotators_seed(organization, project, prefix="annotator", count=1)[0]
    with connection.cursor() as cursor:
        _setup.annotate_all(cursor, project, annotator, BOX)
        cursor.execute("VACUUM (ANALYZE)")
    print(f"seeded {rows:,} annotated tasks in {time.perf_counter() - started:.1f} s", flush=True)

    headers = {
        "Authorization": f"Token {_setup.login(port, manager.user.username)}",
        "X-Organization": organization.slug,
    }

    # The web server is this process's child; its processes' peak memory is watched.
    watch = _setup.ServerWatch(
        os.getpid(), _setup.DB_NAME, {pid: "web" for pid in _setup.children(os.getpid())}
    )
    web_before = web_peak_mb(watch)
    print()
    print(f"{'format':<8}{'way':<14}{'first byte s':>13}{'seconds':>9}{'rows/s':>10}{'MB':>8}"
          f"{'MB/s':>7}{'RSS growth MB':>15}")  # fmt: skip
    checks = []
    for fmt in export_formats(project):
        before = rss_mb()
        size, first = 0, None
        started = time.perf_counter()
        with RssSampler() as sampler:
            chunks, _, _ = export_project(project, fmt)
            for chunk in chunks:
                if first is None:
                    first = time.perf_counter() - started
                size += len(chunk.encode())
        seconds = time.perf_counter() - started
        growth = sampler.peak - before
        print(f"{fmt:<8}{'in process':<14}{first:>13.2f}{seconds:>9.1f}{rows / seconds:>10,.0f}"
              f"{size / 1e6:>8.0f}{size / 1e6 / seconds:>7.1f}{growth:>15.0f}",
              flush=True)  # fmt: skip
        url = f"/api/v1/projects/{project.pk}/export?format={fmt}"
        body, first, seconds = download(port, url, headers)
        web_growth = web_peak_mb(watch) - web_before
        print(f"{fmt:<8}{'HTTP':<14}{first:>13.2f}{seconds:>9.1f}{rows / seconds:>10,.0f}"
              f"{body / 1e6:>8.0f}{body / 1e6 / seconds:>7.1f}{web_growth:>15.0f}",
              flush=True)  # fmt: skip
        checks += [
            (
                f"{fmt}: memory does not grow with the project (<= {TARGET_RSS_GROWTH_MB:.0f} MB)",
                growth <= TARGET_RSS_GROWTH_MB,
                f"+{growth:.0f} MB for {size / 1e6:.0f} MB exported",
            ),
            (
                f"{fmt} over HTTP within {TARGET_HTTP_SECONDS:.0f} s, the same bytes",
                seconds <= TARGET_HTTP_SECONDS and body == size,
                f"{seconds:.1f} s, {body:,} bytes (in process {size:,})",
            ),
            (
                f"{fmt} over HTTP: the web server's memory does not grow with the project "
                f"(<= {TARGET_RSS_GROWTH_MB:.0f} MB)",
                web_growth <= TARGET_RSS_GROWTH_MB,
                f"+{web_growth:.0f} MB at the peak of its processes",
            ),
        ]
    watch.stop()
    print()
    for label, ok, figure in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {figure}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
