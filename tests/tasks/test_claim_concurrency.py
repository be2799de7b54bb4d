"""Invariant 1 under attack: 32 concurrent claimers on PostgreSQL, overlap 1 and 3.

No task is ever held by more annotators than its overlap, and no annotator gets the same task
twice, while claimers race, release work, and let leases lapse for others to take over.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tasks.models import Assignment, AssignmentStatus, Slot, SlotState, Task
from tasks.services.claims import (
    assignment_heartbeat,
    assignment_submit,
    assignments_expire,
    claim_next,
)
from tests.helpers import assert_invariants, import_rows, make_project, run_claimers, staff
from workforce import services

# Every test here races threads on PostgreSQL for seconds: slow.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLAIMERS = 32


def rows(count: int) -> list[dict]:
    return [{"external_id": str(i), "data": {"width": 10, "height": 10}} for i in range(count)]


# 7,200 seats either way: 32 claimers contend on every one of them all along, and the suite
# stays within its ten minutes on a slow machine (10,500 seats took 51 s of its 608).
@pytest.mark.parametrize(("overlap", "tasks"), [(1, 7_200), (3, 2_400)])
def test_concurrent_claimers_never_break_overlap_or_repeat_a_task(org, overlap, tasks):
    project = make_project(org, overlap=overlap, max_concurrent_tasks=1000)
    import_rows(project, rows(tasks))
    annotators = [org.add_annotator(f"c{i}", max_concurrent_tasks=1000) for i in range(CLAIMERS)]
    staff(project, *annotators)
    claimed = run_claimers(annotators, project)
    # Slots released at the very end may still be open; one more pass by everyone takes them,
    # so none was lost.
    for index, annotator in enumerate(annotators):
        while claim := claim_next(annotator=annotator, project_id=project.pk).claimed:
            claimed[index].append(Assignment.objects.get(pk=claim.assignment_id))
    total = sum(len(c) for c in claimed)
    # Every slot was handed out, plus the re-claims of released and lapsed ones.
    assert total >= tasks * overlap
    assert not Slot.objects.filter(project=project, state=SlotState.OPEN).exists()
    assert_invariants(project, claimed)
    assert Task.objects.filter(project=project).count() == tasks
    print(f"overlap {overlap}: {total} claims by {CLAIMERS} claimers")


def test_claimers_racing_a_lapsing_lease_take_it_exactly_once(org):
    project = make_project(org, overlap=1)
    import_rows(project, rows(1))
    first = org.annotator
    racers = [org.add_annotator(f"r{i}") for i in range(CLAIMERS)]
    staff(project, first, *racers)
    original = Assignment.objects.get(pk=claim_next(annotator=first).claimed.assignment_id)
    Slot.objects.filter(assignment=original).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    claimed = run_claimers(racers, project, seconds=30, churn=0)
    winners = [a for per in claimed for a in per]
    assert len(winners) == 1
    slot = Slot.objects.get(project=project)
    assert slot.assignment_id == winners[0].pk
    # The winner's claim recorded the takeover: the lapsed holder's assignment has ended.
    assert Assignment.objects.get(pk=original.pk).status == AssignmentStatus.EXPIRED
    services.annotator_set_status(annotator=first, action="suspend", actor=None, reason="done")


def test_the_expiry_job_never_overwrites_a_lease_a_heartbeat_just_extended(org):
    """Heartbeat and expiry race on a lapsed lease: the extended lease must stand as active."""
    project = make_project(org, overlap=1)
    import_rows(project, rows(40))
    staff(project, org.annotator)
    for _ in range(40):
        assignment = Assignment.objects.get(
            pk=claim_next(annotator=org.annotator).claimed.assignment_id
        )
        past = timezone.now() - timedelta(seconds=1)
        Slot.objects.filter(assignment=assignment).update(lease_expires_at=past)
        Assignment.objects.filter(pk=assignment.pk).update(lease_expires_at=past)
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def heartbeat(assignment=assignment, start=start, errors=errors):
            try:
                start.wait()
                assignment_heartbeat(assignment=assignment)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        def expire(start=start, errors=errors):
            try:
                start.wait()
                assignments_expire()
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=heartbeat), threading.Thread(target=expire)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        # Neither side may fail, a deadlock or a lock timeout included.
        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        assignment.refresh_from_db()
        slot = Slot.objects.get(assignment=assignment)
        assert slot.lease_expires_at > timezone.now()
        assert assignment.status == AssignmentStatus.ACTIVE, "an extended lease was expired"
        assert assignment.ended_at is None
        assert assignment.lease_expires_at == slot.lease_expires_at
        assignment_submit(assignment=assignment, payload={"boxes": []})
