"""Serve Assay's REST API and pages over WSGI with granian, as the README deploys it.

``python -m config.web --host 0.0.0.0 --port 8000``

granian reads and writes HTTP in Rust and holds every client's kept-alive connection there, so
a process's Python threads only run Django, and any of them takes the next request of any
connection. One process per core (``WEB_PROCESSES``), four threads in each (``WEB_THREADS``): a
request spends most of its time waiting on PostgreSQL, when its thread lets the others run.
Each thread holds its own database connection.

Measured with ``bench/loop.py --baseline`` on two cores, 8 annotators claiming and submitting
without a pause, against gunicorn 27 with the same processes and threads (``gthread``, which
parses HTTP in Python and keeps a connection on the process that accepted it): 0.89-1.51x the
cycles per second in ten alternating pairs over two windows (median 1.13x; the windows' medians
1.17x and 1.16x), at 3.9 and 4.3 against 4.6 and 5.0 ms of web CPU per cycle. That shape, one
process per core with four threads, had served 1.2-1.9x the loop of two sync workers per core
and 1.1-1.4x that of four processes of four threads, on gunicorn.

No request is cut short: the all-or-nothing check of a large upload and the streamed export of a
large project take as long as they need. The request body reaches Django as it arrives and the
response leaves as Django writes it, neither held whole in memory.
"""

import argparse
import os
import signal
import threading
import time

from granian import Granian
from granian.constants import Interfaces


def processes() -> int:
    return int(os.environ.get("WEB_PROCESSES", os.cpu_count() or 1))


def threads() -> int:
    """Per process."""
    return int(os.environ.get("WEB_THREADS", "4"))


# What granian itself puts in every request's environ beside the request's own keys.
_SERVER_KEYS = frozenset({"GATEWAY_INTERFACE", "SCRIPT_NAME", "SERVER_SOFTWARE"})
# The environ's keys that describe the request (PEP 3333), besides its headers (``HTTP_*``).
_REQUEST_KEYS = frozenset(
    {"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
     "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR"}
)  # fmt: skip


def named_as_request(names) -> list[str]:
    """The environment variables granian would present as part of every request: it starts each
    request's environ from the process's environment, so ``HTTP_X_FORWARDED_FOR`` set there
    would be a header of every request that did not send one."""
    return sorted(name for name in names if name.startswith("HTTP_") or name in _REQUEST_KEYS)


def request_only(app, inherited: frozenset[str]):
    """``app`` called with the request's environ only, without the process's environment
    (``inherited``), which granian puts in every environ: the database's address, the secret key
    and the rest would otherwise be part of every request's ``META``, and of what is logged or
    reported of it."""

    def application(environ, start_response):
        for key in inherited:
            environ.pop(key, None)
        return app(environ, start_response)

    return application


def application():
    """The WSGI application of one of the server's processes (granian calls this in each): the
    request's environ only, in a process that ends when the main process is gone."""
    threading.Thread(
        target=_end_with, args=(os.getppid(),), name="end-with-main", daemon=True
    ).start()
    from config.wsgi import application

    # The environment as granian reads it, once this returns; none is named as a request's key
    # (``main`` refuses to start otherwise).
    return request_only(application, frozenset(os.environ) - _SERVER_KEYS)


def _end_with(main: int) -> None:
    """Stop this process, as its main process would, once that one is gone: killed outright, it
    would otherwise leave its processes serving the port, out of any supervisor's sight."""
    while os.getppid() == main:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def server(host: str, port: int, log_level: str = "info") -> Granian:
    """The server as deployed: ``processes()`` processes of ``threads()`` threads."""
    return Granian(
        "config.web:application",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=processes(),
        blocking_threads=threads(),
        # WebSockets are the ASGI server's (config/asgi.py).
        websockets=False,
        # A process that dies (killed, out of memory) is started again; the others serve on.
        respawn_failed_workers=True,
        log_level=log_level,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    if clashing := named_as_request(os.environ):
        parser.error(
            f"unset {', '.join(clashing)} for the web server: every request would carry "
            "them as its own"
        )
    server(args.host, args.port, args.log_level).serve()


if __name__ == "__main__":
    main()
