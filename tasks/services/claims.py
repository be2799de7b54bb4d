"""Claiming work, keeping a lease alive, giving it back, and submitting it.

A claim is one short transaction: lock the annotator's row (so one person's concurrent claims
cannot exceed their limits), read which of their projects they are eligible for, then take one
slot with ``SELECT … FOR UPDATE SKIP LOCKED`` through a partial index. Concurrent claimers never
wait for each other's rows, and a lease that lapsed is claimable again without any sweeper.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.errors import Conflict, PermissionDenied, ValidationFailed
from tasks import events
from tasks.kinds import get_kind
from tasks.locks import lock_assignment, lock_slot_of, lock_task
from tasks.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    Slot,
    SlotState,
    Task,
)
from tasks.selectors import ClaimCandidate, claim_context
from workforce.models import Annotator, AnnotatorStatus

# The longest a client may say it actively worked on one task: a day.
MAX_ACTIVE_SECONDS = 86_400


# One statement: pick a slot (a lapsed lease first, else the best open slot) skipping rows other
# claimers hold, record the assignment, lease the slot, and open the task's next seat.
_TAKE_SLOT_POSTGRESQL = """
WITH picked AS (
    SELECT id, task_id, seat FROM tasks_slot
    WHERE id = COALESCE(
        (SELECT s.id FROM tasks_slot s
         WHERE s.project_id = %(project)s AND s.state = 'leased'
           AND s.lease_expires_at <= %(now)s
           AND NOT EXISTS (
               SELECT 1 FROM tasks_assignment a
               WHERE a.task_id = s.task_id AND a.annotator_id = %(annotator)s)
         ORDER BY s.lease_expires_at
         LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT s.id FROM tasks_slot s
         WHERE s.project_id = %(project)s AND s.state = 'open'
           AND NOT EXISTS (
               SELECT 1 FROM tasks_assignment a
               WHERE a.task_id = s.task_id AND a.annotator_id = %(annotator)s)
         ORDER BY s.seat DESC, s.task_priority DESC, s.task_id
         LIMIT 1 FOR UPDATE SKIP LOCKED))
), assigned AS (
    INSERT INTO tasks_assignment
        (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
    SELECT task_id, id, %(project)s, %(annotator)s, 'active', %(now)s, %(expires)s FROM picked
    RETURNING id, slot_id
), leased AS (
    UPDATE tasks_slot s
    SET state = 'leased', assignment_id = assigned.id, lease_expires_at = %(expires)s
    FROM assigned WHERE s.id = assigned.slot_id
), opened AS (
    UPDATE tasks_slot s SET state = 'open'
    FROM picked
    WHERE s.task_id = picked.task_id AND s.seat = picked.seat + 1 AND s.state = 'waiting'
)
SELECT assigned.id, picked.task_id, t.data, p.name, p.kind, p.instructions, p.label_schema
FROM assigned
JOIN picked ON picked.id = assigned.slot_id
JOIN tasks_task t ON t.id = picked.task_id
JOIN tasks_project p ON p.id = %(project)s
"""


def _take_slot_postgresql(
    project: ClaimCandidate, annotator_id: int, now: datetime
) -> tuple | None:
    expires = now + timedelta(seconds=project.lease_seconds)
    params = {"project": project.pk, "annotator": annotator_id, "now": now, "expires": expires}
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SLOT_POSTGRESQL, params)
        row = cursor.fetchone()
    if row is None:
        return None
    # Django leaves jsonb undecoded on raw cursors; the JSON fields decode it on model reads.
    assignment_id, task_id, data, name, kind, instructions, schema = row
    return assignment_id, task_id, json.loads(data), name, kind, instructions, json.loads(schema)


def _take_slot_portable(project: ClaimCandidate, annotator_id: int, now: datetime) -> tuple | None:
    """The same steps as ``_TAKE_SLOT_POSTGRESQL`` through the ORM, for the embedded SQLite.

    SQLite serialises writers (transactions begin IMMEDIATE), so no row is taken twice.
    """
    held_before = Exists(
        Assignment.objects.filter(task_id=OuterRef("task_id"), annotator_id=annotator_id)
    )
    base = Slot.objects.select_for_update(skip_locked=True).filter(project_id=project.pk)
    base = base.exclude(held_before).only("id", "task_id", "seat")
    slot = (
        base.filter(state=SlotState.LEASED, lease_expires_at__lte=now)
        .order_by("lease_expires_at")
        .first()
    ) or base.filter(state=SlotState.OPEN).order_by("-seat", "-task_priority", "task_id").first()
    if slot is None:
        return None
    expires = now + timedelta(seconds=project.lease_seconds)
    assignment = Assignment.objects.create(
        task_id=slot.task_id,
        slot_id=slot.pk,
        project_id=project.pk,
        annotator_id=annotator_id,
        leased_at=now,
        lease_expires_at=expires,
    )
    Slot.objects.filter(pk=slot.pk).update(
        state=SlotState.LEASED, assignment_id=assignment.pk, lease_expires_at=expires
    )
    Slot.objects.filter(task_id=slot.task_id, seat=slot.seat + 1, state=SlotState.WAITING).update(
        state=SlotState.OPEN
    )
    data = Task.objects.values_list("data", flat=True).get(pk=slot.task_id)
    fields = Project.objects.values_list("name", "kind", "instructions", "label_schema")
    return (assignment.pk, slot.task_id, data, *fields.get(pk=project.pk))


def _take_slot(project: ClaimCandidate, annotator_id: int, now: datetime) -> tuple | None:
    """Lease one slot of ``project`` to the annotator, or return None if none is claimable.

    Returns (assignment id, task id, task data, project name, kind, instructions, schema).

    A slot whose lease lapsed comes first (its task was started earliest), then open slots by
    seat (tasks others started), task priority and age.
    """
    if connection.vendor == "postgresql":
        return _take_slot_postgresql(project, annotator_id, now)
    return _take_slot_portable(project, annotator_id, now)


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """What an annotator receives for a claim: nothing about gold or the task's external id."""

    assignment_id: int
    task_id: int
    data: dict
    project_id: int
    project_name: str
    kind: str
    instructions: str
    label_schema: dict
    leased_at: datetime
    lease_expires_at: datetime


@dataclass(frozen=True)
class ClaimResult:
    claimed: ClaimedTask | None
    reason: str = ""


def claim_next(*, annotator: Annotator, project_id: int | None = None) -> ClaimResult:
    """Lease the best task the annotator is eligible for, across their projects or in one.

    Returns an empty result with the reason when nothing is eligible.
    """
    now = timezone.now()
    with transaction.atomic():
        context = claim_context(annotator_id=annotator.pk, now=now, project_id=project_id)
        if context.status != AnnotatorStatus.ACTIVE:
            raise PermissionDenied(
                f"Your annotator account is {context.status}.", code="annotator_not_active"
            )
        if context.live >= context.max_concurrent_tasks:
            return ClaimResult(None, "You hold as many tasks as you may at once.")
        if not context.candidates:
            return ClaimResult(None, "You are not an active member of an active project.")
        for project in context.candidates:
            row = _take_slot(project, annotator.pk, now) if project.eligible else None
            if row is not None:
                assignment_id, task_id, data, name, kind, instructions, schema = row
                claimed = ClaimedTask(
                    assignment_id=assignment_id,
                    task_id=task_id,
                    data=data,
                    project_id=project.pk,
                    project_name=name,
                    kind=kind,
                    instructions=instructions,
                    label_schema=schema,
                    leased_at=now,
                    lease_expires_at=now + timedelta(seconds=project.lease_seconds),
                )
                return ClaimResult(claimed)
        return ClaimResult(None, "No task is available for you right now.")


def _require_holder(slot: Slot | None) -> Slot:
    """Refuse to act on an assignment whose slot another annotator has taken since."""
    if slot is None or slot.state != SlotState.LEASED:
        raise Conflict("Your lease expired and the task went to someone else.", code="lease_lost")
    return slot


@transaction.atomic
def assignment_heartbeat(*, assignment: Assignment) -> Assignment:
    """Extend the lease by the project's lease length, while the annotator still holds it."""
    now = timezone.now()
    slot = _require_holder(lock_slot_of(assignment.pk))
    assignment = lock_assignment(assignment.pk)
    expires = now + timedelta(seconds=assignment.project.lease_seconds)
    slot.lease_expires_at = expires
    slot.save(update_fields=["lease_expires_at"])
    assignment.lease_expires_at = expires
    assignment.status = AssignmentStatus.ACTIVE
    assignment.save(update_fields=["lease_expires_at", "status"])
    return assignment


@transaction.atomic
def assignment_release(*, assignment: Assignment) -> Assignment:
    """Give the task back: its slot opens for someone else (never again for this annotator)."""
    now = timezone.now()
    if assignment.status == AssignmentStatus.RELEASED:
        return assignment
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("This assignment was already submitted.", code="already_submitted")
    slot = _require_holder(lock_slot_of(assignment.pk))
    assignment = lock_assignment(assignment.pk)
    slot.state, slot.assignment, slot.lease_expires_at = SlotState.OPEN, None, None
    slot.save(update_fields=["state", "assignment", "lease_expires_at"])
    assignment.status, assignment.ended_at = AssignmentStatus.RELEASED, now
    assignment.save(update_fields=["status", "ended_at"])
    return assignment


def _active_seconds(value) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_ACTIVE_SECONDS
    ):
        raise ValidationFailed(
            "Invalid active time.",
            fields={"active_seconds": [f"Must be a whole number from 0 to {MAX_ACTIVE_SECONDS}."]},
        )
    return value


@transaction.atomic
def assignment_submit(
    *,
    assignment: Assignment,
    payload,
    active_seconds: int | None = None,
    actor: AbstractBaseUser | None = None,
) -> tuple[Annotation, bool]:
    """Store the annotator's work; return it and whether it was new.

    Submitting the same payload again returns the stored annotation (a retried request is
    harmless); a different payload for a submitted assignment is a conflict. The payload is
    validated by the project's kind first, and nothing is stored when it is invalid.
    """
    now = timezone.now()
    active_seconds = _active_seconds(active_seconds)
    project = assignment.project
    issues = get_kind(project.kind).validate_payload(
        payload, project.label_schema, assignment.task.data
    )
    if issues:
        fields: dict[str, list[str]] = {}
        for issue in issues:
            fields.setdefault(f"payload.{issue.path}" if issue.path else "payload", []).append(
                issue.message
            )
        raise ValidationFailed(
            "Invalid payload: " + "; ".join(str(i) for i in issues[:5]), fields=fields
        )
    slot = lock_slot_of(assignment.pk)
    assignment = lock_assignment(assignment.pk)
    # Checked under the locks, so that a retried request racing the first one sees its result.
    existing = Annotation.objects.filter(assignment=assignment).first()
    if existing is not None:
        if existing.payload == payload:
            return existing, False
        raise Conflict(
            "This assignment was already submitted with a different payload.",
            code="already_submitted",
        )
    if assignment.status == AssignmentStatus.RELEASED:
        raise Conflict("You released this task.", code="released")
    slot = _require_holder(slot)
    annotation = Annotation.objects.create(
        assignment=assignment,
        task_id=assignment.task_id,
        project_id=assignment.project_id,
        annotator_id=assignment.annotator_id,
        payload=payload,
        active_seconds=active_seconds,
        duration_seconds=(now - assignment.leased_at).total_seconds(),
        submitted_at=now,
    )
    assignment.status, assignment.ended_at = AssignmentStatus.SUBMITTED, now
    assignment.save(update_fields=["status", "ended_at"])
    slot.state, slot.lease_expires_at = SlotState.DONE, None
    slot.save(update_fields=["state", "lease_expires_at"])
    if not Slot.objects.filter(task_id=assignment.task_id).exclude(state=SlotState.DONE).exists():
        task = lock_task(assignment.task_id)
        task.completed_at = now
        task.save(update_fields=["completed_at"])
    events.publish(events.ANNOTATION_SUBMITTED, annotation_id=annotation.pk)
    return annotation, True


def assignments_expire(*, now: datetime | None = None) -> int:
    """Record lapsed leases as expired, for reporting. Claims never depend on it.

    The slot is left alone: its holder may still submit until someone else claims it.
    """
    now = now or timezone.now()
    return Assignment.objects.filter(
        status=AssignmentStatus.ACTIVE, lease_expires_at__lte=now
    ).update(status=AssignmentStatus.EXPIRED)
