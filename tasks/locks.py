"""Row locks for task rows. Take them only through these helpers.

Order, whenever several are taken in one transaction: project, annotator (workforce,
``workforce/locks.py``), project member, certification (workforce), slot, assignment, task. The
claim locks the annotator then one slot; submit and release lock the slot, then the assignment,
then the task (a gold task's submit locks its project member first); rework locks the
annotator, then the slot, the assignment and the task; writers of seats lock the project, then
the slots of a range of tasks; a quality action (``qa.rules``) locks the annotator, then the
membership, then certifications. Taking them in this order everywhere means no deadlock. An
import's own row is locked alone.

Each helper locks its own table's rows only (``FOR NO KEY UPDATE OF`` that table): rows it joins
for the caller are read, not locked, so that no helper takes a lock its caller's place in the
order does not allow. ``NO KEY`` because no service changes a key (the id, or a column under a
unique constraint) of a row it locks: other writers of the row wait, while inserts that merely
reference it (a slot's task, an assignment's annotator) do not. A helper for a transaction that
changes a key must take plain ``FOR UPDATE`` instead.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction
from psycopg.errors import LockNotAvailable

from config.errors import Conflict, ErrorCode

from .models import (
    Assignment,
    AssignmentStatus,
    ImportStatus,
    Project,
    ProjectMember,
    Slot,
    SlotState,
    Task,
    TaskImport,
)


def lock_project(project_id: int) -> Project:
    """Lock a project's row for a change of its settings; its organization is read along.

    An all-or-nothing import holds the row until its last row is written, however long the file
    (``lock_project_overlap``): a change that waits for one past the lock timeout is refused
    with 409, naming the import, rather than answered as any other wait is (503, retry shortly).
    """
    locked = Project.objects.select_for_update(of=("self",), no_key=True)
    try:
        # A savepoint (every caller is in a transaction): after a timeout the import can be read.
        with transaction.atomic():
            return locked.select_related("organization").get(pk=project_id)
    except OperationalError as exc:
        if not isinstance(exc.__cause__, LockNotAvailable):
            raise
        running = TaskImport.objects.filter(project_id=project_id, status=ImportStatus.RUNNING)
        writing = running.values_list("pk", flat=True).first()
        if writing is None:
            raise
        raise Conflict(
            f"Import {writing} is writing this project's tasks and holds the project meanwhile; "
            "change it once the import is done.",
            code=ErrorCode.IMPORT_IN_PROGRESS,
        ) from exc


def lock_project_overlap(project_id: int) -> int:
    """Lock the project's row against changes until the transaction ends; return its overlap.

    Writers of seats (imports, ``project_seats_add``) hold it while they write, so that a raise
    of the overlap and the seats it implies never miss each other. It does not block the claims'
    foreign-key checks (``FOR NO KEY UPDATE``).

    It waits past the connection's ``lock_timeout``, for as long as the holder keeps the lock
    (``statement_timeout`` still bounds it): every writer of seats is a job, and waits its turn
    behind the project's import, which holds the lock until its file is written, however long
    that takes.
    """
    locked = Project.objects.select_for_update(of=("self",), no_key=True)
    locked = locked.values_list("overlap", flat=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', '0', true)"
        )
        limit = cursor.fetchone()[0]
        overlap = locked.get(pk=project_id)
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [limit])
    return overlap


def lock_project_member(project_id: int, annotator_id: int) -> ProjectMember | None:
    """Lock an annotator's membership of a project (a quality action changes or restores it)."""
    locked = ProjectMember.objects.select_for_update(of=("self",), no_key=True)
    return locked.filter(project_id=project_id, annotator_id=annotator_id).first()


def lock_seats(project_id: int, first_task: int, last_task: int) -> list[tuple[int, int, str]]:
    """Lock the slots of the project's tasks with ids in [first_task, last_task].

    Returns (task id, seat, state) in seat order. Claims in flight are waited for, so each
    slot's state is final until the transaction ends.
    """
    seats = Slot.objects.select_for_update(of=("self",), no_key=True).filter(
        project_id=project_id, task_id__gte=first_task, task_id__lte=last_task
    )
    return list(seats.order_by("seat").values_list("task_id", "seat", "state"))


def lock_import(import_id: int, **where) -> TaskImport | None:
    """Lock an import (with its project) if it exists and matches ``where``; else None."""
    jobs = TaskImport.objects.select_for_update(of=("self",), no_key=True)
    jobs = jobs.select_related("project")
    return jobs.filter(pk=import_id, **where).first()


# Advisory lock keys of import runs: this base plus the import's id, in a range no other lock
# of Assay's uses.
IMPORT_RUN_LOCK_BASE = 0x4153_5341_0000_0000


def lock_import_run(import_id: int, *, wait_ms: int) -> bool:
    """Take the run lock of an import for this session; False if another session holds it
    after ``wait_ms`` milliseconds.

    A session advisory lock, not a row lock: it lasts until the connection closes (or its
    process dies, when PostgreSQL ends the session), so it marks a live run of the import
    across its many transactions. It is never released otherwise: close the connection, which
    must be one of the run's own (its ``lock_timeout`` is changed here).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{wait_ms}ms"])
        try:
            cursor.execute("SELECT pg_advisory_lock(%s)", [IMPORT_RUN_LOCK_BASE + import_id])
        except OperationalError as exc:
            if isinstance(exc.__cause__, LockNotAvailable):
                return False
            raise
        return True


def lock_slot_of(assignment: Assignment) -> Slot | None:
    """Lock the slot an assignment holds, or return None when it no longer holds it."""
    return (
        Slot.objects.select_for_update(of=("self",), no_key=True)
        .filter(pk=assignment.slot_id, assignment_id=assignment.pk)
        .first()
    )


def lock_assignment(assignment_id: int) -> Assignment:
    """Lock an assignment; its project and task are read along."""
    return (
        Assignment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("project", "task")
        .get(pk=assignment_id)
    )


def lock_task(task_id: int) -> None:
    """Lock a task's row, to decide whether it is complete; its data is not read."""
    Task.objects.select_for_update(of=("self",), no_key=True).values_list("pk").get(pk=task_id)


def lock_slots(**where) -> list[Slot]:
    """Lock the slots matching ``where`` (a task's seats, an annotator's leases), in id order.

    Claims in flight are waited for, so each slot's state and holder are final until the
    transaction ends. Holders are locked after, with ``lock_assignments``.
    """
    locked = Slot.objects.select_for_update(of=("self",), no_key=True).filter(**where)
    return list(locked.order_by("pk"))


def lock_assignments(assignment_ids: list[int]) -> list[Assignment]:
    """Lock assignments in id order (after their slots); nothing related is read along."""
    locked = Assignment.objects.select_for_update(of=("self",), no_key=True)
    return list(locked.filter(pk__in=assignment_ids).order_by("pk"))


def lock_lapsed_slots(*, now, limit: int) -> list[int]:
    """Lock up to ``limit`` slots whose lease lapsed while their holder's assignment is still
    active, skipping slots others hold; return the holders' assignment ids, in slot order."""
    lapsed = Slot.objects.select_for_update(of=("self",), no_key=True, skip_locked=True).filter(
        state=SlotState.LEASED,
        lease_expires_at__lte=now,
        assignment__status=AssignmentStatus.ACTIVE,
    )
    return list(lapsed.order_by("pk").values_list("assignment_id", flat=True)[:limit])


# Advisory lock keys of seats runs: this class and the project's id (the two-key form, a key
# space apart from the one-key form of import runs).
SEATS_RUN_LOCK_CLASS = 0x4153_5341


@contextmanager
def seats_run(project_id: int, *, alone: bool = False) -> Iterator[bool]:
    """Mark a run adding a project's seats as live for the block, in this session.

    Runs share the mark (two at once are safe: each adds only what is missing, under the
    project's and the slots' locks). ``alone`` takes it only when no run is live, without
    waiting, for the catch-up; it yields whether it got it.
    """
    take = "pg_try_advisory_lock" if alone else "pg_try_advisory_lock_shared"
    release = "pg_advisory_unlock" if alone else "pg_advisory_unlock_shared"
    key = [SEATS_RUN_LOCK_CLASS, project_id]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {take}(%s, %s)", key)
        taken = cursor.fetchone()[0]
    try:
        yield taken
    finally:
        if taken:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {release}(%s, %s)", key)
