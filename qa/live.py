"""Live events: small JSON messages pushed over WebSocket when something changes.

Each event is a row of the outbox (``qa.models.LiveEvent``), written in the transaction of the
change it tells about: it exists exactly when the change does, and writing it costs a request
one INSERT (or a trigger's, ``qa/live.sql``), never a call to Redis. Each ASGI process's relay
(``qa/relay.py``) tails the outbox and feeds the process's sockets whose access covers each
event: the organization's staff (managers and QA leads) see everything that happens in it;
every member sees the events about their own work. A socket opened with ``?project=<id>``
receives only that project's events (and alerts that name no project).

What a socket receives, each message ``{"seq", "type", "at", "data"}`` (``SCHEMA`` below is
their JSON Schema, served at ``GET /api/v1/live/schema``):

``snapshot``
    First, and again when the socket's role changes: what the page shows now.
    ``organization``, ``role``, ``member``, ``cursor`` (the outbox position the socket starts
    from), ``project`` (or null), and for staff on a project the ``leaderboard`` (the rows of
    ``GET /api/v1/projects/{id}/accuracy``, else null) and ``stats`` (``stats.updated``'s
    rows of the hour).
``batch``
    Every event for the socket since its previous message: ``{"events": [...]}``. The relay
    sends at most one per tick (about ten a second), only when there is something, so a
    socket's messages grow with time, not with submissions. Each event is ``{"type", "at",
    "id", "data"}``: ``id`` is its place in the outbox; ``stats.updated``, which the relay
    makes from the stats rows, has none. Nothing is coalesced away: every event, alerts
    included, is in the batch of the tick that read it.
``resync``
    What the socket holds is not to be trusted: fetch the snapshot again (reconnect). The
    socket is closed after it when the client fell too far behind (``reason``).

The stream is the socket: ``seq`` counts its messages from 1 without gaps. A client that sees a
gap reconnects. One that reconnects with ``?after=<the highest event id it saw>`` receives,
after the snapshot, what it missed in one batch, or ``resync`` when the outbox no longer keeps
it.

``stats.updated`` carries an annotator's figures of the hour in a project, at most once a
second each, after events about their work; staff receive every row, an annotator their own
without what would tell gold apart.
"""

import json
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from tasks.models import Project, TaskImport
from workforce.models import Role

from .models import LiveEvent, LiveEventType

# How long the outbox keeps events: a client away longer than this gets ``resync``.
RETENTION = timedelta(hours=24)

SNAPSHOT = "snapshot"
RESYNC = "resync"
BATCH = "batch"

# -- JSON Schema of every message ---------------------------------------------------------

_ID = {"type": "integer", "minimum": 1}
_INT = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict, *, description: str | None = None) -> dict:
    """An object with exactly these keys."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return schema | ({"description": description} if description else {})


_FRACTION = _nullable({"type": "number", "minimum": 0, "maximum": 1})

# What ``data`` holds in each event.
EVENT_DATA: dict[str, dict] = {
    LiveEventType.ASSIGNMENT_CLAIMED: _object(
        {"assignment": _ID, "project": _ID, "task": _ID, "annotator": _ID},
        description="A claim leased a task (qa/live.sql).",
    ),
    LiveEventType.ANNOTATION_SUBMITTED: _object(
        {
            "annotation": _ID,
            "project": _ID,
            "task": _ID,
            "annotator": _ID,
            "duration_seconds": _nullable(_NUMBER),
        },
        description="An annotator submitted work.",
    ),
    LiveEventType.GOLD_SCORED: _object(
        {"annotation": _ID, "project": _ID, "task": _ID, "annotator": _ID, "score": _NUMBER},
        description="Staff only: a gold submission's score (qa.gold).",
    ),
    LiveEventType.QUALITY_ALERT: _object(
        {
            "action": _ID,
            "rule": _ID,
            "annotator": _ID,
            "project": _nullable(_ID),
            "metric": _STRING,
            "value": _NUMBER,
            "threshold": _NUMBER,
            "effect": _STRING,
        },
        description="Staff only: a quality rule acted (qa.rules): what, on whom, and the "
        "figure that crossed.",
    ),
    LiveEventType.REVIEW_COMPLETED: _object(
        {
            "review": _ID,
            "item": _ID,
            "annotation": _ID,
            "version": _ID,
            "project": _ID,
            "task": _ID,
            "annotator": _ID,
            "layer": _ID,
            "reviewer": _ID,
            "verdict": _STRING,
            "score": _NUMBER,
        },
        description="Staff only: a reviewer's verdict and the score it gave (qa.verdicts).",
    ),
    LiveEventType.IMPORT_PROGRESSED: _object(
        {
            "import": _ID,
            "project": _ID,
            "status": _STRING,
            "rows_read": _COUNT,
            "created": _nullable(_COUNT),
            "invalid": _nullable(_COUNT),
        },
        description="Staff only: how far an import has come.",
    ),
    LiveEventType.STATS_UPDATED: {"$ref": "#/$defs/stats"},
}


def _event(event_type: str) -> dict:
    properties = {"type": {"const": event_type}, "at": _TIME, "id": _ID}
    if event_type == LiveEventType.STATS_UPDATED:
        del properties["id"]  # made by the relay, not read from the outbox
    return _object(properties | {"data": {"$ref": f"#/$defs/{event_type}"}})


def _message(message_type: str, data: dict, *, description: str) -> dict:
    return _object(
        {"seq": _ID, "type": {"const": message_type}, "at": _TIME, "data": data},
        description=description,
    )


_LEADERBOARD_ROW = _object(
    {
        "annotator": _ID,
        "username": _STRING,
        "scored": _COUNT,
        "mean": _FRACTION,
        "low": _FRACTION,
        "high": _FRACTION,
        "recent_mean": _FRACTION,
        "recent_n": _COUNT,
        "review": _object(
            {"reviewed": _COUNT, "mean": _FRACTION, "low": _FRACTION, "high": _FRACTION}
        ),
    },
    description="A row of GET /api/v1/projects/{id}/accuracy.",
)

# An annotator's figures of one hour in one project (``qa.stats.hour_rows``).
STATS_ROW = {
    "type": "object",
    "properties": {"project": _ID, "annotator": _ID, "hour": _TIME},
    "required": ["project", "annotator", "hour"],
}

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Assay live message",
    "description": "Every message a live-events WebSocket (/ws/orgs/<slug>/) sends.",
    "oneOf": [{"$ref": f"#/$defs/{name}"} for name in (SNAPSHOT, BATCH, RESYNC)],
    "$defs": {
        SNAPSHOT: _message(
            SNAPSHOT,
            _object(
                {
                    "organization": _STRING,
                    "role": {"enum": list(Role.values)},
                    "member": _ID,
                    "cursor": _COUNT,
                    "project": _nullable(_ID),
                    "leaderboard": _nullable({"type": "array", "items": _LEADERBOARD_ROW}),
                    "stats": {"type": "array", "items": {"$ref": "#/$defs/stats"}},
                }
            ),
            description="First, and when the socket's role changes: what the page shows now.",
        ),
        BATCH: _message(
            BATCH,
            _object(
                {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"oneOf": [{"$ref": f"#/$defs/event:{t}"} for t in EVENT_DATA]},
                    }
                }
            ),
            description="Every event for the socket since its previous message.",
        ),
        RESYNC: _message(
            RESYNC,
            _object({"reason": {"enum": ["cursor_expired", "too_far_behind", "too_slow"]}}),
            description="Fetch the snapshot again (reconnect).",
        ),
        **{f"event:{t}": _event(t) for t in EVENT_DATA},
        **EVENT_DATA,
        "stats": STATS_ROW,
    },
}


def message(message_type: str, data: dict, *, at: datetime | None = None) -> dict:
    """Shape a ``snapshot`` or ``resync`` as every client receives it, but for ``seq``."""
    return {"type": message_type, "at": (at or timezone.now()).isoformat(), "data": data}


# Messages travel as text made once and shared by every socket that receives them; each socket
# puts its own ``{"seq":n,`` before a message's ``tail`` (the text without its opening brace).


def tail(shaped: dict) -> str:
    """A message from ``message`` as the text its sockets share."""
    return json.dumps(shaped, separators=(",", ":"))[1:]


def event_text(event_type: str, *, at: datetime, data: str, id: int | None = None) -> str:
    """An event as a batch carries it; ``data`` is its JSON text, spliced in as it is."""
    place = "" if id is None else f',"id":{id}'
    return f'{{"type":"{event_type}","at":"{at.isoformat()}"{place},"data":{data}}}'


def batch_tail(events: list[str], *, at: str) -> str:
    """A batch of events (each from ``event_text``), as the text its sockets share."""
    return f'"type":"{BATCH}","at":"{at}","data":{{"events":[{",".join(events)}]}}}}'


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
