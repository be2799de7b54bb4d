"""Row locks for qa rows. Take them only through these helpers.

Order, whenever several are taken in one transaction: an exam attempt, the states of the quality
rules watching one annotator in one project (in rule order), a quality action or a task's agreement
(each alone: no transaction takes two of these), then the rows of ``workforce`` and ``tasks`` in
their own order (``tasks/locks.py``): the annotator, the project member, certifications; or, when
dynamic overlap adds a seat, the project, the task's slots and the task. Starting an attempt locks
the annotator alone and only inserts an attempt, so it never waits for an attempt's lock.

Review policy and review queue: a policy change locks the project (``tasks/locks.py``), then
its review layers. The review claim takes its member's claim lock (``qa/reviews.sql``), then
one review item; a heartbeat or a release locks the item alone. An access change takes the
claim locks of the members it concerns after every row lock it holds, then their items (so
does archiving a project, after the project's row). A verdict (``qa.verdicts``) locks the item,
then the author's review accuracy row (its upsert locks it as it writes it); a rejection, whose
rework needs the rows of ``tasks``, first locks the author's annotator row and the work's slot,
then the item, the accuracy row, the assignment and the task. Making a task gold locks its
slots, assignments and row (``tasks``), then its waiting and leased items: a rejection holds the
slot before the item, so the two never wait for each other in a cycle. A submission meeting its
review layers only inserts review items and reads review accuracy, never locks either.

Hourly stats rows (``qa.stats``) are locked by their upserts, after every other row a
transaction locks but a gold submission's accuracy row (its one statement adds to the stats with
the live event, before it is scored), and several of them in (project, annotator, hour) order:
the claims roll-up, after its cursor's row; a task's agreement, at the end of its computation.
"""

from django.db import connection

from workforce.models import Annotator

from .models import (
    ExamAttempt,
    QualityAction,
    QualityRuleState,
    ReviewItem,
    ReviewLayer,
    TaskAgreement,
)


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


def lock_rule_states(rules_sql: str, annotator_id: int, project_id: int) -> dict[int, bool]:
    """Lock, creating them first if need be, the states for one annotator in one project of
    the rules ``rules_sql`` selects (their ids, its one parameter the project), in rule order;
    answer each one's ``breached``. Empty when the annotator no longer exists.

    The locks make concurrent evaluations for one annotator in one project take turns. Missing
    rows are inserted skipping those that exist (or that a concurrent evaluation is inserting:
    it waits for that one to commit), then locked with the others.
    """
    states = _rule_states_locked(rules_sql, annotator_id, project_id)
    missing = [rule for rule, breached in states.items() if breached is None]
    if missing:
        if not Annotator.objects.filter(pk=annotator_id).exists():
            return {}
        QualityRuleState.objects.bulk_create(
            [
                QualityRuleState(rule_id=rule, annotator_id=annotator_id, project_id=project_id)
                for rule in missing
            ],
            ignore_conflicts=True,
        )
        states = _rule_states_locked(rules_sql, annotator_id, project_id)
    return {rule: breached for rule, breached in states.items() if breached is not None}


def _rule_states_locked(rules_sql: str, annotator_id: int, project_id: int) -> dict:
    # One statement: the rules, and the states they have locked in rule order (the locking
    # rows are sorted before they are locked); None for a rule without one.
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH rules AS ({rules_sql}), locked AS MATERIALIZED ("  # noqa: S608
            f"SELECT s.rule_id, s.breached FROM {QualityRuleState._meta.db_table} s "
            "WHERE s.rule_id IN (SELECT id FROM rules) AND s.annotator_id = %s "
            "AND s.project_id = %s ORDER BY s.rule_id FOR NO KEY UPDATE OF s) "
            "SELECT r.id, l.breached FROM rules r LEFT JOIN locked l ON l.rule_id = r.id "
            "ORDER BY r.id",
            [project_id, annotator_id, project_id],
        )
        return dict(cursor.fetchall())


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


def lock_review_layers(project_id: int) -> list[ReviewLayer]:
    """Lock a project's review layers, in id order, for a change of its review policy.

    ``FOR UPDATE``, not ``NO KEY``: the change may delete layers, and a submission recording an
    item at a layer meanwhile waits (its foreign key's lock conflicts), so no item arrives at a
    layer between the check that it holds none and its removal.
    """
    locked = ReviewLayer.objects.select_for_update(of=("self",))
    return list(locked.filter(project_id=project_id).order_by("pk"))


def lock_review_item(item_id: int) -> ReviewItem:
    """Lock one review item (a heartbeat, a release, a verdict); its layer and project are read
    along, not locked."""
    locked = ReviewItem.objects.select_for_update(of=("self",), no_key=True)
    return locked.select_related("layer", "project").get(pk=item_id)
