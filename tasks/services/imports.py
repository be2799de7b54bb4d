"""Importing tasks in bulk: streamed, validated row by row, idempotent by external id.

What a file may hold, and how a bad row is reported, is ``tasks.task_files``'s to say.

An uploaded file is read once. The request checks every row (on every core, for JSON Lines) and
keeps the checked lines (``task_files.check_rows``), which say what the database needs of each
valid row and what is wrong with each invalid one; the job imports those without parsing or
validating again: an all-or-nothing file must be checked before the answer anyway (a bad one is
refused with its rows), and checking it a second time cost a million rows 10 s more (bench/import.py).
What the check depended on, the project's kind and label schema, is written at the top of the
checked file: a job that finds either changed since fails, saying so, rather than import rows
checked against a schema the project no longer has.

``abort`` (all or nothing) writes the whole file in one transaction: an invalid row, an error
of the database or a worker killed halfway leave nothing behind. So its job need not wait for
the check: with a worker to run it (and ``settings.IMPORT_STREAMED``), it is queued before the
check starts and writes the checked rows as the request writes them (``streamed``); the request
ends the checked file with a line saying whether every row passed, and a refused file's job
rolls back. bench/import.py, a million rows over HTTP on two cores: 34.5-35.3 s so, against
39.3-42.5 s for the job started once the check was done, in runs alternating with them.
``skip`` commits batch by batch, so a long import never holds one transaction open on the task
tables, and a file refused after some batches committed would leave them: its job starts once
the check is done. A run that stopped halfway is resumed by running it again, since rows whose
external id exists are left alone.

A running import has a heartbeat (``heartbeat_at``, kept fresh from a thread with a database
connection of its own, which also holds the import's run lock). The beat job
``tasks.recover_imports`` queues again an import whose heartbeat stopped (its worker was killed,
say, and the broker will not give the message back for an hour), at most
``MAX_IMPORT_ATTEMPTS`` runs in all; then it fails, saying why.
"""

import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import BinaryIO

from celery import Task
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest, Now
from django.utils import timezone

from config.errors import Conflict, ErrorCode, ValidationFailed
from tasks import events
from tasks.kinds import get_kind
from tasks.locks import lock_import, lock_import_run, lock_project_overlap
from tasks.models import ImportStatus, Project, ProjectStatus, TaskImport
from tasks.task_files import (
    FORMATS,
    Row,
    RowError,
    check_rows,
    file_problem,
    read_ahead,
    read_checked,
    read_rows,
    row_bytes,
)
from workforce.models import AuditVerb
from workforce.queue import enqueue
from workforce.services import audit_record

logger = logging.getLogger(__name__)

BATCH_SIZE = 5_000
# A batch also ends at this many bytes of JSON, so that a file of large rows (up to 32 MB each)
# holds a few batches' worth in memory, not thousands of rows.
BATCH_BYTES = 16 * 2**20
# Batches of an all-or-nothing import sent and not yet answered (``_InsertsInFlight``).
IN_FLIGHT = 2
# Errors listed in a report; the count covers them all.
MAX_REPORTED_ERRORS = 1_000
# A running import's heartbeat is written at least this often (and after every batch)...
HEARTBEAT_EVERY = timedelta(seconds=5)
# ...so one this old means its worker is gone: far longer than any pause of a live worker
# (a batch takes well under a second), short enough that a killed import resumes within minutes.
IMPORT_STALLED_AFTER = timedelta(seconds=90)
# Runs an import may start, counting deliveries after a worker died: a file that kills its
# worker each time (out of memory, say) fails after this many instead of looping forever.
MAX_IMPORT_ATTEMPTS = 3
# How long a delivery waits for the run lock of its import. A run killed a moment ago holds it
# until PostgreSQL notices its connection closed (milliseconds, mostly); a live run holds it to
# the end, and the delivery then returns.
RUN_LOCK_WAIT = timedelta(seconds=10)
# Stalled imports handled by one run of the recovery job.
RECOVER_BATCH_SIZE = 100
# Processes that check a large JSON Lines file: one per core this process may use. An upload
# is a manager's rare, large request; while it is checked, other requests share the cores.
IMPORT_PROCESSES = len(os.sched_getaffinity(0))
# The suffix of a kept, checked file; a file kept before checks were stored has its format's.
CHECKED_SUFFIX = ".checked"
# The last line of a streamed checked file: every row passed, or the file is refused.
CHECK_PASSED, CHECK_REFUSED = "passed\n", "refused\n"
# A streamed import's job reads what the check has written this often...
CHECK_POLL_SECONDS = 0.02
# ...and fails when the file has not grown for this long: the request checking it is gone (its
# process was killed). A live check writes a batch every fraction of a second.
CHECK_STALLED_AFTER = timedelta(seconds=60)


class OnError:
    ABORT = "abort"  # all or nothing: any invalid row and nothing is imported
    SKIP = "skip"  # import the valid rows, report the others


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    existing: int = 0
    invalid: int = 0
    imported: bool = True
    errors: list[RowError] = field(default_factory=list)

    def add_errors(self, errors: list[RowError]) -> None:
        self.invalid += 1
        room = MAX_REPORTED_ERRORS - len(self.errors)
        self.errors.extend(errors[: max(room, 0)])

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "created": self.created,
            "existing": self.existing,
            "invalid": self.invalid,
            "imported": self.imported,
            "errors": [e.as_dict() for e in self.errors],
        }


_INSERT = """
WITH rows AS (
    SELECT * FROM unnest(%(ext)b::text[], %(data)b::text[], %(prio)b::int[], %(gold)b::text[])
        AS r(external_id, data, priority, gold_answer)
), inserted AS (
    INSERT INTO tasks_task
        (project_id, external_id, data, priority, is_gold, gold_answer, gold_version, created_at)
    SELECT %(project)s, external_id, data::jsonb, priority, gold_answer IS NOT NULL,
           gold_answer::jsonb, CASE WHEN gold_answer IS NULL THEN 0 ELSE 1 END, %(now)s
    FROM rows
    ON CONFLICT ON CONSTRAINT task_external_id DO NOTHING
    RETURNING id, priority, is_gold
), slots AS (
    -- Gold tasks have no seats: the claim serves them apart.
    INSERT INTO tasks_slot (task_id, project_id, seat, state, task_priority)
    SELECT inserted.id, %(project)s, seat, CASE WHEN seat = 0 THEN 'open' ELSE 'waiting' END,
           inserted.priority
    FROM inserted CROSS JOIN generate_series(0, %(overlap)s - 1) AS seat
    WHERE NOT inserted.is_gold
)
SELECT count(*) FROM inserted
"""


def _insert(project: Project, overlap: int, rows: list[Row]) -> int:
    """Insert a batch and its slots in one statement; existing external ids are left alone."""
    with _insert_send(project, overlap, rows) as cursor:
        return cursor.fetchone()[0]


def _insert_send(project: Project, overlap: int, rows: list[Row]):
    """Send a batch's insert; return its cursor, whose one row is the count of tasks created."""
    cursor = connection.cursor()
    cursor.execute(
        _INSERT,
        {
            "ext": [r.external_id for r in rows],
            "data": [r.data_json for r in rows],
            "prio": [r.priority for r in rows],
            "gold": [r.gold_json for r in rows],
            "project": project.pk,
            "overlap": overlap,
            "now": timezone.now(),
        },
    )
    return cursor


class _InsertsInFlight:
    """An all-or-nothing import's batches, each sent before the ones before it are answered.

    Used inside psycopg's pipeline mode: the database inserts one batch while the worker reads
    the next and sends it. Waiting for each answer left the database idle while the worker's
    thread that reads ahead held the interpreter (bench/import.py, a million rows over HTTP:
    the job took 21.3-22.0 s that way, 20.1-20.5 s this way). A batch the database refuses
    raises when its answer is read, in ``add`` or ``finish``, and the import's transaction is
    rolled back with everything sent. Two batches are kept in flight: the job took 0.6-3.0 s
    less than with one in three pairs of alternating runs.
    """

    def __init__(self, project: Project, overlap: int, depth: int = IN_FLIGHT):
        self._project, self._overlap, self._depth = project, overlap, depth
        self._sent: deque = deque()

    def add(self, rows: list[Row]) -> int:
        """Send a batch; return the tasks created by the batches whose answers it waited for."""
        self._sent.append(_insert_send(self._project, self._overlap, rows))
        created = 0
        while len(self._sent) > self._depth:
            created += self._answer()
        return created

    def finish(self) -> int:
        """The tasks the batches still waiting created (0 when none is)."""
        created = 0
        while self._sent:
            created += self._answer()
        return created

    def _answer(self) -> int:
        with self._sent.popleft() as cursor:
            return cursor.fetchone()[0]


def _write(project: Project, rows: list[Row]) -> int:
    # In skip mode each batch commits on its own: a long transaction on the task tables would
    # hold back vacuum and slow every claim. A re-run resumes where a failed import stopped.
    with transaction.atomic():
        # The overlap as it is now, held while the batch is written: a raise of the overlap waits
        # for the batch, and the seats it adds then reach these tasks too.
        overlap = lock_project_overlap(project.pk)
        return _insert(project, overlap, rows)


def _check_mode(fmt: str, on_error: str) -> None:
    if fmt not in FORMATS:
        raise ValidationFailed("Unknown format.", fields={"format": [f"One of {FORMATS}."]})
    if on_error not in (OnError.ABORT, OnError.SKIP):
        raise ValidationFailed("Unknown mode.", fields={"on_error": ["One of abort, skip."]})


def _checked_upload(
    project: Project, upload: BinaryIO, fmt: str
) -> tuple[TemporaryUploadedFile, ImportReport]:
    """Check every row of an upload once; return the checked file the job imports, and the
    report of the check (``imported`` false when any row is invalid)."""
    checked = TemporaryUploadedFile(f"tasks{CHECKED_SUFFIX}", "text/plain", 0, "utf-8")
    try:
        checked.write(_checked_header(project))
        report = _check_into(checked, project, upload, fmt)
        checked.size = checked.tell()
        checked.seek(0)
    except BaseException:
        checked.close()
        raise
    return checked, report


def _check_into(out: BinaryIO, project: Project, upload: BinaryIO, fmt: str) -> ImportReport:
    """Check every row of an upload, writing the checked lines to ``out`` a batch at a time;
    return the report (``imported`` false when any row is invalid)."""
    report = ImportReport()
    lines = check_rows(
        upload,
        fmt,
        kind=get_kind(project.kind),
        schema=project.label_schema,
        processes=IMPORT_PROCESSES,
    )
    batch: list[str] = []
    held = 0
    for line, errors in lines:
        report.rows += 1
        if errors is not None:
            report.add_errors(errors)
        batch.append(line)
        held += len(line)
        # One write a batch (a million calls cost seconds), and a batch at most held: a file of
        # rows of megabytes is neither kept whole in memory nor silent for long.
        if len(batch) >= BATCH_SIZE or held >= BATCH_BYTES:
            out.write("".join(batch).encode())
            out.flush()  # a streamed import's job reads it as it comes
            batch, held = [], 0
    out.write("".join(batch).encode())
    report.imported = not report.invalid
    return report


def _checked_header(project: Project) -> bytes:
    """The first line of a checked file: what its rows were checked against."""
    schema = json.dumps(project.label_schema, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(schema.encode()).hexdigest()
    return f"{project.kind} {digest}\n".encode()


def _checked_rows(
    project: Project, lines: Iterator[str]
) -> Generator[Row | list[RowError], None, None]:
    """The rows of a checked file's lines, if the project's kind and schema are still those it
    was checked against."""
    if next(lines, "").encode() != _checked_header(project):
        raise Conflict(
            "The project's kind or label schema changed after the file was uploaded, and its "
            "rows were checked against the old one; nothing was imported. Upload it again."
        )
    yield from read_checked(lines)


class _CheckRefused(Exception):
    """The upload a streamed import's job was reading failed its check: nothing is imported,
    and the request that checked it deletes the import."""


class _CheckStalled(Exception):
    """A streamed import's check stopped writing before its end."""


def _lines_as_checked(stream: BinaryIO) -> Iterator[str]:
    """The lines of a checked file the upload's check is still writing, each once it is whole,
    up to the line that says how the check ended."""
    parts: list[bytes] = []  # the start of a line not whole yet
    waiting_since = None
    while True:
        chunk = stream.read(2**20)
        if not chunk:
            if waiting_since is None:
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since > CHECK_STALLED_AFTER.total_seconds():
                raise _CheckStalled(
                    f"The upload's check wrote nothing for {CHECK_STALLED_AFTER.total_seconds():.0f}"
                    " s before its end (the request checking it was stopped); nothing was "
                    "imported. Upload the file again."
                )
            time.sleep(CHECK_POLL_SECONDS)
            continue
        waiting_since = None
        end = chunk.rfind(b"\n") + 1
        if not end:
            parts.append(chunk)
            continue
        whole, parts = b"".join([*parts, chunk[:end]]), [chunk[end:]]
        for line in io.StringIO(whole.decode(), newline="\n"):
            if line == CHECK_PASSED:
                return
            if line == CHECK_REFUSED:
                raise _CheckRefused
            yield line


def tasks_import(
    *,
    project: Project,
    open_stream: Callable[[], BinaryIO],
    fmt: str,
    on_error: str = OnError.ABORT,
    actor: AbstractBaseUser | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import tasks from a file in ``fmt`` (json, jsonl or csv), streamed in batches.

    ``open_stream`` returns the file from its start; it is read once. With ``on_error="abort"``
    every row is written in one transaction, rolled back if any row is invalid (the report then
    lists them, with ``imported`` false) or anything fails; with ``skip`` each batch commits.
    Rows whose external id the project already has are counted as existing and left unchanged.
    ``progress`` is called with the rows read so far after every batch.
    """
    _check_mode(fmt, on_error)
    kind = get_kind(project.kind)
    rows = read_rows(
        open_stream(), fmt, kind=kind, schema=project.label_schema, processes=IMPORT_PROCESSES
    )
    return _import(project, rows, on_error, actor, batch_size, progress)


def _import(
    project: Project,
    rows: Iterator[Row | list[RowError]],
    on_error: str,
    actor: AbstractBaseUser | None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    # Closed at once when a write fails, so that the thread reading ahead stops with it.
    with closing(
        read_ahead(rows, chunk=batch_size, weight=row_bytes, max_weight=BATCH_BYTES)
    ) as ahead:
        if on_error == OnError.ABORT:
            return _import_all_or_nothing(project, ahead, batch_size, progress, actor)
        return _import_valid_rows(project, ahead, batch_size, progress, actor)


class _RolledBack(Exception):
    """Ends an all-or-nothing import's transaction when a row is invalid."""


def _import_all_or_nothing(
    project: Project,
    rows: Generator[Row | list[RowError], None, None],
    batch_size: int,
    progress: Callable[[int], None] | None,
    actor: AbstractBaseUser | None,
) -> ImportReport:
    report = ImportReport()
    try:
        # One transaction for the file: a later batch's failure (or a killed worker) must not
        # leave the earlier ones. It holds the project's overlap for its length (claims go on:
        # the lock is FOR NO KEY UPDATE), the project's next import waits for it, and vacuum
        # waits for it; bench/import.py measured a million rows in 29.0 s this way and 33.7 s
        # committing batch by batch.
        with transaction.atomic():
            overlap = lock_project_overlap(project.pk)
            # Django's foreign keys are deferred: checked at commit, 3 a task, queued in the
            # backend's memory until then (a million rows took 35.1 s, 11 of them in the
            # commit). Checked as each batch is written: 29.0 s, and the commit is quick.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            batch: list[Row] = []
            weight = 0
            with connection.connection.pipeline():
                inserts = _InsertsInFlight(project, overlap)
                for row in rows:
                    report.rows += 1
                    if isinstance(row, list):
                        report.add_errors(row)
                        batch, weight = [], 0
                    elif not report.invalid:  # after an invalid row nothing more is written
                        batch.append(row)
                        weight += row_bytes(row)
                        if len(batch) >= batch_size or weight >= BATCH_BYTES:
                            report.created += inserts.add(batch)
                            batch, weight = [], 0
                    if progress and report.rows % batch_size == 0:
                        progress(report.rows)
                if report.invalid:
                    raise _RolledBack
                _refuse_empty(report)
                if batch:
                    report.created += inserts.add(batch)
                report.created += inserts.finish()
            if progress:
                progress(report.rows)
            report.existing = report.rows - report.created
            _audit_imported(project, actor, report)
    except _RolledBack:
        report.created, report.imported = 0, False
    return report


def _import_valid_rows(
    project: Project,
    rows: Generator[Row | list[RowError], None, None],
    batch_size: int,
    progress: Callable[[int], None] | None,
    actor: AbstractBaseUser | None,
) -> ImportReport:
    report = ImportReport()
    batch: list[Row] = []
    weight = 0
    for row in rows:
        report.rows += 1
        if isinstance(row, list):
            report.add_errors(row)
            continue
        batch.append(row)
        weight += row_bytes(row)
        if len(batch) >= batch_size or weight >= BATCH_BYTES:
            report.created += _write(project, batch)
            batch, weight = [], 0
            if progress:
                progress(report.rows)
    if batch:
        report.created += _write(project, batch)
    if progress:
        progress(report.rows)
    report.existing = report.rows - report.invalid - report.created
    _audit_imported(project, actor, report)
    return report


def _audit_imported(project: Project, actor: AbstractBaseUser | None, report: ImportReport) -> None:
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_TASKS_IMPORTED,
        target=project,
        after={k: v for k, v in report.as_dict().items() if k != "errors"},
    )


def task_import_start(
    *,
    project: Project,
    upload: File,
    fmt: str,
    on_error: str = OnError.ABORT,
    actor: AbstractBaseUser | None = None,
) -> tuple[TaskImport | None, ImportReport | None]:
    """Check every row of an uploaded file, keep the checked rows and queue the job that imports
    them; return (job, None). An all-or-nothing import with a worker to run its job is queued
    first, and its job imports the rows as they are checked (``streamed``).

    In all-or-nothing mode a file with an invalid row is refused at once with its report,
    (None, report), and nothing is kept or queued. An empty file, or a JSON file that is not an
    array, is refused in either mode. An archived project takes no new tasks (409).
    """
    if project.status == ProjectStatus.ARCHIVED:
        raise Conflict(
            "The project is archived; unarchive it to import tasks.",
            code=ErrorCode.INVALID_STATUS,
        )
    _check_mode(fmt, on_error)
    upload.seek(0)
    if problem := file_problem(upload, fmt):
        raise ValidationFailed(problem, fields={"file": [problem]})
    # Imported here: the jobs module imports these services.
    from tasks.jobs import run_import

    # Without a worker the job runs within ``enqueue``, so it can only follow the check; and
    # the job can read the check as it goes only where the storage shows it (settings).
    streamed = settings.IMPORT_STREAMED and not run_import.app.conf.task_always_eager
    if on_error == OnError.ABORT and streamed:
        job, report = _start_streamed(project, upload, fmt, actor, run_import)
    else:
        job, report = _start_checked(project, upload, fmt, on_error, actor, run_import)
    if job is None:
        return None, report
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_TASKS_IMPORT_QUEUED,
        target=project,
        after={"import": job.pk, "format": fmt, "on_error": on_error},
    )
    return job, None


def _start_checked(
    project: Project,
    upload: File,
    fmt: str,
    on_error: str,
    actor: AbstractBaseUser | None,
    run_import: Task,
) -> tuple[TaskImport | None, ImportReport]:
    """Check the upload, then queue the job that imports the checked file."""
    checked, report = _checked_upload(project, upload, fmt)
    with checked:
        if on_error == OnError.ABORT:
            _refuse_empty(report)
            if not report.imported:
                return None, report
        job = TaskImport.objects.create(
            project=project, created_by=actor, file=checked, format=fmt, on_error=on_error
        )
    # With the broker down the import stays queued and runs once it is back.
    enqueue(run_import, job.pk)
    return job, report


def _start_streamed(
    project: Project,
    upload: File,
    fmt: str,
    actor: AbstractBaseUser | None,
    run_import: Task,
) -> tuple[TaskImport | None, ImportReport]:
    """Queue the job, then check the upload into the file it reads; delete the import (its job
    rolls back) when the file is refused."""
    job = TaskImport.objects.create(
        project=project,
        created_by=actor,
        file=ContentFile(_checked_header(project), name=f"tasks{CHECKED_SUFFIX}"),
        format=fmt,
        on_error=OnError.ABORT,
        streamed=True,
    )
    enqueue(run_import, job.pk)
    try:
        with job.file.storage.open(job.file.name, "ab") as out:
            try:
                report = _check_into(out, project, upload, fmt)
            except BaseException:
                out.write(CHECK_REFUSED.encode())
                raise
            passed = report.rows and report.imported
            out.write((CHECK_PASSED if passed else CHECK_REFUSED).encode())
        if not passed:
            _refuse_empty(report)
            job.delete()
            return None, report
    except BaseException:
        job.delete()
        raise
    return job, report


def _refuse_empty(report: ImportReport) -> None:
    """An all-or-nothing file of no rows is refused: by the request, or by a job that finds it."""
    if not report.rows:
        raise ValidationFailed("The file has no rows.", fields={"file": ["No rows found."]})


def _end(
    job: TaskImport, status: str, *, error: str = "", report: ImportReport | None = None
) -> None:
    """Record how an import ended and tell whoever watches; its file goes, the report stays.

    Inside a transaction (an all-or-nothing import's), all of it happens when that commits.
    """
    name, storage = job.file.name, job.file.storage
    job.status, job.error, job.file, job.finished_at = status, error[:2000], "", timezone.now()
    fields = ["status", "error", "file", "finished_at"]
    if report is not None:
        job.report = report.as_dict()
        fields.append("report")
    job.save(update_fields=fields)
    if report is not None:
        # Progress never goes backwards, whichever run of the import wrote it last.
        TaskImport.objects.filter(pk=job.pk).update(
            rows_read=Greatest(F("rows_read"), Value(report.rows))
        )
    job.refresh_from_db(fields=["rows_read"])
    if name:
        transaction.on_commit(lambda: storage.delete(name))
    events.publish(events.IMPORT_PROGRESSED, import_id=job.pk)


class _Heartbeat:
    """A running import's heartbeat and progress, written from a thread of its own.

    The thread has its own database connection: an all-or-nothing import writes in one long
    transaction, in which neither would be seen before the end. That connection also holds the
    import's run lock (a session advisory lock), which PostgreSQL lets go when the connection
    closes or its process dies, so another delivery of the job can tell a live run from a dead one.
    """

    def __init__(self, import_id: int):
        self.import_id = import_id
        self.rows = 0
        self._published = 0
        self._locked = False
        self._failure: BaseException | None = None
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"import-{import_id}-heartbeat", daemon=True
        )

    def start(self) -> bool:
        """Take the import's run lock and start beating; False when another run holds it."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            raise self._failure
        if not self._locked:
            self._thread.join()
        return self._locked

    def progress(self, rows: int) -> None:
        self.rows = max(self.rows, rows)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            try:
                wait_ms = int(RUN_LOCK_WAIT.total_seconds() * 1000)
                self._locked = lock_import_run(self.import_id, wait_ms=wait_ms)
            except BaseException as exc:  # handed to start(), which raises it
                self._failure = exc
                return
            finally:
                self._ready.set()
            if not self._locked:
                return
            while not self._stopping.is_set():
                self._wake.wait(HEARTBEAT_EVERY.total_seconds())
                self._wake.clear()
                if not self._stopping.is_set():
                    self._beat()
        finally:
            # Closing the connection lets the run lock go.
            connection.close()

    def _beat(self) -> None:
        try:
            TaskImport.objects.filter(pk=self.import_id, status=ImportStatus.RUNNING).update(
                heartbeat_at=Now(), rows_read=Greatest(F("rows_read"), Value(self.rows))
            )
            if self.rows != self._published:
                self._published = self.rows
                events.publish(events.IMPORT_PROGRESSED, import_id=self.import_id)
        except Exception:
            # A missed beat is retried at the next; the import itself goes on.
            logger.exception("The heartbeat of import %s failed", self.import_id)


def task_import_run(*, import_id: int) -> TaskImport | None:
    """Import the job's file and record the outcome; a finished job is left as it is.

    A delivery while another run of the same import is alive returns at once (the live run holds
    the run lock). A run after one that died resumes it: an all-or-nothing import starts again
    from nothing (the dead run's transaction was rolled back), a skip import writes only the
    rows the dead run did not. Returns None when the import is gone (its project was deleted
    before the job ran).
    """
    heartbeat = _Heartbeat(import_id)
    if not heartbeat.start():
        return TaskImport.objects.filter(pk=import_id).first()
    try:
        job = _import_begin(import_id)
        if job is not None and job.status == ImportStatus.RUNNING:
            _import_execute(job, heartbeat)
        return job
    finally:
        heartbeat.stop()


def _import_begin(import_id: int) -> TaskImport | None:
    """Mark the import running and count the attempt; fail it once it had all its attempts."""
    with transaction.atomic():
        job = lock_import(import_id)
        if job is None or job.status in (ImportStatus.DONE, ImportStatus.FAILED):
            return job
        if job.attempts >= MAX_IMPORT_ATTEMPTS:
            _end(job, ImportStatus.FAILED, error=_gave_up(job))
            return job
        job.status, job.attempts = ImportStatus.RUNNING, job.attempts + 1
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at"])
        events.publish(events.IMPORT_PROGRESSED, import_id=job.pk)
    return job


def _gave_up(job: TaskImport) -> str:
    kept = (
        "nothing was imported"
        if job.on_error == OnError.ABORT
        else "rows written so far are kept, and importing the same file again adds the rest"
    )
    return f"The import was started {job.attempts} times and its worker stopped each time; {kept}."


def _import_execute(job: TaskImport, heartbeat: _Heartbeat) -> None:
    project = job.project
    stream = None

    def run() -> ImportReport:
        nonlocal stream
        stream = job.file.storage.open(job.file.name, "rb")
        if job.streamed:
            rows = _checked_rows(project, _lines_as_checked(stream))
        elif job.file.name.endswith(CHECKED_SUFFIX):
            lines = io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
            rows = _checked_rows(project, lines)
        else:  # an upload kept as it came, by a version that did not keep checked rows
            kind, schema = get_kind(project.kind), project.label_schema
            rows = read_rows(stream, job.format, kind=kind, schema=schema)
        return _import(project, rows, job.on_error, job.created_by, progress=heartbeat.progress)

    def end(report: ImportReport) -> None:
        _end(job, ImportStatus.DONE if report.imported else ImportStatus.FAILED, report=report)

    try:
        if job.on_error == OnError.ABORT:
            # The rows and the import's end commit together: a worker killed in between would
            # otherwise leave every row written and the import running.
            with transaction.atomic():
                end(run())
        else:
            end(run())
    except _CheckRefused:
        pass  # the request answered why, and deletes the import
    except Exception as exc:
        logger.exception("Import %s failed", job.pk)
        _end(job, ImportStatus.FAILED, error=str(exc))
    finally:
        if stream is not None:
            stream.close()


def task_imports_recover(*, stalled_after: timedelta = IMPORT_STALLED_AFTER) -> int:
    """Queue again the imports whose heartbeat stopped, or fail those out of attempts.

    An import counts as stalled when it is running (or was queued again by this job) and its
    heartbeat is older than ``stalled_after``. It is set back to queued, with a fresh heartbeat,
    so that it is queued again only if no worker takes it up in time. A stalled import whose
    worker is in fact alive loses nothing: its run still holds the run lock, so the new delivery
    returns at once. Returns how many imports were queued again or failed.
    """
    stalled = {
        "status__in": [ImportStatus.RUNNING, ImportStatus.QUEUED],
        "heartbeat_at__lt": Now() - stalled_after,
    }
    # A queued import that never ran has no heartbeat: the broker (or PendingJob) has it.
    ids = list(
        TaskImport.objects.filter(**stalled)
        .order_by("pk")
        .values_list("pk", flat=True)[:RECOVER_BATCH_SIZE]
    )
    handled = 0
    from tasks.jobs import run_import  # the jobs module imports these services

    for import_id in ids:
        with transaction.atomic():
            job = lock_import(import_id, **stalled)
            if job is None:
                continue
            handled += 1
            if job.attempts >= MAX_IMPORT_ATTEMPTS:
                _end(job, ImportStatus.FAILED, error=_gave_up(job))
                continue
            logger.warning("Import %s stalled; queued again", job.pk)
            job.status, job.heartbeat_at = ImportStatus.QUEUED, timezone.now()
            job.save(update_fields=["status", "heartbeat_at"])
            enqueue(run_import, job.pk)
    return handled
