"""Dynamic overlap: a task whose annotators agree less than the project's threshold gets one more
seat, up to ``overlap_max``, once per agreement computation, and goes back to the claim queue."""

import pytest

from qa.models import TaskAgreement
from qa.task_agreement import task_agreement_compute
from tasks.models import Project, Slot, SlotState, Task
from tasks.services.claims import claim_next
from tasks.services.projects import project_archive
from tasks.services.tasks import task_cancel, task_seat_add
from tests.helpers import at_once
from tests.qa.agreement_helpers import crowd_project, one_task, work
from tests.qa.gold_helpers import gold_project

DYNAMIC = {"overlap": 2, "overlap_max": 3, "agreement_threshold": 0.8}


def seats(task) -> list[tuple[int, str]]:
    return list(Slot.objects.filter(task=task).order_by("seat").values_list("seat", "state"))


def test_a_disagreement_adds_one_seat_which_the_claim_serves_to_someone_new_up_to_the_max(
    org, django_capture_on_commit_callbacks
):
    project, (a, b, c, d) = crowd_project(org, people=4, **DYNAMIC)
    with django_capture_on_commit_callbacks(execute=True):
        work(a, project, {"label": "car"})
        work(b, project, {"label": "person"})
    task = one_task(project)
    agreement = TaskAgreement.objects.get(task=task)
    assert (agreement.value, agreement.seats, agreement.seat_added) == (0.0, 2, True)
    assert task.completed_at is None
    assert seats(task) == [(0, SlotState.DONE), (1, SlotState.DONE), (2, SlotState.OPEN)]
    # Those who worked on it are never served it again; someone new is.
    assert claim_next(annotator=a, project_id=project.pk).claimed is None
    with django_capture_on_commit_callbacks(execute=True):
        third = work(c, project, {"label": "car"})
    assert third.task_id == task.pk
    task.refresh_from_db()
    assert task.completed_at is not None
    again = TaskAgreement.objects.get(task=task)
    # Still under the threshold (1/3), but at overlap_max: no fourth seat.
    assert (again.value, again.annotations, again.seats, again.seat_added) == (
        pytest.approx(1 / 3),
        3,
        3,
        False,
    )
    assert len(seats(task)) == 3
    assert claim_next(annotator=d, project_id=project.pk).claimed is None


def test_agreement_at_the_threshold_or_a_threshold_of_zero_adds_no_seat(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org, people=2, **DYNAMIC)
    off, others = crowd_project(org, people=2, overlap=2, overlap_max=3, name="off")
    with django_capture_on_commit_callbacks(execute=True):
        for person in people:
            work(person, project, {"label": "car"})
        work(others[0], off, {"label": "car"})
        work(others[1], off, {"label": "person"})
    for each in (project, off):
        assert len(seats(one_task(each))) == 2
        assert one_task(each).completed_at is not None


def test_the_job_delivered_again_adds_no_second_seat(org, django_capture_on_commit_callbacks):
    project, people = crowd_project(org, people=2, **DYNAMIC | {"overlap_max": 5})
    with django_capture_on_commit_callbacks(execute=True):
        work(people[0], project, {"label": "car"})
        work(people[1], project, {"label": "person"})
    task = one_task(project)
    assert len(seats(task)) == 3
    assert task_agreement_compute(task_id=task.pk) is None
    # Even were the task complete again with the seats it had, the decision was for 2 seats.
    assert task_seat_add(task_id=task.pk, seats=2) is False
    assert len(seats(task)) == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_computations_of_one_disagreement_add_one_seat(org):
    project, people = crowd_project(org, people=2, overlap=2, overlap_max=5)
    work(people[0], project, {"label": "car"})
    work(people[1], project, {"label": "person"})
    # Its job ran with dynamic overlap off; now on, the threads compute it anew at once.
    Project.objects.filter(pk=project.pk).update(agreement_threshold=0.8)
    TaskAgreement.objects.all().delete()
    task = one_task(project)
    results = at_once(*[lambda: task_agreement_compute(task_id=task.pk)] * 4)
    assert len(seats(task)) == 3
    # The first stored the agreement and added the seat; the others found the task reopened.
    stored = [result for result in results if result is not None]
    assert len(stored) == 1 and stored[0].seat_added
    assert TaskAgreement.objects.get(task=task).seat_added


@pytest.mark.django_db(transaction=True)
def test_concurrent_seat_adds_for_one_decision_add_one_seat(org):
    project, people = crowd_project(org, people=2, overlap=2, overlap_max=5)
    for person in people:
        work(person, project, {"label": "car"})
    task = one_task(project)
    added = at_once(*[lambda: task_seat_add(task_id=task.pk, seats=2)] * 6)
    assert sorted(added) == [False] * 5 + [True]
    assert seats(task)[-1] == (2, SlotState.OPEN) and len(seats(task)) == 3


def test_no_seat_for_gold_cancelled_or_archived(org):
    gold = gold_project(org, regular=0, gold=1, overlap=2, overlap_max=3, name="gold")
    gold_task = Task.objects.get(project=gold)
    Task.objects.filter(pk=gold_task.pk).update(completed_at=gold_task.created_at)
    assert task_seat_add(task_id=gold_task.pk, seats=0) is False
    assert not Slot.objects.filter(task=gold_task).exists()

    project, people = crowd_project(org, tasks=2, people=2, **DYNAMIC)
    cancelled = Task.objects.filter(project=project).order_by("pk").last()
    task_cancel(task=cancelled, actor=None)
    assert task_seat_add(task_id=cancelled.pk, seats=2) is False
    assert len(seats(cancelled)) == 2

    # Complete without its job (no after-commit callbacks run here), then archived.
    work(people[0], project, {"label": "car"})
    work(people[1], project, {"label": "person"})
    task = Task.objects.filter(project=project, completed_at__isnull=False).get()
    project_archive(project=project, actor=None)
    agreement = task_agreement_compute(task_id=task.pk)
    assert (agreement.value, agreement.seat_added) == (0.0, False)
    assert len(seats(task)) == 2
