"""Live events: small JSON messages pushed over WebSocket when something changes.

Each event is a row of the outbox (``qa.models.LiveEvent``), written in the transaction of the
change it tells about: it exists exactly when the change does, and writing it costs a request
one INSERT (or a trigger's, ``qa/live.sql``), never a call to Redis. Each ASGI process's relay
(``qa/relay.py``) tails the outbox and feeds the process's sockets whose access covers each
event: the organization's staff (managers and QA leads) see everything that happens in it;
every member sees the events about their own work. A socket opened with ``?project=<id>``
receives only that project's events (and alerts that name no project).

What a socket receives, each message ``{"seq", "type", "at", "data"}`` (their JSON Schema is
``qa/live_schema.py``, served at ``GET /api/schema/live/``):

``snapshot``
    First, and again when the socket's role changes: what the page shows now.
    ``organization``, ``role``, ``member``, ``cursor`` (the outbox position the socket starts
    from), ``project`` (or null), and for staff on a project the ``leaderboard`` (the rows of
    ``GET /api/v1/projects/{id}/accuracy``, else null) and ``stats`` (``stats.updated``'s
    rows of the hour); anyone else gets their own rows of the hour in ``stats``.
``batch``
    Every event for the socket since its previous message: ``{"events": [...]}``. The relay
    sends at most one per tick (every 70 ms), only when there is something, so a
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
second each: to staff every figure, after events about their work; to the annotator their own
throughput alone (``qa.stats.OWN_LIVE_FIELDS``), after their own submissions. Every other
figure of their own is theirs up to the start of today (``qa.own_view``): a figure that moved
as they work could tell a gold task apart.
"""

import json
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from config.serializers import json_time
from tasks.models import Project, TaskImport

from .models import LiveEvent, LiveEventType

# How long the outbox keeps events: a client away longer than this gets ``resync``.
RETENTION = timedelta(hours=24)

SNAPSHOT = "snapshot"
RESYNC = "resync"
BATCH = "batch"


def message(message_type: str, data: dict, *, at: datetime | None = None) -> dict:
    """Shape a ``snapshot`` or ``resync`` as every client receives it, but for ``seq``."""
    return {"type": message_type, "at": json_time(at or timezone.now()), "data": data}


# Messages travel as text made once and shared by every socket that receives them; each socket
# puts its own ``{"seq":n,`` before a message's ``tail`` (the text without its opening brace).


def tail(shaped: dict) -> str:
    """A message from ``message`` as the text its sockets share."""
    return json.dumps(shaped, separators=(",", ":"))[1:]


def event_text(event_type: str, *, at: datetime, data: str, id: int | None = None) -> str:
    """An event as a batch carries it; ``data`` is its JSON text, spliced in as it is."""
    place = "" if id is None else f',"id":{id}'
    return f'{{"type":"{event_type}","at":"{json_time(at)}"{place},"data":{data}}}'


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


def staff_event_insert(
    event_type: LiveEventType, *, organization: str, data: str, member: str = "NULL"
) -> str:
    """The outbox INSERT of an event for an organization's staff (and a member, if given), also
    as a part of a statement of several writes: ``organization``, ``data`` (jsonb) and
    ``member`` are SQL expressions, parameters usually."""
    return f"""
    INSERT INTO {_table(LiveEvent)} (organization_id, member_id, staff, type, data)
    VALUES ({organization}, {member}, true, '{event_type.value}', {data})
"""  # noqa: S608


def record_staff_event(
    event_type: LiveEventType, *, organization_id: int, data: dict, member_id: int | None = None
) -> None:
    """Put an event for the organization's staff (and ``member_id``, if given) in the outbox."""
    with connection.cursor() as cursor:
        cursor.execute(
            staff_event_insert(event_type, organization="%s", data="%s", member="%s"),
            [organization_id, member_id, Jsonb(data)],
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
