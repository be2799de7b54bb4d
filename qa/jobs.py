"""Celery jobs of quality: thin, safe to run twice."""

from celery import shared_task

from . import live


@shared_task(name="qa.prune_live_events")
def prune_live_events() -> int:
    """Delete live events older than the outbox keeps them (``qa.live.RETENTION``)."""
    return live.live_events_prune()
