"""Claiming work, keeping a lease alive, giving it back, and submitting it.

A claim is one short transaction: lock the annotator's row (so one person's concurrent claims
cannot exceed their limits), read which of their projects they are eligible for, then take one
slot with ``SELECT … FOR UPDATE SKIP LOCKED`` through a partial index. Concurrent claimers never
wait for each other's rows, and a lease that lapsed is claimable again without any sweeper.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.errors import Conflict, PermissionDenied, ValidationFailed
from tasks import events
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
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


class ClaimRow(NamedTuple):
    """What either implementation of the claim answers; ``outcome`` says which fields are set."""

    outcome: str  # claimed, not_found, not_active, at_limit, no_projects, none_available
    status: str | None = None  # the annotator's status
    assignment_id: int | None = None
    task_id: int | None = None
    data: dict | None = None
    project_id: int | None = None
    project_name: str | None = None
    kind: str | None = None
    instructions: str | None = None
    label_schema: dict | None = None
    lease_expires_at: datetime | None = None


def _claim_postgresql(annotator_id: int, project_id: int | None, now: datetime) -> ClaimRow:
    """Claim through the ``tasks_claim`` function (migration tasks 0002): one round trip."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tasks_claim(%s, %s, %s)", [annotator_id, project_id, now])
        row = ClaimRow(*cursor.fetchone())
    if row.outcome != "claimed":
        return row
    # Django leaves jsonb undecoded on raw cursors; the JSON fields decode it on model reads.
    return row._replace(data=json.loads(row.data), label_schema=json.loads(row.label_schema))


def _claim_portable(annotator_id: int, project_id: int | None, now: datetime) -> ClaimRow:
    """The steps of ``tasks_claim`` from Python, for the embedded SQLite database."""
    with transaction.atomic():
        context = claim_context(annotator_id=annotator_id, now=now, project_id=project_id)
        if context.status != AnnotatorStatus.ACTIVE:
            return ClaimRow("not_active", context.status)
        if context.live >= context.max_concurrent_tasks:
            return ClaimRow("at_limit", context.status)
        for project in context.candidates:
            row = _take_slot_portable(project, annotator_id, now) if project.eligible else None
            if row is not None:
                return row._replace(status=context.status)
        return ClaimRow("none_available" if context.candidates else "no_projects", context.status)


def _take_slot_portable(
    project: ClaimCandidate, annotator_id: int, now: datetime
) -> ClaimRow | None:
    """Take one slot of the project as ``tasks_claim`` does, through the ORM.

    SQLite serialises writers (transactions begin IMMEDIATE), so no row is taken twice.
    """
    held_before = Exists(
        Assignment.objects.filter(task_id=OuterRef("task_id"), annotator_id=annotator_id)
    )
    base = Slot.objects.select_for_update(skip_locked=True).filter(project_id=project.pk)
    base = base.exclude(held_before).only("id", "task_id", "seat", "assignment_id")
    slot = (
        base.filter(state=SlotState.LEASED, lease_expires_at__lte=now)
        .order_by("lease_expires_at")
        .first()
    ) or base.filter(state=SlotState.OPEN).order_by("-seat", "-task_priority", "task_id").first()
    if slot is None:
        return None
    if slot.assignment_id is not None:
        # A lapsed lease taken over: its holder's assignment ends here.
        Assignment.objects.filter(pk=slot.assignment_id, status=AssignmentStatus.ACTIVE).update(
            status=AssignmentStatus.EXPIRED
        )
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
    name, kind, instructions, schema = fields.get(pk=project.pk)
    return ClaimRow(
        outcome="claimed",
        assignment_id=assignment.pk,
        task_id=slot.task_id,
        data=data,
        project_id=project.pk,
        project_name=name,
        kind=kind,
        instructions=instructions,
        label_schema=schema,
        lease_expires_at=expires,
    )


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


# Why a claim found nothing, as the annotator reads it.
_NOTHING = {
    "at_limit": "You hold as many tasks as you may at once.",
    "no_projects": "You are not an active member of an active project.",
    "none_available": "No task is available for you right now.",
}


def claim_next(*, annotator: Annotator, project_id: int | None = None) -> ClaimResult:
    """Lease the best task the annotator is eligible for, across their projects or in one.

    One short transaction: lock the annotator's row (so one person's concurrent claims cannot
    exceed their limits), find the projects they may work in, in order of priority and
    deadline, and take one slot with ``FOR UPDATE SKIP LOCKED`` through the partial index.
    Returns an empty result with the reason when nothing is eligible.
    """
    now = timezone.now()
    claim = _claim_postgresql if connection.vendor == "postgresql" else _claim_portable
    row = claim(annotator.pk, project_id, now)
    if row.outcome in ("not_active", "not_found"):
        raise PermissionDenied(
            f"Your annotator account is {row.status or 'missing'}.", code="annotator_not_active"
        )
    if row.outcome != "claimed":
        return ClaimResult(None, _NOTHING[row.outcome])
    return ClaimResult(
        ClaimedTask(
            assignment_id=row.assignment_id,
            task_id=row.task_id,
            data=row.data,
            project_id=row.project_id,
            project_name=row.project_name,
            kind=row.kind,
            instructions=row.instructions,
            label_schema=row.label_schema,
            leased_at=now,
            lease_expires_at=row.lease_expires_at,
        )
    )


def _require_holder(slot: Slot | None) -> Slot:
    """Refuse to act on an assignment whose slot another annotator has taken since."""
    if slot is None or slot.state != SlotState.LEASED:
        raise Conflict("Your lease expired and the task went to someone else.", code="lease_lost")
    return slot


@transaction.atomic
def assignment_heartbeat(*, assignment: Assignment) -> Assignment:
    """Extend the lease by the project's lease length, while the annotator still holds it."""
    now = timezone.now()
    slot = _require_holder(lock_slot_of(assignment))
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
    slot = _require_holder(lock_slot_of(assignment))
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
        raise ValidationFailed(
            "Invalid payload: " + "; ".join(str(i) for i in issues[:5]),
            fields=issues_by_path(issue.under("payload") for issue in issues),
        )
    slot = lock_slot_of(assignment)
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

    Lapsed leases are found through their slots (``slot_leased_idx``); a lease that another
    annotator has taken over was recorded as expired by that claim. The slot is left alone:
    its holder may still submit until someone else claims it.
    """
    now = now or timezone.now()
    lapsed = Slot.objects.filter(state=SlotState.LEASED, lease_expires_at__lte=now)
    return Assignment.objects.filter(
        pk__in=lapsed.values("assignment_id"), status=AssignmentStatus.ACTIVE
    ).update(status=AssignmentStatus.EXPIRED)
