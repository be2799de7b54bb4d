"""Cancelling and deleting tasks, giving a task one more seat, ending the live leases of an
archived project, and sending submitted work back for rework.

A task is **cancelled** when its work is no longer wanted but what was submitted is: its seats
nobody submitted are closed (``SlotState.CLOSED`` never opens again, so no claim serves it), a
live lease on it ends at once, and its annotations stay, in the export and in the stats. A task
is **deleted** only while nobody holds or submitted it; once work exists it can be cancelled,
never deleted, so that no accepted submission is lost (DESIGN.md invariant 6).

A lease ended here (a task cancelled, a project archived) ends ``revoked``, as when a person
loses access (``access.sql``): its holder's heartbeat, release and submit answer 403
``access_ended``. Locks follow ``tasks/locks.py``: slots, then their holders, then the task.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from config.errors import Conflict, ErrorCode
from tasks.locks import (
    lock_assignment,
    lock_assignments,
    lock_project,
    lock_slot_of,
    lock_slots,
    lock_task,
)
from tasks.models import (
    Annotation,
    AnnotationVersion,
    Assignment,
    AssignmentStatus,
    ProjectStatus,
    Slot,
    SlotState,
    Task,
)
from workforce.locks import lock_annotator
from workforce.models import AuditVerb
from workforce.services import audit_record


def slot_holders_end(slots: list[Slot], *, state: SlotState) -> list[int]:
    """End the leases of the given locked, leased slots; leave the slots in ``state``.

    Returns the ended assignments' ids. The holders are locked after their slots, in id order.
    """
    holders = [slot.assignment_id for slot in slots]
    if not holders:
        return []
    now = timezone.now()
    live = (AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED)
    ended = [a.pk for a in lock_assignments(holders) if a.status in live]
    # Ended as access ends (``access.sql``): heartbeat, release and submit answer 403.
    Assignment.objects.filter(pk__in=ended).update(status=AssignmentStatus.REVOKED, ended_at=now)
    Slot.objects.filter(pk__in=[slot.pk for slot in slots]).update(
        state=state, assignment=None, lease_expires_at=None
    )
    return ended


def project_leases_end(*, project_id: int) -> list[int]:
    """End every live lease in a project (it is being archived); return the assignments' ids.

    Their slots open again, for when the project comes back. People who lose access to a
    project (removed, suspended, another role) lose their leases by the database's own rule
    (``access.sql``), not here.
    """
    slots = lock_slots(project_id=project_id, state=SlotState.LEASED)
    ended = slot_holders_end(slots, state=SlotState.OPEN)
    return ended + gold_leases_end(
        Task.objects.filter(project_id=project_id, is_gold=True).values("pk")
    )


def gold_leases_end(tasks) -> list[int]:
    """End the live leases on the given gold tasks (a queryset of ids); they hold no slot."""
    live = (AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED)
    leases = Assignment.objects.filter(task_id__in=tasks, slot__isnull=True, status__in=live)
    locked = lock_assignments(list(leases.values_list("pk", flat=True)))
    ended = [a.pk for a in locked if a.status in live]
    Assignment.objects.filter(pk__in=ended).update(
        status=AssignmentStatus.REVOKED, ended_at=timezone.now()
    )
    return ended


def task_require_writable(task: Task) -> None:
    if task.project.status == ProjectStatus.ARCHIVED:
        raise Conflict(
            "The project is archived; unarchive it to change its tasks.",
            code=ErrorCode.INVALID_STATUS,
        )


@transaction.atomic
def task_cancel(*, task: Task, actor: AbstractBaseUser | None, reason: str = "") -> Task:
    """Stop serving a task: close its seats nobody submitted and end its live leases.

    Submitted work stays. Cancelling a cancelled task answers it unchanged; a complete task
    cannot be cancelled (409), there is nothing left to stop.
    """
    task_require_writable(task)
    slots = lock_slots(task_id=task.pk)
    leased = [slot for slot in slots if slot.state == SlotState.LEASED]
    ended = slot_holders_end(leased, state=SlotState.CLOSED)
    # Locked last, as submit does: a submit that completed the task committed before the slots
    # were locked here, and its completion is read now.
    lock_task(task.pk)
    task.refresh_from_db(fields=["completed_at", "cancelled_at"])
    if task.cancelled_at is not None:
        return task
    if task.completed_at is not None:
        raise Conflict(
            "The task is complete; there is nothing to cancel.", code=ErrorCode.INVALID_STATUS
        )
    closed = Slot.objects.filter(task_id=task.pk, state__in=[SlotState.OPEN, SlotState.WAITING])
    closed = closed.update(state=SlotState.CLOSED)
    task.cancelled_at = timezone.now()
    task.save(update_fields=["cancelled_at"])
    audit_record(
        organization=task.project.organization,
        actor=actor,
        verb=AuditVerb.TASK_CANCELLED,
        target=task,
        after={
            "project": task.project_id,
            "seats_closed": closed + len(leased),
            "leases_ended": ended,
        },
        reason=reason,
    )
    return task


@transaction.atomic
def task_delete(*, task: Task, actor: AbstractBaseUser | None) -> None:
    """Delete a task nobody holds or submitted, with its seats and released assignments.

    A task with submitted work, or held under a lease right now, is a conflict: cancel it.
    """
    task_require_writable(task)
    slots = lock_slots(task_id=task.pk)
    if any(slot.state == SlotState.DONE for slot in slots) or (
        Annotation.objects.filter(task_id=task.pk).exists()
    ):
        raise Conflict(
            "Work was submitted for this task; cancel it instead, which keeps the work.",
            code=ErrorCode.IN_USE,
        )
    live = (AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED)
    if any(slot.state == SlotState.LEASED for slot in slots) or (
        # A gold task's leases hold no slot.
        task.is_gold and Assignment.objects.filter(task_id=task.pk, status__in=live).exists()
    ):
        raise Conflict(
            "Someone holds this task under a lease; cancel it instead, which ends the lease.",
            code=ErrorCode.IN_USE,
        )
    audit_record(
        organization=task.project.organization,
        actor=actor,
        verb=AuditVerb.TASK_DELETED,
        target=task,
        before={"project": task.project_id, "external_id": task.external_id},
    )
    task.delete()


@transaction.atomic
def task_seat_add(*, task_id: int, seats: int) -> bool:
    """Give a complete task one more seat, which opens at once; return whether it was added.

    Dynamic overlap (``qa.task_agreement``) asks for it when the annotators of a task disagree.
    ``seats`` is how many seats the task had when the caller decided: the seat is added only if
    the task still has exactly that many, all submitted, so that one decision adds one seat
    however often it is delivered or however many run at once (the second finds one seat more
    and adds none). Never past the project's ``overlap_max``, never for a gold task (it has no
    seats), a cancelled one or one in an archived project. The task is complete no longer, so
    the claim serves the new seat like any other open one (to someone who never had the task);
    its submission completes the task again.

    Locks in the order of ``tasks/locks.py`` for writers of seats: the project (held against a
    change of its settings or its archiving meanwhile), the task's slots (a claim or submit in
    flight is waited for), then the task.
    """
    task = Task.objects.filter(pk=task_id).values("project_id").first()
    if task is None:
        return False
    project = lock_project(task["project_id"])
    if project.status == ProjectStatus.ARCHIVED or seats >= project.overlap_max:
        return False
    slots = lock_slots(task_id=task_id)
    if not slots or len(slots) != seats or any(slot.state != SlotState.DONE for slot in slots):
        return False
    lock_task(task_id)
    reopened = Task.objects.filter(
        pk=task_id, is_gold=False, cancelled_at__isnull=True, completed_at__isnull=False
    ).update(completed_at=None)
    if not reopened:
        return False
    Slot.objects.create(
        task_id=task_id,
        project_id=project.pk,
        seat=seats,
        state=SlotState.OPEN,
        task_priority=slots[0].task_priority,
    )
    return True


# Whether an annotator may hold a lease in a project now: the access rule of ``access.sql``,
# the one the claim grants leases by.
_MAY_HOLD_LEASE = "SELECT EXISTS (SELECT 1 FROM tasks_lease_projects(%s) WHERE project_id = %s)"


@dataclass(frozen=True)
class Rework:
    """Where rejected work went: back to its author (``assignment`` active again, under a
    fresh lease), or to the pool (its slot open, the author's assignment ``revoked``)."""

    assignment: Assignment
    to_author: bool


@transaction.atomic
def assignment_rework(*, assignment_id: int) -> Rework:
    """Send a submitted assignment's work back for rework, to its author first.

    The author's assignment is active again under a fresh lease of the project's length, its
    slot leased back to it with the same expiry, and the task is no longer complete. The
    author resubmits through the ordinary submit, which stores the new payload as the
    annotation's next version (``annotation_resubmit``). If they let the lease lapse, the
    claim's rule for lapsed leases hands the slot to another annotator (the author's assignment
    ends ``expired``, and their submit answers ``lease_lost``): no rule of its own is needed.

    An author who may no longer hold a lease in the project (suspended, taken off it, gone from
    the organization: ``tasks_lease_projects``) never gets it back: the slot opens for the pool
    at once and their assignment ends ``revoked``. Their annotator row is locked first, as the
    claim and the access rule lock it, so that a change of access committing meanwhile is
    either seen here or ends the lease granted here.

    Locks: annotator, slot, assignment, task (``tasks/locks.py``). Gold work is never reviewed,
    so never reworked: it holds no slot, and is refused.
    """
    now = timezone.now()
    assignment = Assignment.objects.select_related("project").get(pk=assignment_id)
    if assignment.slot_id is None:
        raise Conflict("Gold work is never sent back for rework.", code=ErrorCode.INVALID_STATUS)
    lock_annotator(assignment.annotator_id)
    slot = lock_slot_of(assignment)
    assignment = lock_assignment(assignment.pk)
    if assignment.status != AssignmentStatus.SUBMITTED or slot is None:
        raise Conflict("Only submitted work can be sent back.", code=ErrorCode.INVALID_STATUS)
    with connection.cursor() as cursor:
        cursor.execute(_MAY_HOLD_LEASE, [assignment.annotator_id, assignment.project_id])
        to_author = cursor.fetchone()[0]
    if to_author:
        expires = now + timedelta(seconds=assignment.project.lease_seconds)
        slot.state, slot.lease_expires_at = SlotState.LEASED, expires
        assignment.status, assignment.ended_at = AssignmentStatus.ACTIVE, None
        assignment.leased_at, assignment.lease_expires_at = now, expires
    else:
        slot.state, slot.assignment, slot.lease_expires_at = SlotState.OPEN, None, None
        assignment.status, assignment.ended_at = AssignmentStatus.REVOKED, now
    slot.save(update_fields=["state", "assignment", "lease_expires_at"])
    assignment.save(update_fields=["status", "ended_at", "leased_at", "lease_expires_at"])
    lock_task(assignment.task_id)
    Task.objects.filter(pk=assignment.task_id).update(completed_at=None)
    return Rework(assignment, to_author)


def annotation_resubmit(
    annotation: Annotation,
    *,
    assignment: Assignment,
    payload,
    active_seconds: int | None,
    now: datetime,
) -> Annotation:
    """Store reworked work as the annotation's next version (the submit calls it, under the
    slot's and the assignment's locks, for an assignment sent back by ``assignment_rework``).

    The annotator's earlier payload is kept as an ``AnnotationVersion``; the times add this
    round's work (measured from the rework's lease) to the earlier rounds'.
    """
    AnnotationVersion.objects.create(
        annotation=annotation,
        version=annotation.payload_version,
        payload=annotation.payload,
        submitted_at=annotation.submitted_at,
    )
    annotation.version += 1
    annotation.payload, annotation.payload_version = payload, annotation.version
    if active_seconds is not None:
        annotation.active_seconds = (annotation.active_seconds or 0) + active_seconds
    annotation.duration_seconds += (now - assignment.leased_at).total_seconds()
    annotation.submitted_at = now
    annotation.save(
        update_fields=[
            "version",
            "payload",
            "payload_version",
            "active_seconds",
            "duration_seconds",
            "submitted_at",
        ]
    )
    return annotation
