"""Importing tasks in bulk: streamed, validated row by row, idempotent by external id."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone

from config.errors import ValidationFailed
from tasks import events
from tasks.kinds import get_kind
from tasks.locks import lock_import, lock_project_overlap
from tasks.models import ImportStatus, Project, TaskImport
from tasks.task_files import FORMATS, Row, RowError, read_ahead, read_rows
from workforce.models import AuditVerb
from workforce.queue import enqueue
from workforce.services import audit_record

logger = logging.getLogger(__name__)

BATCH_SIZE = 5_000
# Errors listed in a report; the count covers them all.
MAX_REPORTED_ERRORS = 1_000


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
        (project_id, external_id, data, priority, is_gold, gold_answer, created_at)
    SELECT %(project)s, external_id, data::jsonb, priority, gold_answer IS NOT NULL,
           gold_answer::jsonb, %(now)s
    FROM rows
    ON CONFLICT ON CONSTRAINT task_external_id DO NOTHING
    RETURNING id, priority
), slots AS (
    INSERT INTO tasks_slot (task_id, project_id, seat, state, task_priority)
    SELECT inserted.id, %(project)s, seat, CASE WHEN seat = 0 THEN 'open' ELSE 'waiting' END,
           inserted.priority
    FROM inserted CROSS JOIN generate_series(0, %(overlap)s - 1) AS seat
)
SELECT count(*) FROM inserted
"""


def _insert(project: Project, overlap: int, rows: list[Row]) -> int:
    """Insert a batch and its slots in one statement; existing external ids are left alone."""
    with connection.cursor() as cursor:
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
        return cursor.fetchone()[0]


def _write(project: Project, rows: list[Row]) -> int:
    # Each batch commits on its own: a long transaction on the task tables would hold back
    # vacuum and slow every claim. A re-run resumes where a failed import stopped.
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


def tasks_validate(*, project: Project, stream: BinaryIO, fmt: str) -> ImportReport:
    """Read every row of ``stream`` and report what is wrong, writing nothing.

    ``imported`` is false when any row is invalid. A file without rows is refused outright.
    """
    kind = get_kind(project.kind)
    report = ImportReport()
    for row in read_rows(stream, fmt, kind=kind, schema=project.label_schema):
        report.rows += 1
        if isinstance(row, list):
            report.add_errors(row)
    if not report.rows:
        raise ValidationFailed("The file has no rows.", fields={"file": ["No rows found."]})
    report.imported = not report.invalid
    return report


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

    ``open_stream`` returns the file, seekable, from its start; with ``on_error="abort"`` it is read twice,
    first to validate every row (nothing is written if one is invalid), then to write.
    Rows whose external id the project already has are counted as existing and left unchanged.
    """
    _check_mode(fmt, on_error)
    kind = get_kind(project.kind)
    if on_error == OnError.ABORT:
        checked = tasks_validate(project=project, stream=open_stream(), fmt=fmt)
        if not checked.imported:
            return checked
    report = ImportReport()
    batch: list[Row] = []
    rows = read_rows(open_stream(), fmt, kind=kind, schema=project.label_schema)
    for row in read_ahead(rows, chunk=batch_size):
        report.rows += 1
        if isinstance(row, list):
            report.add_errors(row)
            continue
        batch.append(row)
        if len(batch) >= batch_size:
            report.created += _write(project, batch)
            batch = []
            if progress:
                progress(report.rows)
    if batch:
        report.created += _write(project, batch)
    if progress:
        progress(report.rows)
    report.existing = report.rows - report.invalid - report.created
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_TASKS_IMPORTED,
        target=project,
        after={k: v for k, v in report.as_dict().items() if k != "errors"},
    )
    return report


def task_import_start(
    *,
    project: Project,
    upload: File,
    fmt: str,
    on_error: str = OnError.ABORT,
    actor: AbstractBaseUser | None = None,
) -> tuple[TaskImport | None, ImportReport | None]:
    """Keep an uploaded file and queue the job that imports it; return (job, None).

    In all-or-nothing mode every row is checked first, so a file with an invalid row is refused
    at once with its report, (None, report), and nothing is kept or queued.
    """
    _check_mode(fmt, on_error)
    if on_error == OnError.ABORT:
        upload.seek(0)
        checked = tasks_validate(project=project, stream=upload, fmt=fmt)
        if not checked.imported:
            return None, checked
    upload.seek(0)
    job = TaskImport.objects.create(
        project=project,
        created_by=actor,
        file=File(upload, name=f"tasks.{fmt}"),
        format=fmt,
        on_error=on_error,
    )
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_TASKS_IMPORT_QUEUED,
        target=project,
        after={"import": job.pk, "format": fmt, "on_error": on_error},
    )
    # Imported here: the jobs module imports these services.
    from tasks.jobs import run_import

    # With the broker down the import stays queued and runs once it is back.
    enqueue(run_import, job.pk)
    return job, None


def _end(
    job: TaskImport, status: str, *, error: str = "", report: ImportReport | None = None
) -> None:
    """Record how an import ended and tell whoever watches; its file goes, the report stays."""
    job.file.delete(save=False)
    job.status, job.error, job.file, job.finished_at = status, error[:2000], "", timezone.now()
    if report is not None:
        job.report, job.rows_read = report.as_dict(), report.rows
    job.save(update_fields=["status", "error", "report", "rows_read", "file", "finished_at"])
    events.publish(events.IMPORT_PROGRESSED, import_id=job.pk)


def task_import_run(*, import_id: int) -> TaskImport | None:
    """Import the job's file and record the outcome; a finished job is left as it is.

    Returns None when the import is gone (its project was deleted before the job ran).
    """
    with transaction.atomic():
        job = lock_import(import_id)
        if job is None or job.status in (ImportStatus.DONE, ImportStatus.FAILED):
            return job
        job.status, job.started_at = ImportStatus.RUNNING, timezone.now()
        job.save(update_fields=["status", "started_at"])
        events.publish(events.IMPORT_PROGRESSED, import_id=job.pk)
    opened: list[BinaryIO] = []

    def open_stream() -> BinaryIO:
        opened.append(job.file.storage.open(job.file.name, "rb"))
        return opened[-1]

    def progress(rows: int) -> None:
        TaskImport.objects.filter(pk=job.pk).update(rows_read=rows)
        events.publish(events.IMPORT_PROGRESSED, import_id=job.pk)

    report, error = None, ""
    try:
        report = tasks_import(
            project=job.project,
            open_stream=open_stream,
            fmt=job.format,
            on_error=job.on_error,
            actor=job.created_by,
            progress=progress,
        )
    except Exception as exc:
        logger.exception("Import %s failed", job.pk)
        error = str(exc)
    finally:
        for stream in opened:
            stream.close()
    imported = report is not None and report.imported
    _end(job, ImportStatus.DONE if imported else ImportStatus.FAILED, error=error, report=report)
    return job
