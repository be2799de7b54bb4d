"""Gold tasks: making a task gold, correcting its answer, promoting an annotation, retiring.

A gold task has no seats (``tasks.models.Task``): the claim serves it apart, to many annotators,
each at most once. Making a regular task gold takes its seats away: a live lease on it ends as
a cancel ends it (``revoked``; the holder reads what any cancelled task's holder reads), and work
submitted on it stays, to be scored against the answer by the job that the event
``gold_answer_set`` leads to, as after a corrected answer. Every change is audited.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors
from tasks import events
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
from tasks.locks import lock_slots, lock_task
from tasks.models import Annotation, Assignment, Slot, SlotState, Task
from tasks.services.tasks import slot_holders_end, task_require_writable
from workforce.models import AuditVerb
from workforce.services import audit_record
from workforce.services.audit import json_value


def _check_answer(task: Task, answer) -> None:
    """Refuse an answer its project's kind refuses, naming each path under ``answer``."""
    project = task.project
    issues = get_kind(project.kind).validate_payload(answer, project.label_schema, task.data)
    problems = FieldErrors()
    problems.update(issues_by_path(issue.under("answer") for issue in issues))
    problems.raise_if_any("Invalid gold answer.")


@transaction.atomic
def task_gold_set(
    *,
    task: Task,
    answer,
    actor: AbstractBaseUser | None,
    reason: str = "",
    source: Annotation | None = None,
) -> Task:
    """Make a task gold with ``answer``, or correct the answer of a gold task.

    The same answer again changes nothing. A new answer is a new ``gold_version``; submissions
    scored against an older one are scored again by a job. ``source`` is the annotation the
    answer was promoted from: its author is not scored on the task.
    """
    task_require_writable(task)
    _check_answer(task, answer)
    slots = lock_slots(task_id=task.pk)
    ended = slot_holders_end(
        [s for s in slots if s.state == SlotState.LEASED], state=SlotState.CLOSED
    )
    lock_task(task.pk)
    task.refresh_from_db()
    if task.cancelled_at is not None:
        raise Conflict("The task is cancelled.", code=ErrorCode.INVALID_STATUS)
    if task.is_gold and task.gold_answer == answer and task.gold_retired_at is None:
        return task
    before = {
        "is_gold": task.is_gold,
        "gold_answer": task.gold_answer,
        "gold_version": task.gold_version,
    }
    if slots:
        # Its assignments stay (each annotator still never gets it twice) and hold no slot now.
        Assignment.objects.filter(task_id=task.pk).update(slot=None)
        Slot.objects.filter(task_id=task.pk).delete()
    task.is_gold, task.gold_answer = True, answer
    task.gold_version += 1
    task.gold_retired_at = None
    task.completed_at = None
    if source is not None:
        task.gold_source = source.pk
    task.save()
    audit_record(
        organization=task.project.organization,
        actor=actor,
        verb=AuditVerb.GOLD_SET,
        target=task,
        before=before,
        after={
            "is_gold": True,
            "gold_answer": json_value(answer),
            "gold_version": task.gold_version,
            "promoted_from": task.gold_source,
            "seats_removed": len(slots),
            "leases_ended": ended,
        },
        reason=reason,
    )
    if Annotation.objects.filter(task_id=task.pk).exists():
        events.publish(events.GOLD_ANSWER_SET, task_id=task.pk)
    return task


def annotation_promote(
    *, annotation: Annotation, actor: AbstractBaseUser | None, reason: str = ""
) -> Task:
    """Make an annotation's task gold with the annotation as its answer."""
    return task_gold_set(
        task=annotation.task,
        answer=annotation.payload,
        actor=actor,
        reason=reason,
        source=annotation,
    )


@transaction.atomic
def task_gold_retire(*, task: Task, actor: AbstractBaseUser | None, reason: str = "") -> Task:
    """Stop serving a gold task; its scores stay. Retiring again changes nothing."""
    task_require_writable(task)
    lock_task(task.pk)
    task.refresh_from_db()
    if not task.is_gold:
        raise Conflict("The task is not gold.", code=ErrorCode.INVALID_STATUS)
    if task.gold_retired_at is not None:
        return task
    task.gold_retired_at = timezone.now()
    task.save(update_fields=["gold_retired_at"])
    audit_record(
        organization=task.project.organization,
        actor=actor,
        verb=AuditVerb.GOLD_RETIRED,
        target=task,
        after={"gold_retired_at": json_value(task.gold_retired_at)},
        reason=reason,
    )
    return task
