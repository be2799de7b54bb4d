"""Row locks for qa rows. Take them only through these helpers.

Order, whenever several are taken in one transaction: an exam attempt, a quality rule's state,
a quality action or a review item (each alone: no transaction takes two of them); then the
author's review accuracy row, which a verdict's upsert locks as it writes it; then the rows of
``workforce`` and ``tasks`` in their own order (``tasks/locks.py``): the annotator, the project
member, certifications, the slot, the assignment, the task (a rejection's rework). Starting an
attempt locks the annotator alone and only inserts an attempt, so it never waits for an
attempt's lock. A submission meeting its review layers only inserts review items and reads
review accuracy, never locks either.
"""

from .models import ExamAttempt, QualityAction, QualityRuleState, ReviewItem


def lock_exam_attempt(attempt_id: int) -> ExamAttempt:
    """Lock one attempt so its claims and submissions, and its scoring, serialise.

    Its exam, annotator and the annotator's member and organization are read along, not locked.
    """
    return (
        ExamAttempt.objects.select_for_update(of=("self",), no_key=True)
        .select_related(
            "exam__domain", "annotator__member__user", "annotator__member__organization"
        )
        .get(pk=attempt_id)
    )


def lock_rule_state(rule_id: int, annotator_id: int, project_id: int) -> QualityRuleState:
    """Create if need be, then lock, the state of a rule for one annotator in one project.

    The insert skips a row that exists (or that a concurrent evaluation is inserting: it waits
    for that one to commit); the lock then makes concurrent evaluations of the rule take turns.
    """
    QualityRuleState.objects.bulk_create(
        [QualityRuleState(rule_id=rule_id, annotator_id=annotator_id, project_id=project_id)],
        ignore_conflicts=True,
    )
    return QualityRuleState.objects.select_for_update(of=("self",), no_key=True).get(
        rule_id=rule_id, annotator_id=annotator_id, project_id=project_id
    )


def lock_quality_action(action_id: int) -> QualityAction:
    """Lock a quality action's row, so that two undos of it take turns."""
    locked = QualityAction.objects.select_for_update(of=("self",), no_key=True)
    return locked.select_related("organization").get(pk=action_id)


def lock_review_item(item_id: int) -> ReviewItem:
    """Lock a review item, so that two verdicts on it take turns (and a review claim, which
    skips locked rows, passes it by meanwhile). Its layer and its annotation, each with its
    project, are read along, not locked."""
    locked = ReviewItem.objects.select_for_update(of=("self",), no_key=True)
    return locked.select_related("layer__project", "annotation__project").get(pk=item_id)
