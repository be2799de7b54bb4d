"""Live events: small JSON messages pushed over WebSocket when something changes.

Each event is a row of the outbox (``qa.models.LiveEvent``), written in the transaction of the
change it tells about: it exists exactly when the change does, and writing it costs a request
one INSERT, never a call to Redis. Each ASGI process's relay (``qa/relay.py``) tails the outbox
and hands every event to the process's sockets whose access covers it: the organization's staff
(managers and QA leads) see everything that happens in it; every member sees the events about
their own work.

Every message a socket receives is ``{"type", "at", "data", "seq"}``: ``seq`` counts the
socket's messages from 1 without gaps. Events from the outbox also carry ``id``, their place in
the outbox; the first message is a ``snapshot`` whose ``cursor`` is the outbox position the
socket starts from. A client that reconnects with ``?after=<the highest id it saw>`` first
receives what it missed, or ``resync`` when the outbox no longer keeps it. ``resync`` means:
fetch the snapshot again; the socket is closed after it when it fell too far behind.
"""

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from tasks.models import Project, TaskImport

from .models import LiveEvent, LiveEventType

# How long the outbox keeps events: a client away longer than this gets ``resync``.
RETENTION = timedelta(hours=24)

SNAPSHOT = "snapshot"
RESYNC = "resync"

# What ``data`` holds in each message type: key -> the JSON types it may take.
_INT, _NUM, _STR, _NULL = (int,), (int, float), (str,), (type(None),)
SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    SNAPSHOT: {"organization": _STR, "role": _STR, "member": _INT, "cursor": _INT},
    RESYNC: {"reason": _STR},
    LiveEventType.ANNOTATION_SUBMITTED: {
        "annotation": _INT,
        "project": _INT,
        "task": _INT,
        "annotator": _INT,
        "duration_seconds": _NUM + _NULL,
    },
    LiveEventType.GOLD_SCORED: {
        "annotation": _INT,
        "project": _INT,
        "task": _INT,
        "annotator": _INT,
        "score": _NUM,
    },
    # A quality rule acted (``qa.rules``): what, on whom, and the figure that crossed.
    LiveEventType.QUALITY_ALERT: {
        "action": _INT,
        "rule": _INT,
        "annotator": _INT,
        "project": _INT + _NULL,
        "metric": _STR,
        "value": _NUM,
        "threshold": _NUM,
        "effect": _STR,
    },
    # A reviewer's verdict (``qa.verdicts``): staff only, as the score it gave is.
    LiveEventType.REVIEW_COMPLETED: {
        "review": _INT,
        "item": _INT,
        "annotation": _INT,
        "version": _INT,
        "project": _INT,
        "task": _INT,
        "annotator": _INT,
        "layer": _INT,
        "reviewer": _INT,
        "verdict": _STR,
        "score": _NUM,
    },
    LiveEventType.IMPORT_PROGRESSED: {
        "import": _INT,
        "project": _INT,
        "status": _STR,
        "rows_read": _INT,
        "created": _INT + _NULL,
        "invalid": _INT + _NULL,
    },
}


def schema_errors(message: dict) -> list[str]:
    """What is wrong with a message as sent to a socket; empty when it is well formed."""
    errors = []
    expected = {"type", "at", "data", "seq"} | ({"id"} if "id" in message else set())
    if set(message) != expected:
        errors.append(f"keys {sorted(message)}")
    schema = SCHEMAS.get(message.get("type"))
    if schema is None:
        return [*errors, f"unknown type {message.get('type')!r}"]
    data = message.get("data")
    if not isinstance(data, dict) or set(data) != set(schema):
        return [*errors, f"data keys {sorted(data or {})} != {sorted(schema)}"]
    for key, types in schema.items():
        if isinstance(data[key], bool) or not isinstance(data[key], types):
            errors.append(f"data.{key} is {data[key]!r}")
    if not isinstance(message.get("seq"), int) or message["seq"] < 1:
        errors.append("seq")
    return errors


def message(event_type: str, data: dict, *, at: datetime | None = None) -> dict:
    """Shape one message as every client receives it, but for ``seq``."""
    return {"type": event_type, "at": (at or timezone.now()).isoformat(), "data": data}


def _table(model) -> str:
    return model._meta.db_table


def annotation_submitted_insert(source: str) -> str:
    """The outbox INSERT of ``annotation.submitted``, for the submission that ``source`` names:
    a query (a CTE, in ``qa.stats.submission_record``) giving the annotation's ``id``,
    ``project_id``, ``task_id``, ``annotator_id``, ``duration_seconds`` and its project's
    ``organization_id`` and annotator's ``member_id``. Part of the submission's one statement,
    which reads the annotation once for the event and the stats."""
    return f"""
    INSERT INTO {_table(LiveEvent)} (organization_id, member_id, staff, type, data)
    SELECT x.organization_id, x.member_id, true, '{LiveEventType.ANNOTATION_SUBMITTED.value}',
        jsonb_build_object('annotation', x.id, 'project', x.project_id, 'task', x.task_id,
                           'annotator', x.annotator_id, 'duration_seconds', x.duration_seconds)
    FROM {source} x
"""  # noqa: S608


_IMPORT_PROGRESSED_SQL = f"""
    INSERT INTO {_table(LiveEvent)} (organization_id, member_id, staff, type, data)
    SELECT p.organization_id, NULL, true, %s, jsonb_build_object(
        'import', i.id, 'project', i.project_id, 'status', i.status,
        'rows_read', i.rows_read, 'created', i.report -> 'created',
        'invalid', i.report -> 'invalid')
    FROM {_table(TaskImport)} i
    JOIN {_table(Project)} p ON p.id = i.project_id
    WHERE i.id = %s
"""  # noqa: S608


def record_staff_event(
    event_type: LiveEventType, *, organization_id: int, data: dict, member_id: int | None = None
) -> None:
    """Put an event for the organization's staff (and ``member_id``, if given) in the outbox."""
    LiveEvent.objects.create(
        organization_id=organization_id, member_id=member_id, staff=True, type=event_type, data=data
    )


def record_import_progressed(import_id: int) -> None:
    """Tell the organization's staff how far an import has come."""
    with connection.cursor() as cursor:
        cursor.execute(_IMPORT_PROGRESSED_SQL, [LiveEventType.IMPORT_PROGRESSED.value, import_id])


PRUNE_BATCH_SIZE = 10_000


def live_events_prune(*, now: datetime | None = None, batch_size: int = PRUNE_BATCH_SIZE) -> int:
    """Delete outbox rows older than ``RETENTION``, oldest first, in short transactions.

    Safe to run twice or concurrently. Rows are found by id, which follows time closely
    enough: the outbox needs no index on its times.
    """
    cutoff = (now or timezone.now()) - RETENTION
    kept = LiveEvent.objects.filter(created_at__gte=cutoff).order_by("id").values("id")[:1]
    if kept:
        boundary = kept[0]["id"]
    else:
        # Everything is old; rows written from now on are not.
        newest = LiveEvent.objects.order_by("-id").values_list("id", flat=True).first()
        if newest is None:
            return 0
        boundary = newest + 1
    old = LiveEvent.objects.filter(id__lt=boundary)
    deleted = 0
    while True:
        batch = list(old.order_by("id").values_list("id", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += LiveEvent.objects.filter(id__in=batch).delete()[0]
