"""Domain events that ``tasks`` publishes for other apps.

``tasks`` never imports ``qa``; ``qa`` subscribes in its ``AppConfig.ready()``. The events:

``annotation_submitted(annotation_id: int, gold: bool, reacts)``
    An annotator's submission was stored, with work left for its transaction: published inside
    it, once per annotation; ``gold`` says its task is gold (to be scored in that transaction).
    ``reacts`` is what the statement storing a fresh submission answered for the project
    (``SubmittedSql.reacts``); None for a resubmission, stored without its records.

    Its subscriber's writes for every fresh submission are SQL (``submitted_sql_set``), part of
    the statement that stores it. A plain submission, one ``reacts`` says nothing is left to do
    for (a fresh one of a regular task), is that one statement, its own transaction, and the
    event is not published for it.

``gold_answer_set(task_id: int)``
    A task was made gold, or its gold answer corrected: work submitted on it before is to be
    scored against the answer it has now.

``import_progressed(import_id: int)``
    An import job started, wrote a batch of rows, or finished (``status`` says which).

``task_completed(task_id: int, seats: int)``
    A regular task's last seat was submitted: it has reached its overlap (``seats``, the seats it
    has), and the work of its annotators can be compared and merged. Its subscribers run after the submission commits
    (``AFTER_COMMIT``). A task given another seat (a raised overlap, dynamic overlap) completes,
    and publishes it, again.

A handler runs in one of two phases, chosen when it subscribes:

``IN_TRANSACTION``
    At once, inside the publisher's transaction, on its connection: what the handler writes
    commits or rolls back with the change that caused it (the live-event outbox, a gold score).
    A handler that raises fails the whole write. ``publish()`` must then be called inside
    ``transaction.atomic()``; it refuses otherwise, since nothing would be atomic.

``AFTER_COMMIT`` (the default)
    Once the publisher's transaction commits. A handler that fails is logged and does not
    affect the publisher or other handlers: the write is already committed, and derived work
    catches up from the database.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction

logger = logging.getLogger(__name__)

ANNOTATION_SUBMITTED = "annotation_submitted"
IMPORT_PROGRESSED = "import_progressed"
GOLD_ANSWER_SET = "gold_answer_set"
TASK_COMPLETED = "task_completed"
EVENTS = frozenset({ANNOTATION_SUBMITTED, IMPORT_PROGRESSED, GOLD_ANSWER_SET, TASK_COMPLETED})

IN_TRANSACTION = "in_transaction"
AFTER_COMMIT = "after_commit"
PHASES = (IN_TRANSACTION, AFTER_COMMIT)

# After-commit handlers, per event; in-transaction ones apart, so that each phase is one list.
_handlers: dict[str, list[Callable[..., None]]] = defaultdict(list)
_in_transaction: dict[str, list[Callable[..., None]]] = defaultdict(list)


def _registry(phase: str) -> dict[str, list[Callable[..., None]]]:
    if phase not in PHASES:
        raise ValueError(f"Unknown phase {phase!r}")
    return _in_transaction if phase == IN_TRANSACTION else _handlers


def subscribe(event: str, handler: Callable[..., None], *, phase: str = AFTER_COMMIT) -> None:
    """Call ``handler(**payload)`` whenever ``event`` is published, in ``phase``."""
    if event not in EVENTS:
        raise ValueError(f"Unknown event {event!r}")
    registry = _registry(phase)
    if handler not in registry[event]:
        registry[event].append(handler)


def handlers(event: str, *, phase: str = AFTER_COMMIT) -> list[Callable[..., None]]:
    return list(_registry(phase)[event])


def publish(event: str, **payload) -> None:
    """Run ``event``'s in-transaction handlers now, and its other handlers after commit."""
    if event not in EVENTS:
        raise ValueError(f"Unknown event {event!r}")
    in_transaction = _in_transaction[event]
    if in_transaction:
        if not connection.in_atomic_block:
            raise RuntimeError(
                f"{event} has in-transaction handlers: publish it inside transaction.atomic()."
            )
        for handler in in_transaction:
            # Not caught: a handler that fails fails the write that published the event.
            handler(**payload)

    def deliver() -> None:
        for handler in _handlers[event]:
            try:
                handler(**payload)
            except Exception:
                # The write is committed; derived work is recomputed later from the database.
                logger.exception("Handler %r failed for %s %r", handler, event, payload)

    if _handlers[event]:
        transaction.on_commit(deliver)


@dataclass(frozen=True)
class SubmittedSql:
    """The SQL side of ``annotation_submitted``'s subscriber, set by ``QaConfig.ready()``
    (``tasks`` never imports ``qa``): quality's live event and the annotator's hour of stats, and
    whether quality reacts to a submission in a project.

    ``records(stored)``: given the name of a query of the submissions stored, one row each
    (``id``, ``project_id``, ``task_id``, ``annotator_id``, ``duration_seconds``,
    ``submitted_at``, and ``leased_at``, when its assignment's lease started), the common table
    expressions that write their records, named apart from ``project_reacts``, ``submit`` and
    ``stored``.

    ``reacts(project)``: given an SQL expression of a project's id, an SQL expression telling
    whether a fresh submission of a regular task there has work left for the event's handlers,
    in its transaction (quality: the project has review layers).
    """

    records: Callable[[str], str]
    reacts: Callable[[str], str]


_submitted_sql: SubmittedSql | None = None


def submitted_sql_set(sql: SubmittedSql) -> None:
    global _submitted_sql
    _submitted_sql = sql


def submitted_sql() -> SubmittedSql | None:
    return _submitted_sql


def submitted_reacts(project: str) -> str:
    """``SubmittedSql.reacts`` of ``project`` (an SQL expression of its id); always, when no app
    said."""
    return "TRUE" if _submitted_sql is None else _submitted_sql.reacts(project)
