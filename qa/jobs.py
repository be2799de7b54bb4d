"""Celery jobs of quality: thin, safe to run twice."""

from celery import shared_task

from . import gold, live, rules, stats, task_agreement


@shared_task(name="qa.prune_live_events")
def prune_live_events() -> int:
    """Delete live events older than the outbox keeps them (``qa.live.RETENTION``)."""
    return live.live_events_prune()


@shared_task(name="qa.rescore_gold")
def rescore_gold(task_id: int) -> int:
    """Score a gold task's past submissions against its current answer."""
    return gold.gold_rescore(task_id=task_id)


@shared_task(name="qa.catch_up_gold_rescores")
def catch_up_gold_rescores() -> int:
    """Run again the gold rescores still due after their job failed or was lost."""
    return gold.gold_rescores_catch_up()


@shared_task(name="qa.evaluate_quality_rules")
def evaluate_quality_rules(annotator_id: int, project_id: int) -> int:
    """Evaluate the quality rules that watch an annotator in a project (``qa.rules``);
    return how many fired."""
    return rules.quality_rules_evaluate(annotator_id=annotator_id, project_id=project_id)


@shared_task(name="qa.compute_task_agreement")
def compute_task_agreement(task_id: int) -> float | None:
    """Compute a complete task's agreement and consensus, and add a seat where they disagree
    (``qa.task_agreement``); return the agreement. Safe to run twice: the second finds its
    work done."""
    agreement = task_agreement.task_agreement_compute(task_id=task_id)
    return agreement.value if agreement else None


@shared_task(name="qa.catch_up_task_agreements")
def catch_up_task_agreements() -> int:
    """Compute the agreements that a refused or lost job left missing; return how many."""
    return task_agreement.task_agreements_catch_up()


@shared_task(name="qa.roll_up_claims")
def roll_up_claims() -> int:
    """Count the claims made since the last run into the hourly stats (``qa.stats``); return
    how many. Safe to run twice or at once: runs take turns on the cursor's row."""
    return stats.claims_roll_up()
