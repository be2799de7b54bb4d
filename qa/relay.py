"""The relay: each ASGI process tails the live-event outbox and feeds its own sockets.

One relay runs per event loop (per uvicorn process), from the first socket that joins to the
last that leaves. Every ``TICK_SECONDS`` it reads the outbox rows it has not seen in one indexed
query, on a database connection of its own (one thread), and sends each socket that may see
any of them one ``batch`` (``qa/live.py``) holding them all. Neither a request nor a socket
waits on Redis: the outbox is the only shared state, and a process that was away catches up
from it.

What a tick costs grows with its sockets, not with the events it read: each event's JSON is
made once per tick, each audience's batch once (the staff of an organization, or of one of its
projects; one member's own events), and every socket of an audience is sent the same text
behind its own ``seq``. A thousand staff sockets watching a project that takes 200
submissions a second cost fourteen messages a second each, as they would at one a tick.

Rows become visible in commit order, not id order: a transaction that took its id early and
commits late puts a row below ids already delivered. The relay reads, with the rows, the
snapshot of transactions not yet completed (``pg_current_snapshot()``, in the same statement):
those it lists as running, and every one at or above its ``xmax``, which it does not list
(``xmax`` is one past the latest transaction to complete: a transaction whose id is above it
may hold a row below ids already seen when one with a lower id committed first). A row it
could not see belongs to one of those, or to one that began later and so holds a higher id
than any it saw. The next read asks for ids above the cursor, plus rows of the transactions
that had not completed. Nothing waits for a long transaction (a minutes-long import): the rows
of others go out at once, and its own when it commits.

Access follows people as they change. A row ``access.changed`` (written by the database when a
membership, its role, an account or an annotator's status changes, ``qa/live.sql``) makes the
relay check that member's sockets in the same tick, before it delivers anything; every
``ACCESS_CHECK_SECONDS`` it checks all its sockets too, in one query (``live_access``), which
catches what writes no row (a session logged out or expired). A socket whose access ended is
closed; one whose role changed gets a new snapshot and the events of its new role.

After events about an annotator's work, the relay reads their stats row of the hour
(``qa.stats.hour_rows``, one query per project and hour for all the annotators due) and adds
``stats.updated`` to the staff's batches: at most once every ``STATS_SECONDS`` per annotator
and project, the first at once and the rest at the end of the second. After their own
submissions only, the annotator's own sockets get the same row read, as they may read it
(``qa.stats.own_live_row``: throughput alone, ``qa.own_view``), on a debounce of its own: a
score or a verdict, which staff see, never makes theirs come sooner or later.

Each socket has a bounded queue: a batch queued behind one not yet sent joins it, so a socket
(or a server) that cannot keep up with the ticks sends fewer, larger batches. A socket with more
than ``MAX_WAITING`` events waiting (a client that does not read) is sent ``resync`` and
closed: the server's memory stays flat.
"""

import asyncio
import functools
import json
import logging
import time
import weakref
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from config.serializers import json_time

from . import live
from .models import LiveEventType
from .models.live import ACCESS_CHANGED, LiveEvent
from .selectors import LiveAccess, SocketKey, live_access, live_snapshot
from .stats import hour_of, hour_rows, own_live_row

logger = logging.getLogger(__name__)

# How often the outbox is read and batches go out: the most messages a socket receives in a
# second (fourteen), and the longest an event waits for its read. Then come the read and the
# sending (about 25 ms at p99 on two loaded cores): commit to socket within 100 ms at p99.
TICK_SECONDS = 0.07
# How often every socket's access is checked, for what writes no ``access.changed`` row: a
# session logged out or expired stops receiving within this.
ACCESS_CHECK_SECONDS = 2.0
# While the database fails, read it this often (and log the failure once).
RETRY_SECONDS = 1.0
# Rows read at most per tick; the rest come at the next one.
READ_LIMIT = 5000
# Events a socket may have waiting to be sent; past this (a client that stopped reading) it is
# told to resync and closed. Ten seconds of 200 submissions a second, their stats and claims.
MAX_WAITING = 5000
# Events a reconnecting client may catch up on, in one batch; past this it is told to resync.
MAX_CAUGHT_UP = 1000
# An annotator's stats in a project go out at most this often.
STATS_SECONDS = 1.0
# Events about an annotator's work, after which staff receive their stats again.
STATS_AFTER = frozenset(
    {
        LiveEventType.ANNOTATION_SUBMITTED,
        LiveEventType.GOLD_SCORED,
        LiveEventType.REVIEW_COMPLETED,
    }
)
# Those after which the annotator's own sockets receive theirs: their own submission, which
# a gold task makes as any other. Never a score's, whose timing would tell gold apart.
OWN_STATS_AFTER = frozenset({LiveEventType.ANNOTATION_SUBMITTED})

APPLICATION_NAME = "assay live relay"

# Close codes a client can act on (README, "Live events"). A socket refused when it connects is
# accepted first and then closed with one, so that the code reaches the client.
CLOSE_BAD_REQUEST = 4400  # a malformed query: a parameter twice, a cursor or project no id
CLOSE_UNAUTHENTICATED = 4401  # no session and no ticket, or a ticket forged, expired or elsewhere
CLOSE_ACCESS_ENDED = 4403  # a membership that no longer gives access, at connect or later
CLOSE_NOT_FOUND = 4404  # no organization (or project) of the user's has that slug (or id)
CLOSE_TOO_SLOW = 4408  # the client fell too far behind (after ``resync``)

_TABLE = LiveEvent._meta.db_table
# What the relay needs of a row: the project and the annotator decide who gets it and whose
# stats to read, without decoding its data, which goes out as the text PostgreSQL gives.
_COLUMNS = (
    "id, organization_id, member_id, staff, type, data, created_at, "
    "(data ->> 'project')::bigint, (data ->> 'annotator')::bigint"
)
# The snapshot and the rows in one statement, so that both see the same committed state. The
# parameters: the cursor; the transactions not completed at an earlier read (listed, and from
# an id on) with the id above which rows of theirs are still unread; those of the last read.
_READ_SQL = f"""
    SELECT pg_current_snapshot()::text, e.*
    FROM (VALUES (1)) AS one(x)
    LEFT JOIN LATERAL (
        SELECT {_COLUMNS} FROM {_TABLE} WHERE id IN (
            (SELECT id FROM {_TABLE} WHERE id > %s ORDER BY id LIMIT %s)
            UNION ALL
            (SELECT id FROM {_TABLE} WHERE (xid = ANY(%s::bigint[]) OR xid >= %s) AND id > %s
             ORDER BY id LIMIT %s)
            UNION ALL
            (SELECT id FROM {_TABLE} WHERE (xid = ANY(%s::bigint[]) OR xid >= %s)
             ORDER BY id LIMIT %s)
        )
        ORDER BY id LIMIT %s
    ) e ON true
"""  # noqa: S608
_START_SQL = f"SELECT pg_current_snapshot()::text, (SELECT max(id) FROM {_TABLE})"  # noqa: S608
_CATCH_UP_SQL = f"""
    SELECT {_COLUMNS} FROM {_TABLE}
    WHERE id > %s AND id <= %s AND organization_id = %s AND (staff AND %s OR member_id = %s)
      AND type <> %s
    ORDER BY id LIMIT %s
"""  # noqa: S608
_OLDEST_SQL = f"SELECT min(id) FROM {_TABLE}"  # noqa: S608


@dataclass(frozen=True)
class _Pending:
    """Transactions not completed at a read: those listed (``xip``), and every one from
    ``xmax`` on."""

    xip: frozenset[int] = frozenset()
    xmax: int = 2**63 - 1  # none

    @classmethod
    def of(cls, snapshot: str) -> "_Pending":
        """From a ``pg_snapshot``'s text form ``xmin:xmax:xip,...``."""
        _, xmax, xip = snapshot.split(":")
        return cls(frozenset(int(xid) for xid in xip.split(",") if xid), int(xmax))

    def __or__(self, other: "_Pending") -> "_Pending":
        return _Pending(self.xip | other.xip, min(self.xmax, other.xmax))


@dataclass(frozen=True, slots=True)
class Row:
    """An outbox row as the relay reads it; ``text`` is the event as a batch carries it."""

    id: int
    organization_id: int
    member_id: int | None
    staff: bool
    type: str
    project_id: int | None
    annotator_id: int | None
    created_at: datetime
    text: str

    @classmethod
    def read(cls, values) -> "Row":
        id_, organization_id, member_id, staff, type_, data, created_at, project, annotator = values
        # Django has psycopg hand jsonb over as text: it goes out as it is, never decoded.
        data = data if isinstance(data, str) else json.dumps(data)
        text = live.event_text(type_, at=created_at, data=data, id=id_)
        return cls(id_, organization_id, member_id, staff, type_, project, annotator,
                   created_at, text)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StatsUpdate:
    """One ``stats.updated`` of a tick: for the organization's staff, or (``member_id``) for
    the annotator's own sockets."""

    organization_id: int
    project_id: int
    member_id: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Events for a socket: their texts, and the batch's own text (its ``tail``, without the
    opening brace) while it is one tick's for one audience, shared by all its sockets."""

    events: list[str]
    tail: str | None = None

    def __add__(self, later: "Batch") -> "Batch":
        # Two ticks' batches for one socket that could not send the first: one message, whose
        # text is the socket's own.
        return Batch([*self.events, *later.events])

    def text(self) -> str:
        if self.tail is not None:
            return self.tail
        return live.batch_tail(self.events, at=json_time(timezone.now()))


class LiveSocket:
    """One open WebSocket as the relay sees it: its access, its queue, its sequence numbers.

    ``send`` (text) and ``close`` (a code) are the consumer's. The queue holds messages as
    JSON text without their opening brace, and batches (``Batch``), shared by every socket that
    receives the same; each leaves behind its own ``seq``, in the order queued. A batch queued
    behind one still waiting joins it: a socket that cannot send as fast as the ticks come gets
    fewer, larger batches, and a server short of time sends fewer messages, not later ones. A
    close is queued like a message, after what precedes it. Nothing is sent before ``begin``
    hands over the snapshot.
    """

    def __init__(
        self,
        *,
        key: SocketKey,
        access: LiveAccess,
        organization: str,
        project_id: int | None = None,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        max_waiting: int | None = None,
    ):
        self.key, self.access, self.organization = key, access, organization
        self.project_id = project_id
        self._send, self._close = send, close
        self._max_waiting = MAX_WAITING if max_waiting is None else max_waiting
        self._queue: deque[str | Batch | int] = deque()
        self._ready = asyncio.Event()
        self._seq = 0
        self.closing = False
        self._sender: asyncio.Task | None = None

    def push(self, item: str | Batch) -> None:
        """Queue a message or a batch; a socket with more than ``MAX_WAITING`` events waiting
        (a client that does not read) gets ``resync`` and is closed instead."""
        if self.closing:
            return
        if isinstance(item, Batch) and self._queue and isinstance(self._queue[-1], Batch):
            item = self._queue.pop() + item
        if isinstance(item, Batch) and len(item.events) > self._max_waiting:
            self._queue.clear()
            self._queue.append(live.tail(live.message(live.RESYNC, {"reason": "too_slow"})))
            self.end(CLOSE_TOO_SLOW)
            return
        self._queue.append(item)
        self._ready.set()

    def begin(self, snapshot: dict) -> None:
        """Send the snapshot, then what was queued since the socket joined."""
        self._queue.appendleft(live.tail(snapshot))
        self._ready.set()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    def end(self, code: int) -> None:
        """Close once what is queued has been sent."""
        if not self.closing:
            self.closing = True
            self._queue.append(code)
            self._ready.set()

    def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()

    async def _drain(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, int):
                    await self._close(item)
                    return
                self._seq += 1
                tail = item.text() if isinstance(item, Batch) else item
                await self._send(f'{{"seq":{self._seq},{tail}')
            self._ready.clear()


@dataclass
class _Cursor:
    """Where the relay stands in the outbox (see the module docstring)."""

    last: int = 0
    # Transactions not completed at an earlier read, and the id up to which their rows were
    # read.
    behind: _Pending = _Pending()
    behind_from: int = 0
    # Transactions not completed at the last read.
    running: _Pending = _Pending()
    started: bool = False


def _of_project(items: Iterable, project_id: int | None) -> list:
    """What a socket of ``project_id`` (None: every project) receives of ``items``: rows of
    that project, and those naming none (an alert about an annotator's certification)."""
    if project_id is None:
        return list(items)
    return [item for item in items if item.project_id in (project_id, None)]


class _Tick:
    """One tick's rows and stats by audience, and each audience's batch, made once."""

    def __init__(self, rows: list[Row], stats: list[StatsUpdate]):
        self.at = json_time(timezone.now())
        self.staff: dict[int, list[Row]] = defaultdict(list)
        self.own: dict[tuple[int, int], list[Row]] = defaultdict(list)
        self.stats: dict[int, list[StatsUpdate]] = defaultdict(list)
        self.own_stats: dict[tuple[int, int], list[StatsUpdate]] = defaultdict(list)
        for row in rows:
            if row.staff:
                self.staff[row.organization_id].append(row)
            if row.member_id is not None:
                self.own[(row.organization_id, row.member_id)].append(row)
        for update in stats:
            if update.member_id is None:
                self.stats[update.organization_id].append(update)
            else:
                self.own_stats[(update.organization_id, update.member_id)].append(update)
        self._batches: dict[tuple, Batch | None] = {}

    def batch(self, access: LiveAccess, project_id: int | None) -> Batch | None:
        """The batch a socket of ``access`` on ``project_id`` receives, or None: nothing."""
        organization, member = access.organization_id, access.member_id
        own = self.own.get((organization, member), ())
        if access.staff:
            # Rows for this member alone (not for staff) are rare: only then is the batch theirs.
            alone = [row for row in own if not row.staff]
            key = (organization, member if alone else None, project_id)
        else:
            key = (organization, member, project_id)
        if key in self._batches:
            return self._batches[key]
        if access.staff:
            stats = self.stats.get(organization, ())
            rows = self.staff.get(organization, [])
            if alone:
                rows = sorted([*rows, *alone], key=lambda row: row.id)
            texts = [row.text for row in _of_project(rows, project_id)]
            texts += [update.text for update in _of_project(stats, project_id)]
        else:
            stats = self.own_stats.get((organization, member), ())
            texts = [row.text for row in _of_project(own, project_id)]
            texts += [update.text for update in _of_project(stats, project_id)]
        batch = None
        if texts:
            batch = Batch(texts, live.batch_tail(texts, at=self.at))
        self._batches[key] = batch
        return batch


class _StatsDue:
    """Which annotators' stats to send, at most once every ``STATS_SECONDS`` each.

    Keyed by organization, project, annotator, hour and audience (None: staff; else the member
    whose own sockets receive it), each audience's on its own: the first event goes out at
    once, the rest of the second wait for its end, together. A row is read after the events
    that made it due, so it may already count a submission whose event comes at the next tick;
    the row that event makes due again is sent only if what the audience reads changed since.
    """

    def __init__(self) -> None:
        self._sent: dict[tuple, tuple[float, str | None]] = {}
        self._waiting: set[tuple] = set()

    def note(self, rows: Iterable[Row]) -> None:
        for row in rows:
            if row.type in STATS_AFTER and row.project_id and row.annotator_id:
                key = (row.organization_id, row.project_id, row.annotator_id,
                       hour_of(row.created_at))  # fmt: skip
                self._waiting.add((*key, None))
                if row.type in OWN_STATS_AFTER and row.member_id is not None:
                    # The row is addressed to the member whose work it is.
                    self._waiting.add((*key, row.member_id))

    def due(self, now: float) -> list[tuple]:
        """The keys to send now; forgets what was sent long ago."""
        due = []
        for key in list(self._waiting):
            sent, data = self._sent.get(key, (-STATS_SECONDS, None))
            if now - sent >= STATS_SECONDS:
                due.append(key)
                self._waiting.discard(key)
                self._sent[key] = (now, data)
        for key, (sent, _) in list(self._sent.items()):
            if now - sent >= STATS_SECONDS and key not in self._waiting:
                del self._sent[key]
        return due

    def changed(self, key: tuple, data: str) -> bool:
        """Whether ``data`` differs from what was last sent for ``key``; remembers it."""
        sent, last = self._sent[key]
        self._sent[key] = (sent, data)
        return data != last


class Relay:
    """The outbox reader of one event loop; see the module docstring."""

    def __init__(self) -> None:
        self._sockets: set[LiveSocket] = set()
        self._lock = asyncio.Lock()
        self._cursor = _Cursor()
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._failing = False
        self._stats = _StatsDue()

    # -- the database, on the relay's own thread and connection ----------------------------

    async def _db(self, function: Callable[..., Any], *args) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="live-relay")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, _on_fresh_connection, function, *args
        )

    # -- sockets --------------------------------------------------------------------------

    async def join(self, socket: LiveSocket, *, after: int | None) -> int:
        """Start feeding ``socket`` from the relay's position, which it returns: what it missed
        since ``after`` first, then every tick's batch. The socket sends nothing before its
        snapshot (``LiveSocket.begin``), which the caller reads once joined: an event that
        lands in both is sent twice rather than lost.

        Under the relay's lock, so that no read delivers rows between the catch-up and the
        socket's joining (or twice).
        """
        async with self._lock:
            if not self._cursor.started:
                try:
                    self._cursor = await self._db(_start)
                except BaseException:
                    if self._task is None:
                        # Nothing runs yet to close the relay's connection later.
                        await self._shut_down()
                    raise
            cursor = self._cursor.last
            access = socket.access
            if after is not None and after < cursor:
                missed = await self._db(
                    _catch_up, after, cursor, access.organization_id, access.staff,
                    access.member_id,
                )  # fmt: skip
                if isinstance(missed, str):
                    socket.push(live.tail(live.message(live.RESYNC, {"reason": missed})))
                else:
                    texts = [row.text for row in _of_project(missed, socket.project_id)]
                    if texts:
                        socket.push(Batch(texts))
            self._sockets.add(socket)
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run())
            return cursor

    def leave(self, socket: LiveSocket) -> None:
        socket.stop()
        self._sockets.discard(socket)

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._poll()
        except asyncio.CancelledError:
            # The event loop is closing (a server stopping, a test's loop): let the connection go.
            await self._shut_down()
            raise

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        next_check = loop.time() + ACCESS_CHECK_SECONDS
        while True:
            # Ticks keep their pace: the time a tick took is not added to the wait.
            started, wait = loop.time(), TICK_SECONDS
            try:
                async with self._lock:
                    if not self._sockets:
                        # Under the lock: a socket joining now starts a new run.
                        await self._shut_down()
                        return
                    await self._tick()
                    if loop.time() >= next_check:
                        next_check = loop.time() + ACCESS_CHECK_SECONDS
                        await self._check_access(self._sockets)
                if self._failing:
                    logger.info("The live relay reads the outbox again.")
                    self._failing = False
            except DatabaseError:
                if not self._failing:
                    logger.exception("The live relay cannot read the outbox; it retries.")
                self._failing, wait = True, RETRY_SECONDS
            except Exception:
                # A fault of the relay itself: the sockets wait, the relay goes on.
                logger.exception("The live relay failed; it retries.")
                wait = RETRY_SECONDS
            await asyncio.sleep(max(0.0, started + wait - loop.time()))

    async def _shut_down(self) -> None:
        executor, self._executor = self._executor, None
        self._cursor, self._task = _Cursor(), None
        self._stats = _StatsDue()
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, _close_connection)
            executor.shutdown(wait=False)

    async def _tick(self) -> None:
        rows, stats = await self._read()
        changed = {row.member_id for row in rows if row.type == ACCESS_CHANGED}
        if changed:
            # Before anything of this tick goes out: a member who lost access gets none of it.
            await self._check_access([s for s in self._sockets if s.access.member_id in changed])
            rows = [row for row in rows if row.type != ACCESS_CHANGED]
        if rows or stats:
            self._deliver(_Tick(rows, stats))

    async def _read(self) -> tuple[list[Row], list[StatsUpdate]]:
        state = self._cursor
        # One trip to the relay's thread for the rows and the stats they make due.
        snapshot, rows, stats = await self._db(_read, state, self._stats)
        running = _Pending.of(snapshot)
        if len(rows) < READ_LIMIT:
            self._cursor = _Cursor(last=max([state.last, *(r.id for r in rows)]), running=running,
                                   started=True)  # fmt: skip
        else:
            # Rows above the last one read are unread: keep asking for those of every
            # transaction that had not completed, above it.
            last = rows[-1].id
            self._cursor = _Cursor(
                last=max(state.last, last),
                behind=state.behind | state.running,
                behind_from=last,
                running=running,
                started=True,
            )
        return rows, stats

    def _deliver(self, tick: _Tick) -> None:
        for socket in self._sockets:
            if not socket.closing:
                batch = tick.batch(socket.access, socket.project_id)
                if batch is not None:
                    socket.push(batch)

    async def _check_access(self, sockets: Iterable[LiveSocket]) -> None:
        sockets = [socket for socket in sockets if not socket.closing]
        if not sockets:
            return
        found = await self._db(live_access, [socket.key for socket in sockets])
        for socket, access in zip(sockets, found, strict=True):
            if access is None:
                socket.end(CLOSE_ACCESS_ENDED)
            elif access != socket.access:
                socket.access = access
                data = await self._db(
                    functools.partial(
                        live_snapshot, access=access, organization=socket.organization,
                        project_id=socket.project_id, cursor=self._cursor.last,
                    )
                )  # fmt: skip
                socket.push(live.tail(live.message(live.SNAPSHOT, data)))


def _on_fresh_connection(function: Callable[..., Any], *args) -> Any:
    # The relay's connection lives in its thread for its lifetime; a broken or aged one is
    # replaced before the next query, as a request would do.
    connection.close_if_unusable_or_obsolete()
    if connection.connection is None:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            # Named, so that pg_stat_activity tells the relay's session from requests'.
            cursor.execute("SELECT set_config('application_name', %s, false)", [APPLICATION_NAME])
    return function(*args)


def _close_connection() -> None:
    connection.close()


def _start() -> _Cursor:
    with connection.cursor() as cursor:
        cursor.execute(_START_SQL)
        snapshot, last = cursor.fetchone()
    return _Cursor(last=last or 0, running=_Pending.of(snapshot), started=True)


def _read(state: _Cursor, stats: _StatsDue) -> tuple[str, list[Row], list[StatsUpdate]]:
    """The rows above the cursor (and those of transactions that were running), the snapshot
    they were read in, and the ``stats.updated`` due now."""
    with connection.cursor() as cursor:
        cursor.execute(
            _READ_SQL,
            [
                *(state.last, READ_LIMIT),
                *(list(state.behind.xip), state.behind.xmax, state.behind_from, READ_LIMIT),
                *(list(state.running.xip), state.running.xmax, READ_LIMIT),
                READ_LIMIT,
            ],
        )
        found = cursor.fetchall()
    rows = [Row.read(values[1:]) for values in found if values[1] is not None]
    stats.note(rows)
    due = stats.due(time.monotonic())
    return found[0][0], rows, _stats_updates(due, stats) if due else []


def _catch_up(
    after: int, upto: int, organization_id: int, staff: bool, member_id: int
) -> list[Row] | str:
    """The rows a socket missed since ``after``, or why it must resync instead: the outbox no
    longer keeps them all (``cursor_expired``), or they are more than one batch may carry
    (``too_far_behind``)."""
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_SQL)
        (oldest,) = cursor.fetchone()
        # Rows up to ``upto`` were written; if the oldest kept is above ``after + 1``, some
        # the client never saw may have been pruned.
        if oldest is None or oldest > after + 1:
            return "cursor_expired"
        cursor.execute(_CATCH_UP_SQL, [after, upto, organization_id, staff, member_id,
                                       ACCESS_CHANGED, MAX_CAUGHT_UP + 1])  # fmt: skip
        rows = [Row.read(values) for values in cursor.fetchall()]
    return "too_far_behind" if len(rows) > MAX_CAUGHT_UP else rows


def _stats_updates(due: list[tuple], stats: _StatsDue) -> list[StatsUpdate]:
    """``stats.updated`` for each annotator and audience due whose row, as the audience reads
    it, changed since it was last sent: one query per project and hour, for every audience."""
    at = timezone.now()
    wanted: dict[tuple[int, datetime], list[tuple]] = defaultdict(list)
    for key in due:
        _, project_id, _, hour, _ = key
        wanted[(project_id, hour)].append(key)
    updates = []
    for (project_id, hour), keys in wanted.items():
        annotators = sorted({annotator_id for _, _, annotator_id, _, _ in keys})
        rows = {
            row["annotator"]: row
            for row in hour_rows(project_id=project_id, annotator_ids=annotators, hour=hour)
        }
        for key in keys:
            organization_id, _, annotator_id, _, member_id = key
            if (row := rows.get(annotator_id)) is None:
                continue
            data = json.dumps(row if member_id is None else own_live_row(row))
            if stats.changed(key, data):
                text = live.event_text(LiveEventType.STATS_UPDATED, at=at, data=data)
                updates.append(StatsUpdate(organization_id, project_id, member_id, text))
    return updates


_relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Relay]" = weakref.WeakKeyDictionary()


def relay() -> Relay:
    """The relay of the running event loop (one per ASGI process)."""
    loop = asyncio.get_running_loop()
    found = _relays.get(loop)
    if found is None:
        found = _relays[loop] = Relay()
    return found
