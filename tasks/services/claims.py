"""Claiming work, keeping a lease alive, giving it back, and submitting it.

A claim is one short transaction: lock the annotator's row (so one person's concurrent claims
cannot exceed their limits), read which of their projects they are eligible for, then take one
slot with ``SELECT … FOR UPDATE SKIP LOCKED`` through a partial index. Concurrent claimers never
wait for each other's rows, and a lease that lapsed is claimable again without any sweeper.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
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
)
from tasks.selectors import claim_candidates, live_assignment_count
from workforce.locks import lock_annotator
from workforce.models import Annotator, AnnotatorStatus

# The longest a client may say it actively worked on one task: a day.
MAX_ACTIVE_SECONDS = 86_400


def _held_before(annotator_id: int) -> Exists:
    return Exists(Assignment.objects.filter(task_id=OuterRef("task_id"), annotator_id=annotator_id))


def _take_slot(project: Project, annotator_id: int, now: datetime) -> Assignment | None:
    """Lease one slot of ``project`` to the annotator, or return None if none is claimable.

    A slot whose lease lapsed comes first (its task was started earliest), then open slots by
    seat (tasks others started), task priority and age.
    """
    base = Slot.objects.select_for_update(skip_locked=True).filter(project_id=project.pk)
    base = base.exclude(_held_before(annotator_id))
    slot = (
        base.filter(state=SlotState.LEASED, lease_expires_at__lte=now)
        .order_by("lease_expires_at")
        .only("id", "task_id", "seat")
        .first()
    ) or (
        base.filter(state=SlotState.OPEN)
        .order_by("-seat", "-task_priority", "task_id")
        .only("id", "task_id", "seat")
        .first()
    )
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
    # The next seat opens once this one is taken: claims then prefer tasks others started.
    Slot.objects.filter(task_id=slot.task_id, seat=slot.seat + 1, state=SlotState.WAITING).update(
        state=SlotState.OPEN
    )
    return assignment


@dataclass(frozen=True)
class ClaimResult:
    assignment: Assignment | None
    reason: str = ""


def claim_next(*, annotator: Annotator, project_id: int | None = None) -> ClaimResult:
    """Lease the best task the annotator is eligible for, across their projects or in one.

    Returns an empty result with the reason when nothing is eligible.
    """
    now = timezone.now()
    with transaction.atomic():
        # Serialises this annotator's claims so the concurrency limits hold; other
        # annotators' claims do not touch this row.
        annotator = lock_annotator(annotator.pk)
        if annotator.status != AnnotatorStatus.ACTIVE:
            raise PermissionDenied(
                f"Your annotator account is {annotator.status}.", code="annotator_not_active"
            )
        if live_assignment_count(annotator=annotator, now=now) >= annotator.max_concurrent_tasks:
            return ClaimResult(None, "You hold as many tasks as you may at once.")
        candidates = list(claim_candidates(annotator=annotator, now=now, project_id=project_id))
        if not candidates:
            return ClaimResult(None, "You are not an active member of an active project.")
        for project in candidates:
            if project.skill_level < project.required_skill_level or project.missing_domains:
                continue
            if project.live >= project.max_concurrent_tasks:
                continue
            assignment = _take_slot(project, annotator.pk, now)
            if assignment is not None:
                assignment.project = project
                return ClaimResult(assignment)
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
