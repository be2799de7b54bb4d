"""Domain events that ``tasks`` publishes for other apps, after the transaction commits.

``tasks`` never imports ``qa``; ``qa`` subscribes in its ``AppConfig.ready()``. The events:

``annotation_submitted(annotation_id: int)``
    An annotator's submission was stored. Sent once per annotation.

``import_progressed(import_id: int)``
    An import job started, wrote a batch of rows, or finished (``status`` says which).

A handler that fails is logged and does not affect the publisher or other handlers: the
submission is already committed, and derived work catches up from the database.
"""

import logging
from collections import defaultdict
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

ANNOTATION_SUBMITTED = "annotation_submitted"
IMPORT_PROGRESSED = "import_progressed"
EVENTS = frozenset({ANNOTATION_SUBMITTED, IMPORT_PROGRESSED})

_handlers: dict[str, list[Callable[..., None]]] = defaultdict(list)


def subscribe(event: str, handler: Callable[..., None]) -> None:
    """Call ``handler(**payload)`` after every commit that publishes ``event``."""
    if event not in EVENTS:
        raise ValueError(f"Unknown event {event!r}")
    if handler not in _handlers[event]:
        _handlers[event].append(handler)


def handlers(event: str) -> list[Callable[..., None]]:
    return list(_handlers[event])


def publish(event: str, **payload) -> None:
    """Deliver ``event`` to its handlers once the current transaction commits."""
    if event not in EVENTS:
        raise ValueError(f"Unknown event {event!r}")

    def deliver() -> None:
        for handler in _handlers[event]:
            try:
                handler(**payload)
            except Exception:
                # The write is committed; derived work is recomputed later from the database.
                logger.exception("Handler %r failed for %s %r", handler, event, payload)

    transaction.on_commit(deliver)
