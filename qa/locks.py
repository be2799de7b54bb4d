"""Row locks for qa rows. Take them only through these helpers.

Order, whenever several are taken in one transaction: an exam attempt, a quality rule's state,
a quality action or a task's agreement (each alone: no transaction takes two of them), then the
rows of ``workforce`` and ``tasks`` in their own order (``tasks/locks.py``): the annotator, the
project member, certifications; or, when dynamic overlap adds a seat, the project, the task's
slots and the task. Starting an attempt locks the annotator alone and only inserts an
attempt, so it never waits for an attempt's lock.
"""

from .models import ExamAttempt, QualityAction, QualityRuleState, TaskAgreement


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


def lock_task_agreement(task_id: int, project_id: int) -> TaskAgreement:
    """Create if need be, then lock, a task's agreement row, so that computations of one task
    take turns: the second reads what the first stored and finds nothing new to do.

    A row created here is blank (``computed_at`` None) until its computation fills it, in the
    same transaction.
    """
    TaskAgreement.objects.bulk_create(
        [TaskAgreement(task_id=task_id, project_id=project_id)], ignore_conflicts=True
    )
    return TaskAgreement.objects.select_for_update(of=("self",), no_key=True).get(task_id=task_id)
