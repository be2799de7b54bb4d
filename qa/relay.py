"""The relay: each ASGI process tails the live-event outbox and feeds its own sockets.

One relay runs per event loop (per uvicorn process), from the first socket that joins to the
last that leaves. Every ``POLL_SECONDS`` it reads the outbox rows it has not seen in one indexed
query, on a database connection of its own (one thread), and hands each row to the sockets
whose access covers it. Neither a request nor a socket waits on Redis: the outbox is the only
shared state, and a process that was away catches up from it.

Rows become visible in commit order, not id order: a transaction that took its id early and
commits late puts a row below ids already delivered. The relay reads, with the rows, the
snapshot of transactions still running (``pg_current_snapshot()``, in the same statement). A
row it could not see then belongs to one of those transactions, or to one that began later
and so holds a higher id than any it saw. The next read asks for ids above the cursor, plus
rows of the transactions that were running. Nothing waits for a long transaction (a
minutes-long import): the rows of others go out at once, and its own when it commits.

Every ``ACCESS_CHECK_SECONDS`` the relay asks, in one query for all its sockets, whether each
still has access (``qa.selectors.live_access``): a socket whose access ended is closed, one
whose role changed gets a new snapshot and the events of its new role.

Each socket has a bounded queue. A socket that falls more than ``MAX_QUEUED`` messages behind
(a client that does not read) is sent ``resync`` and closed: the server's memory stays flat.
"""

import asyncio
import json
import logging
import weakref
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection

from . import live
from .models import LiveEvent
from .selectors import LiveAccess, SocketKey, live_access

logger = logging.getLogger(__name__)

# How often the outbox is read: the delay a submission waits, at most, before it goes out.
POLL_SECONDS = 0.1
# How often every socket's access is checked: a deactivated member or a logged-out session
# stops receiving within this.
ACCESS_CHECK_SECONDS = 2.0
# While the database fails, read it this often (and log the failure once).
RETRY_SECONDS = 1.0
# Rows read at most per poll; the rest come at the next one.
READ_LIMIT = 5000
# Messages a socket may have waiting; past this it is told to resync and closed.
MAX_QUEUED = 1000

APPLICATION_NAME = "assay live relay"

# Close codes a client can act on (README, "Live events"). A socket refused when it connects is
# accepted first and then closed with one, so that the code reaches the client.
CLOSE_BAD_REQUEST = 4400  # a malformed query: a parameter twice, a cursor that is no id
CLOSE_UNAUTHENTICATED = 4401  # no session and no ticket, or a ticket forged, expired or elsewhere
CLOSE_ACCESS_ENDED = 4403  # a membership that no longer gives access, at connect or later
CLOSE_NOT_FOUND = 4404  # no organization of the user's has that slug
CLOSE_TOO_SLOW = 4408  # the client fell too far behind (after ``resync``)

_TABLE = LiveEvent._meta.db_table
_COLUMNS = "id, organization_id, member_id, staff, type, data, created_at, xid"
# The snapshot and the rows in one statement, so that both see the same committed state. The
# parameters: the cursor; the transactions running at the last read whose rows may be below
# it, with the id above which rows of theirs are still unread; those running the read before.
_READ_SQL = f"""
    SELECT pg_current_snapshot()::text, e.*
    FROM (VALUES (1)) AS one(x)
    LEFT JOIN LATERAL (
        SELECT {_COLUMNS} FROM {_TABLE} WHERE id IN (
            (SELECT id FROM {_TABLE} WHERE id > %s ORDER BY id LIMIT %s)
            UNION ALL
            (SELECT id FROM {_TABLE} WHERE xid = ANY(%s::bigint[]) AND id > %s
             ORDER BY id LIMIT %s)
            UNION ALL
            (SELECT id FROM {_TABLE} WHERE xid = ANY(%s::bigint[]) ORDER BY id LIMIT %s)
        )
        ORDER BY id LIMIT %s
    ) e ON true
"""  # noqa: S608
_START_SQL = f"SELECT pg_current_snapshot()::text, (SELECT max(id) FROM {_TABLE})"  # noqa: S608
_CATCH_UP_SQL = f"""
    SELECT {_COLUMNS} FROM {_TABLE}
    WHERE id > %s AND id <= %s AND organization_id = %s AND (staff AND %s OR member_id = %s)
    ORDER BY id LIMIT %s
"""  # noqa: S608
_OLDEST_SQL = f"SELECT min(id) FROM {_TABLE}"  # noqa: S608


def _running(snapshot: str) -> frozenset[int]:
    """The transaction ids running in a ``pg_snapshot``'s text form ``xmin:xmax:xip,...``."""
    xip = snapshot.split(":")[2]
    return frozenset(int(xid) for xid in xip.split(",") if xid)


@dataclass(frozen=True)
class Row:
    id: int
    organization_id: int
    member_id: int | None
    staff: bool
    message: dict

    @classmethod
    def read(cls, values) -> "Row":
        id_, organization_id, member_id, staff, type_, data, created_at, _xid = values
        # Django has psycopg hand jsonb over as text: its JSON fields decode it themselves.
        data = json.loads(data) if isinstance(data, str) else data
        message = live.message(type_, data, at=created_at) | {"id": id_}
        return cls(id_, organization_id, member_id, staff, message)


class LiveSocket:
    """One open WebSocket as the relay sees it: its access, its queue, its sequence numbers.

    ``send`` and ``close`` are the consumer's. Messages leave in the order queued, each with
    the next ``seq``; a close is queued like a message, after what precedes it.
    """

    def __init__(
        self,
        *,
        key: SocketKey,
        access: LiveAccess,
        organization: str,
        send: Callable[[dict], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        max_queued: int | None = None,
    ):
        self.key, self.access, self.organization = key, access, organization
        self._send, self._close = send, close
        self._max_queued = MAX_QUEUED if max_queued is None else max_queued
        self._queue: deque[dict | int] = deque()
        self._ready = asyncio.Event()
        self._seq = 0
        self.closing = False
        self._sender: asyncio.Task | None = None

    def covers(self, row: Row) -> bool:
        return row.organization_id == self.access.organization_id and (
            (row.staff and self.access.staff) or row.member_id == self.access.member_id
        )

    def snapshot(self, cursor: int) -> dict:
        return live.message(
            live.SNAPSHOT,
            {
                "organization": self.organization,
                "role": self.access.role,
                "member": self.access.member_id,
                "cursor": cursor,
            },
        )

    def push(self, message: dict) -> None:
        """Queue a message; a socket too far behind gets ``resync`` and is closed instead."""
        if self.closing:
            return
        if len(self._queue) >= self._max_queued:
            self._queue.clear()
            self._queue.append(live.message(live.RESYNC, {"reason": "too_slow"}))
            self.end(CLOSE_TOO_SLOW)
            return
        self._queue.append(message)
        self._ready.set()

    def end(self, code: int) -> None:
        """Close once what is queued has been sent."""
        if not self.closing:
            self.closing = True
            self._queue.append(code)
            self._ready.set()

    def start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._drain())

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
                await self._send(item | {"seq": self._seq})
            self._ready.clear()


@dataclass
class _Cursor:
    """Where the relay stands in the outbox (see the module docstring)."""

    last: int = 0
    # Transactions running at an earlier read, and the id up to which their rows were read.
    behind: frozenset[int] = frozenset()
    behind_from: int = 0
    # Transactions running at the last read.
    running: frozenset[int] = frozenset()
    started: bool = False


class Relay:
    """The outbox reader of one event loop; see the module docstring."""

    def __init__(self) -> None:
        self._sockets: set[LiveSocket] = set()
        self._lock = asyncio.Lock()
        self._cursor = _Cursor()
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._failing = False

    # -- the database, on the relay's own thread and connection ----------------------------

    async def _db(self, function: Callable[..., Any], *args) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="live-relay")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, _on_fresh_connection, function, *args
        )

    # -- sockets --------------------------------------------------------------------------

    async def join(self, socket: LiveSocket, *, after: int | None) -> None:
        """Start feeding ``socket``: a snapshot, then what it missed since ``after``, then live.

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
            missed: list[Row] | str = []
            if after is not None and after < cursor:
                missed = await self._db(
                    _catch_up, after, cursor, access.organization_id, access.staff,
                    access.member_id,
                )  # fmt: skip
            socket.start()
            socket.push(socket.snapshot(cursor))
            if isinstance(missed, str):
                socket.push(live.message(live.RESYNC, {"reason": missed}))
            else:
                for row in missed:
                    socket.push(row.message)
            self._sockets.add(socket)
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run())

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
            wait = POLL_SECONDS
            try:
                async with self._lock:
                    if not self._sockets:
                        # Under the lock: a socket joining now starts a new run.
                        await self._shut_down()
                        return
                    await self._read()
                if loop.time() >= next_check:
                    next_check = loop.time() + ACCESS_CHECK_SECONDS
                    await self._check_access()
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
            await asyncio.sleep(wait)

    async def _shut_down(self) -> None:
        executor, self._executor = self._executor, None
        self._cursor, self._task = _Cursor(), None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, _close_connection)
            executor.shutdown(wait=False)

    async def _read(self) -> None:
        state = self._cursor
        snapshot, rows = await self._db(_read, state)
        running = _running(snapshot)
        if len(rows) < READ_LIMIT:
            self._cursor = _Cursor(last=max([state.last, *(r.id for r in rows)]), running=running,
                                   started=True)  # fmt: skip
        else:
            # Rows above the last one read are unread: keep asking for those of every
            # transaction that was running, above it.
            last = rows[-1].id
            self._cursor = _Cursor(
                last=max(state.last, last),
                behind=state.behind | state.running,
                behind_from=last,
                running=running,
                started=True,
            )
        if rows:
            self._deliver(rows)

    def _deliver(self, rows: list[Row]) -> None:
        by_organization: dict[int, list[LiveSocket]] = defaultdict(list)
        for socket in self._sockets:
            by_organization[socket.access.organization_id].append(socket)
        for row in rows:
            for socket in by_organization.get(row.organization_id, ()):
                if socket.covers(row):
                    socket.push(row.message)

    async def _check_access(self) -> None:
        sockets = [socket for socket in self._sockets if not socket.closing]
        found = await self._db(live_access, [socket.key for socket in sockets])
        for socket, access in zip(sockets, found, strict=True):
            if access is None:
                socket.end(CLOSE_ACCESS_ENDED)
            elif access != socket.access:
                socket.access = access
                socket.push(socket.snapshot(self._cursor.last))


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
    return _Cursor(last=last or 0, running=_running(snapshot), started=True)


def _read(state: _Cursor) -> tuple[str, list[Row]]:
    with connection.cursor() as cursor:
        cursor.execute(
            _READ_SQL,
            [
                *(state.last, READ_LIMIT),
                *(list(state.behind), state.behind_from, READ_LIMIT),
                *(list(state.running), READ_LIMIT),
                READ_LIMIT,
            ],
        )
        found = cursor.fetchall()
    return found[0][0], [Row.read(values[1:]) for values in found if values[1] is not None]


def _catch_up(
    after: int, upto: int, organization_id: int, staff: bool, member_id: int
) -> list[Row] | str:
    """The rows a socket missed since ``after``, or why it must resync instead: the outbox no
    longer keeps them all (``cursor_expired``), or they are more than a socket may queue
    (``too_far_behind``)."""
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_SQL)
        (oldest,) = cursor.fetchone()
        # Rows up to ``upto`` were written; if the oldest kept is above ``after + 1``, some
        # the client never saw may have been pruned.
        if oldest is None or oldest > after + 1:
            return "cursor_expired"
        cursor.execute(_CATCH_UP_SQL, [after, upto, organization_id, staff, member_id,
                                       MAX_QUEUED + 1])  # fmt: skip
        rows = [Row.read(values) for values in cursor.fetchall()]
    return "too_far_behind" if len(rows) > MAX_QUEUED else rows


_relays: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Relay]" = weakref.WeakKeyDictionary()


def relay() -> Relay:
    """The relay of the running event loop (one per ASGI process)."""
    loop = asyncio.get_running_loop()
    found = _relays.get(loop)
    if found is None:
        found = _relays[loop] = Relay()
    return found
