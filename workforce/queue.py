"""One way to queue a job: after the transaction commits, and never lost to a refusing broker.

``enqueue(job, *ids)`` sends the job's message once the current transaction commits. When the
broker refuses it (down, unreachable, out of memory, read-only), the job is recorded as a
``PendingJob`` and the request that queued it goes on: its own write is already committed, and
the job only derives work from rows. The beat job ``workforce.requeue_pending_jobs`` sends
pending jobs again once the broker takes messages, so an outage delays derived work and loses
none. Every job sent this way must be safe to run twice (DESIGN: jobs take ids, re-fetch their
rows and are guarded by state): a publish whose answer timed out may have reached the broker
all the same, and the requeue sends it again.

A refusal costs the caller little. A publish is tried once (redis-py reconnects a dropped
connection by itself): a broker that refuses connections fails it in a few milliseconds, one
that cannot be reached or never answers in the socket timeouts set in ``config/celery.py``
(1 s to connect, 2 s to answer); a Redis that hangs (stopped, its connections open) is the
latter, about 2 s (``tests/test_broker_faults.py``). Celery's own retries wait 0.6 s on a refused connection, and
``retry=False`` about 6 s: it falls back to the connection's retries, 2 s apart.

``run_after_commit(job, *ids)`` runs a job of a few statements in the process that caused it,
after commit, where its message and a worker's handling of it would cost several times the job
itself; a failure there sends it to the workers as ``enqueue`` does.

With eager jobs (the embedded demo, most tests) the job runs in-process after commit instead.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from celery import Task
from celery.exceptions import NotRegistered
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from config.celery import app

from .locks import lock_due_pending_jobs
from .models import PendingJob

logger = logging.getLogger(__name__)

# kombu turns what the transport raises into OperationalError; redis-py's own errors are listed
# too, should one escape that wrapping.
BROKER_ERRORS = (OperationalError, RedisError)
# One attempt per publish; see the module docstring for what a refusal then costs.
PUBLISH_RETRY_POLICY = {"max_retries": 0}
REQUEUE_BATCH_SIZE = 100
# A pending job the broker refuses again waits twice as long each time, up to the cap. The
# requeue job only runs when the broker delivered it, so a refusal then is a broker that comes
# and goes, or a message it will not take at all.
RETRY_AFTER = timedelta(seconds=30)
MAX_RETRY_AFTER = timedelta(minutes=10)


def enqueue(job: Task, *args: int) -> None:
    """Send ``job(*args)`` to the workers once the current transaction commits.

    Outside a transaction it is sent at once. A refused message becomes a ``PendingJob``; this
    never raises for a broker that is down.
    """
    _ids_checked(job, args)
    transaction.on_commit(lambda: _send(job, list(args)))


def run_after_commit(job: Task, *args: int) -> None:
    """Run ``job(*args)`` in this process once the current transaction commits, instead of
    sending it: for a job of a few statements that follows often (the quality rules after each
    scored gold submission), whose message and worker cost several times the job itself.

    The caller's committed work stands whatever happens next: should the job fail here (a
    timeout, a lost connection, a bug), it is logged and sent to the workers as ``enqueue``
    sends it. Outside a transaction it runs at once.
    """
    _ids_checked(job, args)
    transaction.on_commit(lambda: _run_here(job, list(args)))


def _run_here(job: Task, args: list[int]) -> None:
    try:
        job.run(*args)
    except Exception:
        logger.exception("%s%r failed in this process; it goes to the workers", job.name, args)
        _send(job, args)


def _ids_checked(job: Task, args: tuple) -> None:
    if not all(isinstance(arg, int) for arg in args):
        raise TypeError(f"Jobs take ids: {job.name}{args!r}")


def _publish(job: Task, args: list[int]) -> None:
    job.apply_async(args, retry=True, retry_policy=PUBLISH_RETRY_POLICY)


def _send(job: Task, args: list[int]) -> None:
    try:
        _publish(job, args)
    except BROKER_ERRORS as exc:
        logger.warning("The broker refused %s%r; it waits as pending work: %s", job.name, args, exc)
        _record_refused(job.name, args, exc)


def _record_refused(name: str, args: list[int], exc: Exception) -> None:
    """Keep a refused job in a transaction of its own (the caller's has committed)."""
    with transaction.atomic():
        # One row per job and arguments: a job already waiting only learns the latest reason.
        PendingJob.objects.bulk_create(
            [PendingJob(name=name, args=args, error=str(exc)[:2000])],
            update_conflicts=True,
            unique_fields=["name", "args"],
            update_fields=["error", "updated_at"],
        )


def catch_up(items: Iterable[int], run: Callable[[int], object], failed: str) -> int:
    """Run a catch-up's ``run`` on each item; return how many it ran (``run`` returns False
    to pass one over). A failure is logged (``failed``, given the item) and passed, so that
    it holds up no other: the next catch-up finds it again."""
    done = 0
    for item in items:
        try:
            ran = run(item)
        except Exception:
            logger.exception(failed, item)
        else:
            done += ran is not False
    return done


def pending_jobs_requeue(*, batch_size: int = REQUEUE_BATCH_SIZE) -> int:
    """Send due pending jobs to the broker again; return how many it accepted.

    A row is deleted in the transaction that locked it once the broker accepted its message.
    Should that transaction not commit, the row is sent again later and the job runs twice,
    which every job allows. The first refusal ends the run: that row backs off, the others
    stay due for the next run.
    """
    # Every app's jobs module, as a worker imports them: a job's name finds its job.
    app.loader.import_default_modules()
    sent = 0
    while True:
        with transaction.atomic():
            now = timezone.now()
            batch = lock_due_pending_jobs(now=now, limit=batch_size)
            if not batch:
                return sent
            accepted, refused = [], None
            for pending in batch:
                try:
                    _publish(app.tasks[pending.name], pending.args)
                except NotRegistered as exc:
                    # A job renamed or removed since it was refused: keep it for someone to see.
                    logger.error("Pending job %s has no job of that name", pending)
                    _back_off(pending, now, f"No job is registered as {exc}.", wait=MAX_RETRY_AFTER)
                except BROKER_ERRORS as exc:
                    refused = pending
                    logger.warning("The broker refused pending job %s again: %s", pending, exc)
                    _back_off(pending, now, str(exc), wait=_retry_after(pending.attempts))
                    break
                else:
                    accepted.append(pending.pk)
            PendingJob.objects.filter(pk__in=accepted).delete()
            sent += len(accepted)
        if refused is not None:
            return sent


def _retry_after(attempts: int) -> timedelta:
    return min(RETRY_AFTER * 2 ** (attempts - 1), MAX_RETRY_AFTER)


def _back_off(pending: PendingJob, now: datetime, error: str, *, wait: timedelta) -> None:
    pending.attempts += 1
    pending.error = error[:2000]
    pending.next_attempt_at = now + wait
    pending.save(update_fields=["attempts", "error", "next_attempt_at", "updated_at"])
