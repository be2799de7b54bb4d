"""Invariant 1 under attack: 32 concurrent claimers on PostgreSQL, overlap 1 and 3.

No task is ever held by more annotators than its overlap, and no annotator gets the same task
twice, while claimers race, release work, and let leases lapse for others to take over.
"""

import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, F
from django.utils import timezone

from tasks.models import Assignment, AssignmentStatus, Slot, SlotState, Task
from tasks.services.claims import assignment_release, claim_next
from tests.conftest import import_rows, make_project, staff
from workforce import services

pytestmark = pytest.mark.django_db(transaction=True)

CLAIMERS = 32


def rows(count: int) -> list[dict]:
    return [{"external_id": str(i), "data": {"width": 10, "height": 10}} for i in range(count)]


def run_claimers(
    annotators, project, *, seconds: float = 120, churn: float = 0.03
) -> list[list[Assignment]]:
    """Each thread claims until nothing is left, releasing and lapsing ``churn`` of its leases."""
    barrier = threading.Barrier(len(annotators))
    claimed: list[list[Assignment]] = [[] for _ in annotators]
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        rng = random.Random(index)
        annotator = annotators[index]
        try:
            barrier.wait()
            misses = 0
            while time.monotonic() < deadline and misses < 3:
                claim = claim_next(annotator=annotator, project_id=project.pk).claimed
                if claim is None:
                    # The rest may only be locked by other claimers for a moment.
                    misses += 1
                    time.sleep(0.01)
                    continue
                misses = 0
                assignment = Assignment.objects.get(pk=claim.assignment_id)
                claimed[index].append(assignment)
                roll = rng.random()
                if roll < churn:
                    assignment_release(assignment=assignment)
                elif roll < 2 * churn:
                    # Let this lease lapse at once, so another claimer may take the slot over.
                    past = timezone.now() - timedelta(seconds=1)
                    Slot.objects.filter(assignment=assignment).update(lease_expires_at=past)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(annotators))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    return claimed


def assert_invariants(project, claimed) -> None:
    # Nobody was handed the same task twice.
    for per_annotator in claimed:
        tasks = [a.task_id for a in per_annotator]
        assert len(tasks) == len(set(tasks))
    assert not (
        Assignment.objects.values("task_id", "annotator_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .exists()
    )
    # Every slot is held by at most one assignment, of its own task.
    holders = Slot.objects.filter(project=project, assignment__isnull=False)
    assert not holders.exclude(assignment__slot_id=F("pk")).exists()
    assert holders.count() == holders.values("assignment_id").distinct().count()
    # Per task, holders (leased or submitted) never exceed the overlap.
    held = Counter(
        Slot.objects.filter(
            project=project, state__in=[SlotState.LEASED, SlotState.DONE]
        ).values_list("task_id", flat=True)
    )
    assert max(held.values()) <= project.overlap
    # Each live lease belongs to a distinct annotator on its task.
    for task_id in list(held)[:2000]:
        annotators = list(
            Assignment.objects.filter(
                pk__in=Slot.objects.filter(task_id=task_id).values("assignment_id")
            ).values_list("annotator_id", flat=True)
        )
        assert len(annotators) == len(set(annotators))
    # Every claim either still holds its slot, was released, or lost a lapsed lease.
    total = sum(len(c) for c in claimed)
    assert Assignment.objects.filter(project=project).count() == total


@pytest.mark.parametrize(("overlap", "tasks"), [(1, 10_500), (3, 3_500)])
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
