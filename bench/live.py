"""Benchmark live delivery: dashboards on WebSockets while submissions pour in.

Run with `.venv/bin/python bench/live.py [--clients 100] [--rate 200] [--seconds 30]
[--source service|outbox] [--no-deflate]`. Creates a fresh PostgreSQL database
(``BENCH_DATABASE``, default ``assay_bench_live``; dropped at the end) with one bbox project,
``ANNOTATORS`` annotators on it and enough tasks, and one QA lead with a session per client.

One uvicorn process serves the app as the README runs it (``config.asgi``, no Redis: live
events travel through the outbox; ``--no-deflate`` adds ``--ws-per-message-deflate=false``).
``--clients`` dashboard sockets follow the project (``/ws/orgs/<slug>/?project=<id>``, the QA
lead's page), spread over ``--client-processes`` asyncio processes (uvloop) whose client is
the bench's own: the handshake (offering permessage-deflate, as browsers do), the server's
frames, pongs, and of each message its ``seq``, its type and the submissions it tells of, read
without decoding it; a WebSocket library and a full JSON decode per message would cost the
clients more than the server's sending them. Meanwhile ``--submitters`` processes submit at
``--rate`` a second for ``--seconds`` and note when each submission committed. With
``--source service`` they claim and submit through the service code the API calls
(``claim_next``, ``assignment_submit``), in process; on a loaded two-core machine that tops
out well below 200 a second beside the server under test, so ``--source outbox`` runs, on
annotations made ahead, only the submission's own statement for quality
(``qa.stats.submission_record``: its live event and its stats), one transaction each.

Printed: the submissions made and their rate; commit-to-receive latency p50 and p99 over
every (client, submission), the spread of the clients' own p50 and p99 (median and worst
client), and of it the part from a batch's making to its receipt; updates missed (a
submission some socket never received; a ``resync``, a gap in ``seq`` or a socket closed early
each count too); the batches, events and ``stats.updated`` the sockets received; uvicorn's
CPU (per batch sent, and during the load) and the clients'; uvicorn's resident memory with no
sockets, with every socket open before the load, and after it; and the machine's load
average. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import math
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE", "assay_bench_live")

import _setup

ANNOTATORS = 50
# The relay's tick: at most one batch a socket per tick.
TICK = 0.07
ORGANIZATION = "acme"
ROOT = Path(__file__).resolve().parent.parent
BOX = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 50, "h": 40}]}
# Sockets a client process opens at once while connecting.
CONNECTING = 25
# After the load: how long sockets may still receive, for the last tick and stats.
DRAIN_SECONDS = 3.0

# Targets from the issue.
P99_TARGET_MS = {100: 100.0, 1000: 250.0}


# -- seeding ------------------------------------------------------------------------------


def seed(clients: int, tasks: int, tmp: Path) -> dict:
    """The project, its annotators, and a QA lead's sessions (one per client socket)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from workforce.models import Role
    from workforce.services import member_create

    organization, manager = _setup.organization_seed(ORGANIZATION)
    project = _setup.project_seed(organization, manager, name="Live", max_concurrent_tasks=1000)
    annotators = _setup.annotators_seed(organization, project, prefix="ann", count=ANNOTATORS)
    rows = tmp / "tasks.jsonl"
    _setup.write_image_rows(rows, tasks)
    _setup.import_file(project, rows)
    lead = member_create(
        organization=organization, username="lead", role=Role.QA_LEAD, actor=None, password=None
    )
    user = get_user_model().objects.get(pk=lead.user_id)
    sessions = []
    for _ in range(clients):
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        sessions.append(session.session_key)
    return {
        "project": project.pk,
        "annotators": [a.pk for a in annotators],
        "sessions": sessions,
    }


# -- the server -----------------------------------------------------------------------------


def uvicorn_start(port: int, log: Path, deflate: bool) -> subprocess.Popen:
    env = {**os.environ, **_setup.django_environment(), "DB_TIMEOUTS": "web"}
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
               _setup.HOST, "--port", str(port), "--log-level", "warning"]  # fmt: skip
    if not deflate:
        command.append("--ws-per-message-deflate=false")
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    import http.client

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection(_setup.HOST, port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("uvicorn did not answer within 30 seconds")


class Usage:
    """A process's CPU seconds and resident memory, from /proc."""

    def __init__(self, pid: int):
        self.pid = pid

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


# -- submitters -----------------------------------------------------------------------------


# Annotations made ahead for ``--source outbox``: every task of the project submitted, by the
# annotators in turn, written as the bench's other seeds write them (no outbox row).
_ANNOTATE = """
WITH taken AS (
    UPDATE tasks_slot SET state = 'done' WHERE project_id = %(project)s
    RETURNING id, task_id, project_id
), numbered AS (
    SELECT taken.*, row_number() OVER (ORDER BY task_id) AS n FROM taken
), assignment AS (
    INSERT INTO tasks_assignment
        (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
    SELECT task_id, id, project_id, (%(annotators)s::bigint[])[1 + n %% %(count)s],
           'submitted', now() - interval '40 seconds', now()
    FROM numbered
    RETURNING id, task_id, project_id, annotator_id
)
INSERT INTO tasks_annotation
    (assignment_id, task_id, project_id, annotator_id, payload, version, payload_version,
     duration_seconds, submitted_at)
SELECT id, task_id, project_id, annotator_id, %(payload)s::jsonb, 1, 1, 30.0, now()
FROM assignment
RETURNING id
"""


def annotations_ahead(project: int, annotators: list[int]) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            _ANNOTATE,
            {"project": project, "annotators": annotators, "count": len(annotators),
             "payload": json.dumps(BOX)},
        )  # fmt: skip
        return sorted(row[0] for row in cursor.fetchall())


def submitter(
    source: str, work: list[int], rate: float, seconds: float, start_at: float, out: str
) -> None:
    """Submit at ``rate`` a second; write each annotation's commit time (``time.time()``) to
    ``out``. ``service``: claim and submit through the services, as the API does, by the
    annotators ``work`` names in turn. ``outbox``: for the annotations ``work`` names (made
    ahead), the submission's own statement for quality, alone in its transaction: its live
    event and its stats (``qa.stats.submission_record``)."""
    os.environ.update(_setup.django_environment())
    os.environ.setdefault("DB_TIMEOUTS", "web")
    import django

    django.setup()
    from django.db import transaction

    from qa.stats import submission_record
    from tasks.models import Assignment
    from tasks.services.claims import assignment_submit, claim_next
    from workforce.models import Annotator

    def by_service(i: int) -> int | None:
        claimed = claim_next(annotator=people[i % len(people)]).claimed
        if claimed is None:
            return None
        assignment = Assignment.objects.select_related("project", "task").get(
            pk=claimed.assignment_id
        )
        return assignment_submit(assignment=assignment, payload=BOX)[0].pk

    def by_outbox(i: int) -> int | None:
        if i >= len(work):
            return None
        with transaction.atomic():
            submission_record(work[i])
        return work[i]

    people = list(Annotator.objects.filter(pk__in=work)) if source == "service" else []
    submit = by_service if source == "service" else by_outbox
    committed: dict[int, float] = {}
    behind = 0.0
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(int(rate * seconds)):
        wait = start_at + i / rate - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            behind = max(behind, -wait)
        annotation = submit(i)
        if annotation is None:
            break
        committed[annotation] = time.time()
    Path(out).write_text(json.dumps({"committed": committed, "behind": behind}))


# -- clients --------------------------------------------------------------------------------

# What a client reads of a message without decoding it: its seq and type, the submissions its
# events tell of, and how many stats it carries. The server's text is compact but for each
# event's data, which is PostgreSQL's jsonb text (``"key": value``).
_HEAD = re.compile(rb'^\{"seq":(\d+),"type":"(\w+)"')
_SUBMITTED = re.compile(
    rb'"type":"annotation\.submitted","at":"[^"]*","id":\d+,"data":\{[^}]*?"annotation": (\d+)'
)
_STATS = re.compile(rb'"type":"stats\.updated"')


class _Socket(asyncio.Protocol):
    """A WebSocket client as small as a benchmark's needs: the handshake, server frames
    (permessage-deflate when the server takes it), pongs; each text message is handed to
    ``on_message`` with the time it arrived. A Python library's framing and a full JSON decode
    of every message cost more than the server's sending them."""

    def __init__(self, request: bytes, on_message, opened: asyncio.Future):
        self.request, self.on_message, self.opened = request, on_message, opened
        self.buffer = bytearray()
        self.inflate = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.opened.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.opened.set_exception(ConnectionError(head[:200]))
                self.transport.close()
                return
            if b"permessage-deflate" in head:
                self.inflate = zlib.decompressobj(wbits=-15)
            self.opened.set_result(None)
        now = time.time()
        buffer = self.buffer
        while len(buffer) >= 2:
            first, length = buffer[0], buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            opcode = first & 0x0F
            if opcode == 1:
                if first & 0x40:  # RSV1: compressed
                    payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
                self.on_message(payload, now)
            elif opcode == 9:  # ping: a pong, masked as a client's frames are
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
            elif opcode == 8:
                self.on_message(None, now)
                self.transport.close()
                return


def client(port: int, path: str, sessions: list[str], ready, go_home, out: str) -> None:
    """Open a socket per session and note when each submission reaches each of them."""
    import uvloop

    uvloop.run(_client(port, path, sessions, ready, go_home, out))


async def _client(port: int, path: str, sessions: list[str], ready, go_home, out: str) -> None:
    loop = asyncio.get_running_loop()
    received: dict[int, array.array] = {}
    problems = [0] * len(sessions)  # resyncs, gaps, early closes per socket
    seqs = [0] * len(sessions)
    counts = {"batches": 0, "events": 0, "stats": 0}
    sent: list[float] = []  # from a batch's making (its ``at``) to its receipt, seconds
    n = len(sessions)
    gate = asyncio.Semaphore(CONNECTING)
    sockets: list[_Socket] = []

    def on_message(index: int, payload: bytes | None, now: float) -> None:
        if payload is None:
            problems[index] += 1  # closed by the server
            return
        seq, kind = _HEAD.match(payload).groups()
        seq = int(seq)
        if seq != seqs[index] + 1 or kind != b"batch":
            problems[index] += seqs[index] > 0 or kind != b"snapshot"
        seqs[index] = seq
        if kind != b"batch":
            return
        counts["batches"] += 1
        at = payload.index(b'"at":"') + 6
        sent.append(
            now - datetime.fromisoformat(payload[at : payload.index(b'"', at)].decode()).timestamp()
        )
        submitted = _SUBMITTED.findall(payload)
        stats = len(_STATS.findall(payload))
        counts["events"] += len(submitted) + stats
        counts["stats"] += stats
        for annotation in submitted:
            annotation = int(annotation)
            times = received.get(annotation)
            if times is None:
                times = received[annotation] = array.array("d", [math.nan]) * n
            times[index] = now

    async def follow(index: int, session: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {_setup.HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            f"Origin: http://{_setup.HOST}\r\nCookie: sessionid={session}\r\n\r\n"
        ).encode()
        async with gate:
            opened = loop.create_future()
            _, protocol = await loop.create_connection(
                lambda: _Socket(request, lambda p, t: on_message(index, p, t), opened),
                _setup.HOST, port,
            )  # fmt: skip
            await asyncio.wait_for(opened, 120)
            sockets.append(protocol)
            # The snapshot: seq 1.
            while seqs[index] == 0:
                await asyncio.sleep(0.01)

    await asyncio.gather(*(follow(i, s) for i, s in enumerate(sessions)))
    ready.set()
    while not go_home.is_set():
        await asyncio.sleep(0.1)
    for protocol in sockets:
        protocol.transport.close()
    Path(out).write_text(
        json.dumps(
            {
                "received": {a: list(times) for a, times in received.items()},
                "problems": problems,
                "counts": counts,
                "sent": sent,
            }
        )
    )


# -- the run --------------------------------------------------------------------------------


def outbox_of_missed(submitted: list[dict], seen: list[dict]) -> list[tuple]:
    """The outbox rows of submissions that no socket of some client process received, with
    their neighbours: where a lost event stood."""
    committed = {int(a) for found in submitted for a in found["committed"]}
    missed = set()
    for found in seen:
        missed |= committed - {int(a) for a in found["received"]}
    if not missed:
        return []
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.id, e.xid, e.created_at, (e.data->>'annotation')::bigint, "
            "(SELECT array_agg(n.id || ':' || n.xid ORDER BY n.id) FROM qa_liveevent n "
            " WHERE n.id BETWEEN e.id - 3 AND e.id + 3) "
            "FROM qa_liveevent e WHERE e.type = 'annotation.submitted' "
            "AND (e.data->>'annotation')::bigint = ANY(%s) ORDER BY e.id",
            [sorted(missed)],
        )
        return cursor.fetchall()


def pct(values: list[float], q: float) -> float:
    return _setup.percentile(sorted(values), q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--client-processes", type=int, default=0, help="default: 1 per 500 sockets"
    )
    parser.add_argument("--submitters", type=int, default=2)
    parser.add_argument(
        "--source",
        choices=["service", "outbox"],
        default="service",
        help="what submits: claim and submit through the services, or only the submission's "
        "statement for quality (its live event and stats) on annotations made ahead",
    )
    parser.add_argument(
        "--no-deflate", action="store_true", help="serve without permessage-deflate"
    )
    args = parser.parse_args()
    processes = args.client_processes or max(1, math.ceil(args.clients / 500))
    total = int(args.rate * args.seconds)
    ctx = mp.get_context("spawn")

    with tempfile.TemporaryDirectory(prefix="assay-bench-live-") as tmp_, _setup.django_database():
        tmp = Path(tmp_)
        seeded = seed(args.clients, total + 1000, tmp)
        if args.source == "outbox":
            seeded["ahead"] = annotations_ahead(seeded["project"], seeded["annotators"])
        from django.db import connections

        connections.close_all()
        port = _setup.free_port()
        server = uvicorn_start(port, tmp / "uvicorn.log", deflate=not args.no_deflate)
        usage = Usage(server.pid)
        try:
            time.sleep(1)
            rss_idle = usage.rss_mb()
            path = f"/ws/orgs/{ORGANIZATION}/?project={seeded['project']}"
            ready = [ctx.Event() for _ in range(processes)]
            go_home = ctx.Event()
            shares = [seeded["sessions"][i::processes] for i in range(processes)]
            outs = [str(tmp / f"client-{i}.json") for i in range(processes)]
            started = time.monotonic()
            clients = [
                ctx.Process(target=client, args=(port, path, shares[i], ready[i], go_home, outs[i]))
                for i in range(processes)
            ]
            for process in clients:
                process.start()
            for event, process in zip(ready, clients, strict=True):
                while not event.wait(1):
                    if not process.is_alive():
                        raise RuntimeError(
                            "a client process died while connecting; uvicorn's log ends:\n"
                            + (tmp / "uvicorn.log").read_text()[-3000:]
                        )
            connect_seconds = time.monotonic() - started
            time.sleep(2)
            rss_before = usage.rss_mb()

            # Time for the submitters to start Django before the first submission is due.
            start_at = time.time() + 6
            work = seeded["annotators"] if args.source == "service" else seeded["ahead"]
            per = [work[i :: args.submitters] for i in range(args.submitters)]
            submit_outs = [str(tmp / f"submit-{i}.json") for i in range(args.submitters)]
            submitters = [
                ctx.Process(
                    target=submitter,
                    args=(
                        args.source,
                        per[i],
                        args.rate / args.submitters,
                        args.seconds,
                        start_at,
                        submit_outs[i],
                    ),
                )
                for i in range(args.submitters)
            ]
            for process in submitters:
                process.start()
            time.sleep(max(0.0, start_at - time.time()))
            meters = [Usage(process.pid) for process in clients]
            clients_start = sum(meter.cpu() for meter in meters)
            cpu_start, wall_start = usage.cpu(), time.monotonic()
            for process in submitters:
                process.join()
            load_wall = time.monotonic() - wall_start
            cpu_load = usage.cpu() - cpu_start
            clients_cpu = sum(meter.cpu() for meter in meters) - clients_start
            load_average = os.getloadavg()
            time.sleep(DRAIN_SECONDS)
            rss_after = usage.rss_mb()
            go_home.set()
            for process in clients:
                process.join(300)
            for process in [*submitters, *clients]:
                if process.exitcode != 0:
                    raise RuntimeError(f"{process.name} exited with {process.exitcode}")
            submitted = [json.loads(Path(out).read_text()) for out in submit_outs]
            seen = [json.loads(Path(out).read_text()) for out in outs]
            log_tail = (tmp / "uvicorn.log").read_text()[-3000:]
            outbox = outbox_of_missed(submitted, seen)
        finally:
            server.terminate()
            server.wait(15)

    committed: dict[int, float] = {}
    behind = 0.0
    for found in submitted:
        committed |= {int(a): t for a, t in found["committed"].items()}
        behind = max(behind, found["behind"])
    latencies: list[float] = []
    per_client_p50, per_client_p99 = [], []
    missed_updates = sockets_missing = problems = 0
    counts = {"batches": 0, "events": 0, "stats": 0}
    sent = sorted(x * 1000 for found in seen for x in found["sent"])
    missing_ids: set[int] = set()
    for found, share in zip(seen, shares, strict=True):
        received = {int(a): times for a, times in found["received"].items()}
        problems += sum(found["problems"])
        for name in counts:
            counts[name] += found["counts"][name]
        for index in range(len(share)):
            own = []
            missing = 0
            for annotation, at in committed.items():
                times = received.get(annotation)
                got = times[index] if times is not None else math.nan
                if math.isnan(got):
                    missing += 1
                    missing_ids.add(annotation)
                else:
                    own.append((got - at) * 1000)
            missed_updates += missing + found["problems"][index]
            sockets_missing += bool(missing)
            latencies += own
            if own:
                per_client_p50.append(pct(own, 0.5))
                per_client_p99.append(pct(own, 0.99))

    made = len(committed)
    # The submitters' own pace: from the first submission due to the last committed.
    submit_wall = max(committed.values(), default=start_at) - start_at
    print(f"sockets: {args.clients} in {processes} client process(es), connected in "
          f"{connect_seconds:.1f} s; permessage-deflate {'off' if args.no_deflate else 'on'}")  # fmt: skip
    print(f"submissions ({args.source}): {made} in {submit_wall:.1f} s = {made / max(submit_wall, 1e-9):.0f}/s "
          f"(target {args.rate:.0f}/s; submitters at most {behind * 1000:.0f} ms behind)")  # fmt: skip
    print(f"commit-to-receive over {len(latencies)} deliveries: p50 {pct(latencies, 0.5):.0f} ms, "
          f"p99 {pct(latencies, 0.99):.0f} ms, max {max(latencies, default=math.nan):.0f} ms")  # fmt: skip
    if per_client_p99:
        print(f"per client: p50 median {statistics.median(per_client_p50):.0f} ms, "
              f"worst {max(per_client_p50):.0f} ms; p99 median "
              f"{statistics.median(per_client_p99):.0f} ms, worst {max(per_client_p99):.0f} ms")  # fmt: skip
    print(f"of which from a batch's making to its receipt: p50 {pct(sent, 0.5):.0f} ms, "
          f"p99 {pct(sent, 0.99):.0f} ms")  # fmt: skip
    if missing_ids:
        last = max(committed.values())
        print("submissions some socket missed (id, seconds before the last commit): "
              + ", ".join(f"{a} ({last - committed[a]:.2f})" for a in sorted(missing_ids)[:20]))  # fmt: skip
    for row in outbox:
        print(f"  in the outbox: {row}")
    if log_tail.strip():
        print("uvicorn's log ends:\n" + log_tail)
    print(f"missed: {missed_updates} updates ({sockets_missing} sockets missing any; "
          f"{problems} resyncs, gaps or early closes)")  # fmt: skip
    sockets = max(1, args.clients)
    print(f"received per socket: {counts['batches'] / sockets:.0f} batches "
          f"({counts['batches'] / sockets / load_wall:.1f}/s during the load), "
          f"{counts['events'] / sockets:.0f} events, {counts['stats'] / sockets:.0f} stats.updated")  # fmt: skip
    messages = counts["batches"] or 1
    per_message = cpu_load / messages * 1e6
    print(f"uvicorn CPU per batch sent (reading, stats and sending included): {per_message:.0f} us;"
          f" at one batch a tick ({1 / TICK:.0f}/s) a core carries about "
          f"{1e6 / per_message * TICK:.0f} "
          "sockets")  # fmt: skip
    print(f"uvicorn CPU during the load: {cpu_load:.1f} s = {cpu_load / load_wall * 100:.0f} % "
          f"of one core; the client processes {clients_cpu / load_wall * 100:.0f} %")  # fmt: skip
    print(f"uvicorn RSS: {rss_idle:.0f} MB without sockets, {rss_before:.0f} MB with "
          f"{args.clients} open before the load, {rss_after:.0f} MB after it")  # fmt: skip
    print("load average during the load (1, 5, 15 min): "
          + ", ".join(f"{x:.2f}" for x in load_average) + f" on {os.cpu_count()} cores")  # fmt: skip
    target = P99_TARGET_MS.get(args.clients)
    if target is not None:
        p99 = pct(latencies, 0.99)
        verdict = "met" if p99 <= target and missed_updates == 0 else "NOT met"
        print(f"target p99 <= {target:.0f} ms and none missed: {verdict}")


if __name__ == "__main__":
    main()
