"""Celery jobs of quality: thin, safe to run twice."""

from celery import shared_task

from . import gold, live, rules


@shared_task(name="qa.prune_live_events")
def prune_live_events() -> int:
    """Delete live events older than the outbox keeps them (``qa.live.RETENTION``)."""
    return live.live_events_prune()


@shared_task(name="qa.rescore_gold")
def rescore_gold(task_id: int) -> int:
    """Score a gold task's past submissions against its current answer."""
    return gold.gold_rescore(task_id=task_id)


@shared_task(name="qa.evaluate_quality_rules")
def evaluate_quality_rules(annotator_id: int, project_id: int) -> int:
    """Evaluate the quality rules that watch an annotator in a project (``qa.rules``);
    return how many fired."""
    return rules.quality_rules_evaluate(annotator_id=annotator_id, project_id=project_id)
