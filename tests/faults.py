"""Faults the hardening tests inject into real processes: a Redis of the test's own that can be
hung (``SIGSTOP``), resumed, or killed, a broker address of the test's choosing, and a
PostgreSQL session holding a lock."""

import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from config import embedded
from config.celery import app
from tests.helpers import database_url


class PrivateRedis:
    """A redis-server only this test talks to."""

    def __init__(self, server: embedded.Redis):
        self.server = server

    def url(self, db: int = 0) -> str:
        return self.server.url(db)

    def hang(self) -> None:
        """Stop answering without refusing: connections open, nothing comes back."""
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Stop the server for good; calling it again does nothing."""
        if self.server.process.poll() is None:
            self.resume()
            self.server.stop()


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    with tempfile.TemporaryDirectory(prefix="assay-redis-") as directory:
        redis = PrivateRedis(embedded.redis_start(Path(directory)))
        try:
            yield redis
        finally:
            redis.kill()


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    with private_redis() as redis:
        yield redis


@contextmanager
def lock_held(sql: str, params: tuple = ()) -> Iterator[psycopg.Connection]:
    """Run ``sql`` (a ``SELECT ... FOR UPDATE``, a ``LOCK TABLE``) in a transaction of another
    session, as psql would, and hold its locks until the block ends."""
    with psycopg.connect(database_url(), autocommit=False) as connection:
        connection.execute(sql, params)
        try:
            yield connection
        finally:
            connection.rollback()


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Publish this process's jobs to ``url`` until the block ends."""

    def use(broker_url: str) -> None:
        app.conf.broker_url = broker_url
        # Celery keeps its producers and their connections per process: drop them, so the next
        # publish connects to the broker now configured.
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url
    use(url)
    try:
        yield
    finally:
        use(saved)
