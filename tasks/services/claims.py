"""Claiming work, keeping a lease alive, giving it back, and submitting it.

The claim is the PL/pgSQL function ``tasks_claim`` in ``claims.sql`` beside this module (the
migration installs that file; a test pins the installed functions to it). One call, one short
transaction:

1. Lock the annotator's row (``FOR NO KEY UPDATE``), so one person's concurrent claims cannot
   exceed their limits; nobody else's claims touch that row. Locks are then taken in the order
   of ``tasks/locks.py``: annotator, then one slot.
2. Refuse an annotator who is missing (``not_found``) or not active (``not_active``), and one
   whose unexpired leases across all projects reach their own limit (``at_limit``).
3. Walk the projects they may hold a lease in (``tasks_lease_projects`` in ``access.sql``: an
   active annotator member of the project, whose account and organization membership as an
   annotator are active), active ones only (or the one asked for), by priority, deadline (none
   last), id. Skip a project they are not qualified for
   (``tasks_qualification``, the eligibility staffing shows too) or whose own concurrency limit
   they reach.
4. In the first project that has one, take a slot with ``FOR NO KEY UPDATE SKIP LOCKED``,
   never of a task they hold or held before: a lapsed lease first (earliest lapsed; its
   holder's assignment ends as ``expired``); else, among the first 64 open slots, the one of
   the task others started most (highest seat), then task priority, then the oldest task;
   else a fresh task (seat 0) by priority and age; else any open slot. The window keeps an
   annotator far ahead of everyone else, who did every started task, from passing thousands
   of their own at each claim. Rows other claimers hold are skipped, never waited for.
   Insert the assignment, lease the slot, and open the task's next seat.
4a. Gold: once a slot was found, the claim is gold with the project's gold rate (0 turns gold
   off; higher while the annotator is a newcomer, or when a quality rule raised their rate):
   a gold task in service they never had, from a random point of the pool. It is leased
   instead, without a slot (gold has no seats; many hold one at once), and the slot found
   stays open. A claim that finds no regular work is never answered with gold, so nothing an
   annotator sees tells gold apart. When they had every gold task, the claim is regular.
5. Without a task, say the most hopeful thing found: ``none_available`` (a project they may
   work in has nothing open now), ``at_limit`` (their limit in every such project),
   ``not_qualified`` (with the projects, whose reasons staffing words), ``no_projects``.

Expired leases are claimable again at once, so no sweeper is needed for correctness.

A request sending a token claims with ``claim_by_token``: the claim's statement finds the
annotator the token acts as (``workforce.tenancy.TOKEN_ANNOTATOR_SQL``), so that the annotator's
loop costs no statement for authentication; any outcome but a task or an empty queue is told
after the request is authenticated as any other.

Access follows people as they change (``access.sql`` beside this module, a rule of the
database): when an annotator may no longer hold a lease in a project (their account, their
membership or its role, their annotator status, their project membership or its role changed,
by a service, the admin or SQL), their leases there end in that same transaction. Each slot
opens for others at once and the assignment ends ``revoked``; heartbeat, release and submit
then answer 403 ``access_ended``.
"""

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from psycopg.types.json import Jsonb

from config.errors import Conflict, ErrorCode, FieldErrors, PermissionDenied, ValidationFailed
from tasks import events
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
from tasks.locks import lock_assignment, lock_lapsed_slots, lock_slot_of
from tasks.models import Annotation, Assignment, AssignmentStatus, Slot, SlotState
from tasks.services.tasks import annotation_resubmit
from tasks.staffing import project_gaps
from workforce.models import Annotator
from workforce.tenancy import TOKEN_ANNOTATOR_SQL

# The longest a client may say it actively worked on one task: a day.
MAX_ACTIVE_SECONDS = 86_400
# How far the active time a client reports may pass the time the server saw between the lease
# and the submit. The client starts its timer after the claim's answer and stops it before the
# submit, so an honest figure is shorter; this only absorbs rounding up to whole seconds and
# clocks that tick at slightly different rates.
ACTIVE_SECONDS_MARGIN = 5

SQL = Path(__file__).with_name("claims.sql")


class ClaimOutcome(StrEnum):
    """What ``tasks_claim`` answers in ``r_outcome``."""

    CLAIMED = "claimed"
    NOT_FOUND = "not_found"
    NOT_ACTIVE = "not_active"
    AT_LIMIT = "at_limit"
    NO_PROJECTS = "no_projects"
    NOT_QUALIFIED = "not_qualified"
    NONE_AVAILABLE = "none_available"


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
    """A claimed task, or the outcome that explains why there is none."""

    outcome: ClaimOutcome
    claimed: ClaimedTask | None = None
    # For ``not_qualified``: each project with what keeps the annotator off it.
    projects: list[dict] | None = None
    # Why, where the outcome alone does not say it (``not_active``).
    reason: str = ""

    @property
    def message(self) -> str:
        return self.reason or _MESSAGES.get(self.outcome, "")


# Why a claim found nothing, as the annotator reads it.
_MESSAGES = {
    ClaimOutcome.AT_LIMIT: "You hold as many tasks as you may at once.",
    ClaimOutcome.NO_PROJECTS: "You are not an active member of an active project.",
    ClaimOutcome.NOT_QUALIFIED: "You are not qualified for any of your projects yet.",
    ClaimOutcome.NONE_AVAILABLE: "No task is available for you right now.",
}


_CLAIM = "SELECT * FROM tasks_claim(%(annotator)s, %(project)s, %(now)s)"
# For the annotator a request's token acts as: its parameters are ``TOKEN_ANNOTATOR_SQL``'s.
_CLAIM_BY_TOKEN = f"SELECT * FROM tasks_claim({TOKEN_ANNOTATOR_SQL}, %(project)s, %(now)s)"  # noqa: S608


def _claim(statement: str, params: dict) -> dict:
    """Call ``tasks_claim`` (``_CLAIM`` or ``_CLAIM_BY_TOKEN``) and return its row by column
    name, without the ``r_`` prefix."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
        names = [column.name.removeprefix("r_") for column in cursor.description]
    return dict(zip(names, row, strict=True))


def claim_next(*, annotator: Annotator, project_id: int | None = None) -> ClaimResult:
    """Lease the best task the annotator may work on, across their projects or in one.

    The rules are those of ``tasks_claim`` (this module's docstring). An annotator who is not
    active is refused; otherwise the result holds the task, or the outcome saying why none.
    """
    now = timezone.now()
    row = _claim(_CLAIM, {"annotator": annotator.pk, "project": project_id, "now": now})
    outcome = ClaimOutcome(row["outcome"])
    if outcome in (ClaimOutcome.NOT_ACTIVE, ClaimOutcome.NOT_FOUND):
        raise PermissionDenied(
            f"Your annotator account is {row['status'] or 'missing'}.",
            code=ErrorCode.ANNOTATOR_NOT_ACTIVE,
        )
    if outcome == ClaimOutcome.NOT_QUALIFIED:
        return ClaimResult(outcome, projects=project_gaps(annotator, row["unqualified"], now))
    return _result(outcome, row, now)


def claim_by_token(*, token: dict, project_id: int | None = None) -> ClaimResult | None:
    """``claim_next`` for the annotator a request's token acts as, found in the claim's own
    statement (``TOKEN_ANNOTATOR_SQL``): a task, or that none is open now. None for any other
    outcome, which claimed nothing: the caller authenticates the request and claims again."""
    now = timezone.now()
    row = _claim(_CLAIM_BY_TOKEN, {**token, "project": project_id, "now": now})
    outcome = ClaimOutcome(row["outcome"])
    if outcome not in (ClaimOutcome.CLAIMED, ClaimOutcome.NONE_AVAILABLE):
        return None
    return _result(outcome, row, now)


def _result(outcome: ClaimOutcome, row: dict, now: datetime) -> ClaimResult:
    if outcome != ClaimOutcome.CLAIMED:
        return ClaimResult(outcome)
    return ClaimResult(
        outcome,
        ClaimedTask(
            assignment_id=row["assignment"],
            task_id=row["task"],
            # Django leaves jsonb undecoded on raw cursors; its JSON fields decode on reads.
            data=json.loads(row["data"]),
            project_id=row["project"],
            project_name=row["name"],
            kind=row["kind"],
            instructions=row["instructions"],
            label_schema=json.loads(row["schema"]),
            leased_at=now,
            lease_expires_at=row["expires"],
        ),
    )


def claim_after_submit(*, annotator: Annotator, submitted_now: bool) -> ClaimResult:
    """The annotator's next task, for a submit that asked for it: one request per task.

    After a submission it stored, this is ``claim_next`` across their projects. After one that
    was stored before (a request sent again when its answer was lost, or sent twice at once),
    it is the task they hold, the oldest first, when they hold one: the task the first answer
    carried, not a second one. An annotator who may no longer claim is told so here, not by
    failing the submission.
    """
    if not submitted_now:
        held = (
            Assignment.objects.filter(
                annotator=annotator,
                status=AssignmentStatus.ACTIVE,
                lease_expires_at__gt=timezone.now(),
            )
            .select_related("task", "project")
            .order_by("leased_at", "id")
            .first()
        )
        if held is not None:
            return ClaimResult(ClaimOutcome.CLAIMED, _claimed(held))
    try:
        return claim_next(annotator=annotator)
    except PermissionDenied as refused:
        return ClaimResult(ClaimOutcome.NOT_ACTIVE, reason=refused.message)


def _claimed(assignment: Assignment) -> ClaimedTask:
    project = assignment.project
    return ClaimedTask(
        assignment_id=assignment.pk,
        task_id=assignment.task_id,
        data=assignment.task.data,
        project_id=project.pk,
        project_name=project.name,
        kind=project.kind,
        instructions=project.instructions,
        label_schema=project.label_schema,
        leased_at=assignment.leased_at,
        lease_expires_at=assignment.lease_expires_at,
    )


def _refusal(status: str, holds_task: bool) -> Exception | None:
    """Why an assignment in ``status`` may not be acted on, or None when its holder may.

    ``holds_task``: its slot is still leased to it (a lease that lapsed unclaimed counts), or it
    is a gold task's, which holds no slot and which nobody else can take over.
    """
    if status == AssignmentStatus.SUBMITTED:
        return Conflict("This work was already submitted.", code=ErrorCode.ALREADY_SUBMITTED)
    if status == AssignmentStatus.RELEASED:
        return Conflict("You released this task.", code=ErrorCode.ALREADY_RELEASED)
    if status == AssignmentStatus.REVOKED:
        return PermissionDenied(
            "You may no longer work on this task: you were suspended or taken off its project, "
            "or the task was cancelled or its project archived. Your lease ended.",
            code=ErrorCode.ACCESS_ENDED,
        )
    if not holds_task:
        return Conflict(
            "Your lease expired and the task went to someone else.", code=ErrorCode.LEASE_LOST
        )
    return None


def _require_holder(assignment: Assignment, slot: Slot | None) -> Slot | None:
    """Refuse to act on work that was handed in, given back, or taken over by someone else.

    Read under the slot's and the assignment's locks, so the answer is the state that stands.
    Returns the slot, or None for a gold task's assignment (it holds none).
    """
    gold = assignment.slot_id is None
    refusal = _refusal(
        assignment.status, gold or (slot is not None and slot.state == SlotState.LEASED)
    )
    if refusal is not None:
        raise refusal
    return None if gold else slot


@transaction.atomic
def assignment_heartbeat(*, assignment: Assignment) -> Assignment:
    """Extend the lease by the project's lease length, while the annotator still holds it.

    A lease that lapsed but that nobody has taken over is the annotator's again.
    """
    now = timezone.now()
    slot = lock_slot_of(assignment)
    assignment = lock_assignment(assignment.pk)
    slot = _require_holder(assignment, slot)
    expires = now + timedelta(seconds=assignment.project.lease_seconds)
    if slot is not None:
        slot.lease_expires_at = expires
        slot.save(update_fields=["lease_expires_at"])
    assignment.lease_expires_at = expires
    assignment.status, assignment.ended_at = AssignmentStatus.ACTIVE, None
    assignment.save(update_fields=["lease_expires_at", "status", "ended_at"])
    return assignment


@transaction.atomic
def assignment_release(*, assignment: Assignment) -> Assignment:
    """Give the task back: its slot opens for someone else (never again for this annotator).

    Releasing again answers the released assignment, so a retried request is harmless.
    """
    now = timezone.now()
    slot = lock_slot_of(assignment)
    assignment = lock_assignment(assignment.pk)
    if assignment.status == AssignmentStatus.RELEASED:
        return assignment
    slot = _require_holder(assignment, slot)
    if slot is not None:
        slot.state, slot.assignment, slot.lease_expires_at = SlotState.OPEN, None, None
        slot.save(update_fields=["state", "assignment", "lease_expires_at"])
    assignment.status, assignment.ended_at = AssignmentStatus.RELEASED, now
    assignment.save(update_fields=["status", "ended_at"])
    return assignment


def active_seconds_check(value, *, claimed_at: datetime, now: datetime) -> int | None:
    """Return the active time a client reports, refused when it is longer than the lease held.

    Stats and throughput add these up: a figure longer than the time between the claim and the
    submit (plus ``ACTIVE_SECONDS_MARGIN``) cannot be true.
    """
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
    held = (now - claimed_at).total_seconds()
    if value > held + ACTIVE_SECONDS_MARGIN:
        raise ValidationFailed(
            "The active time is longer than the work was held.",
            fields={
                "active_seconds": [
                    f"{value} s is longer than the {held:.0f} s since it was claimed."
                ]
            },
        )
    return value


class SubmitResult(StrEnum):
    """What ``tasks_submit`` answers in ``r_result``."""

    SUBMITTED = "submitted"
    RESUBMITTED = "resubmitted"
    SUBMITTED_BEFORE = "submitted_before"
    REFUSED = "refused"
    NOT_PLAIN = "not_plain"


_SUBMIT = (
    "SELECT * FROM tasks_submit(%(assignment)s, %(payload)s, %(active_seconds)s, "
    "%(duration)s, %(now)s, %(plain)s, (SELECT v FROM project_reacts))"
)
# The submission ``tasks_submit`` stored, if it stored one, from what the request knows: the
# statement's other parts see the tables as they were when it began, without the new row.
_STORED = """
    SELECT r_annotation AS id, %(project)s::bigint AS project_id, %(task)s::bigint AS task_id,
           %(annotator)s::bigint AS annotator_id, %(duration)s::float8 AS duration_seconds,
           %(now)s::timestamptz AS submitted_at, %(leased_at)s::timestamptz AS leased_at
    FROM submit WHERE r_result = 'submitted'
"""


@functools.cache
def _submit_sql(sql: events.SubmittedSql | None) -> str:
    """The submit's statement: whether the project reacts (``events.submitted_reacts``), the
    call, and the records of a fresh submission (``events.SubmittedSql.records``)."""
    reacts = events.submitted_reacts("%(project)s::bigint")
    records = "" if sql is None else f", {sql.records('stored')}"
    return (
        f"WITH project_reacts AS (SELECT {reacts} AS v), "  # noqa: S608
        f"submit AS MATERIALIZED ({_SUBMIT}), stored AS ({_STORED}){records} "
        "SELECT submit.*, (SELECT v FROM project_reacts) AS r_reacts FROM submit"
    )


def _submit(
    assignment: Assignment, payload, active_seconds: int | None, now: datetime, *, plain: bool
) -> dict:
    """Call ``tasks_submit``, with what other apps record of a fresh submission, and return its
    row by column name, without the ``r_`` prefix."""
    duration = (now - assignment.leased_at).total_seconds()
    with connection.cursor() as cursor:
        cursor.execute(
            _submit_sql(events.submitted_sql()),
            {
                "assignment": assignment.pk,
                "payload": Jsonb(payload),
                "active_seconds": active_seconds,
                "duration": duration,
                "now": now,
                "plain": plain,
                "project": assignment.project_id,
                "task": assignment.task_id,
                "annotator": assignment.annotator_id,
                "leased_at": assignment.leased_at,
            },
        )
        row = cursor.fetchone()
        names = [column.name.removeprefix("r_") for column in cursor.description]
    return dict(zip(names, row, strict=True)) | {"duration": duration}


def assignment_submit(
    *,
    assignment: Assignment,
    payload,
    active_seconds: int | None = None,
) -> tuple[Annotation, bool]:
    """Store the annotator's work; return it and whether it was new.

    Submitting the same payload again returns the stored annotation (a retried request is
    harmless); a different payload for a submitted assignment is a conflict. Work sent back for
    rework is submitted again the same way, as the annotation's next version. The payload is
    validated by the project's kind first, and nothing is stored when it is invalid.

    The locks, checks and writes are ``tasks_submit`` (``submit.sql`` beside this module), one
    round trip; the assignment's project and task are the ones ``assignment`` was read with.
    A plain submission (a fresh one of a regular task, in a project where nothing reacts to it)
    is that one statement, its own transaction when the caller has none: nothing is left to do
    in a transaction after it. Anything else, or a plain attempt the statement finds is not
    (the project reacts now, the work came back for rework), is stored in a transaction, with
    ``annotation_submitted``'s handlers. ``assignment.submission_reacts``, when the read that
    found it says so, spares a project that reacts the plain attempt.
    """
    active_seconds, now = _submission_checked(assignment, payload, active_seconds)
    if (
        assignment.slot_id is not None
        and getattr(assignment, "submission_reacts", None) is not True
    ):
        stored = _work_store(assignment, payload, active_seconds, now, plain=True)
        if stored is not None:
            return stored
    with transaction.atomic():
        return _work_store(assignment, payload, active_seconds, now, plain=False)


@transaction.atomic
def assignment_submit_next(
    *,
    assignment: Assignment,
    payload,
    active_seconds: int | None = None,
) -> tuple[Annotation, bool, ClaimResult]:
    """``assignment_submit``, then the annotator's next task (``claim_after_submit``), in one
    transaction: one request per task.

    The submission's locks are held until the claim after it commits too, so a request sent
    twice at once (a double click) claims once: the second waits for the first, then finds the
    work stored before and answers the task the first claimed. A claim that finds nothing, or an
    annotator suspended meanwhile, is told in the result and the submission stands; only an
    error of the database (a timeout, say) undoes both, and the request can be sent again.
    """
    active_seconds, now = _submission_checked(assignment, payload, active_seconds)
    annotation, created = _work_store(assignment, payload, active_seconds, now, plain=False)
    return (
        annotation,
        created,
        claim_after_submit(annotator=assignment.annotator, submitted_now=created),
    )


def _submission_checked(
    assignment: Assignment, payload, active_seconds: int | None
) -> tuple[int | None, datetime]:
    """The active time to store and the submission's time, once the active time and the payload
    are valid; a bad active time and a bad payload are told together."""
    now = timezone.now()
    problems = FieldErrors()
    with problems.collect():
        active_seconds = active_seconds_check(
            active_seconds, claimed_at=assignment.leased_at, now=now
        )
    project = assignment.project
    issues = get_kind(project.kind).validate_payload(
        payload, project.label_schema, assignment.task.data
    )
    problems.update(issues_by_path(issue.under("payload") for issue in issues))
    problems.raise_if_any("Invalid submission.")
    return active_seconds, now


def _work_store(
    assignment: Assignment, payload, active_seconds: int | None, now: datetime, *, plain: bool
) -> tuple[Annotation, bool] | None:
    """Store valid work (``tasks_submit``); None when ``plain`` was asked and it is not."""
    row = _submit(assignment, payload, active_seconds, now, plain=plain)
    result = SubmitResult(row["result"])
    if result == SubmitResult.NOT_PLAIN:
        return None
    # A retried request racing the first one waited on the locks ``tasks_submit`` took, so it
    # sees the first's result: in a transaction, still under those locks; after a plain call,
    # whose locks ended with it, the annotation it names was committed before it read it.
    if result == SubmitResult.SUBMITTED_BEFORE:
        existing = Annotation.objects.get(pk=row["annotation"])
        if existing.payload == payload:
            return existing, False
        raise Conflict(
            "This assignment was already submitted with a different payload.",
            code=ErrorCode.ALREADY_SUBMITTED,
        )
    if result == SubmitResult.REFUSED:
        raise _refusal(row["status"], row["holds"])
    if result == SubmitResult.RESUBMITTED:
        # Work a reviewer rejected, sent back to its author (``assignment_rework``): stored as
        # the annotation's next version, under the locks ``tasks_submit`` took.
        annotation = annotation_resubmit(
            Annotation.objects.get(pk=row["annotation"]),
            assignment=assignment,
            payload=payload,
            active_seconds=active_seconds,
            now=now,
        )
    else:
        # What ``tasks_submit`` inserted, without reading it back; the annotator and the task
        # are the ones the caller read, so that nothing is loaded again to answer.
        annotation = Annotation(
            pk=row["annotation"],
            assignment=assignment,
            task=assignment.task,
            project=assignment.project,
            annotator=assignment.annotator,
            payload=payload,
            active_seconds=active_seconds,
            duration_seconds=row["duration"],
            submitted_at=now,
        )
        annotation._state.adding = False
    if row["seats"] is not None:
        events.publish(events.TASK_COMPLETED, task_id=assignment.task_id, seats=row["seats"])
    if not plain:
        # Scored in this transaction by qa's in-transaction handler when gold.
        events.publish(
            events.ANNOTATION_SUBMITTED,
            annotation_id=annotation.pk,
            gold=assignment.slot_id is None,
            reacts=row["reacts"] if result == SubmitResult.SUBMITTED else None,
        )
    return annotation, True


def assignments_expire(*, now: datetime | None = None, batch_size: int = 1_000) -> int:
    """Record lapsed leases as expired, for reporting; return how many. Claims never need it.

    Lapsed leases are found through their slots, which are locked first (the order of
    ``tasks/locks.py``), skipping any a heartbeat, submit or claim holds: a lease extended
    meanwhile is read as extended, never overwritten. The slot stays leased, so its holder may
    still submit, or heartbeat it back to life, until someone else claims it. ``ended_at`` is
    when the lease lapsed. Safe to run twice or concurrently.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            holders = lock_lapsed_slots(now=now, limit=batch_size)
            if not holders:
                return expired
            expired += Assignment.objects.filter(
                pk__in=holders, status=AssignmentStatus.ACTIVE
            ).update(status=AssignmentStatus.EXPIRED, ended_at=F("lease_expires_at"))
