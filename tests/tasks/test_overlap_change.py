"""Raising a project's overlap once it has tasks: every task gets its new seats, in order."""

import threading
import time

import pytest
from django.db import OperationalError, connection, transaction
from django.test import TestCase

from tasks.locks import lock_project_overlap, seats_run
from tasks.models import Assignment, Project, Slot, SlotState, Task
from tasks.services import projects as projects_service
from tasks.services.claims import assignment_submit, claim_next
from tasks.services.projects import project_seats_add, project_seats_catch_up, project_update
from tests.helpers import (
    assert_invariants,
    image_rows,
    import_rows,
    make_project,
    project_row_held,
    run_claimers,
    staff,
    wait_for,
)
from workforce.models import AuditEvent, Role

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}


def seats(task_id: int) -> list[str]:
    return list(
        Slot.objects.filter(task_id=task_id).order_by("seat").values_list("state", flat=True)
    )


def backend_pid() -> int:
    """The PostgreSQL backend of this thread's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def someone_waits_on(pid: int) -> bool:
    """Whether another backend is waiting for a lock that backend ``pid`` holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid)))",
            [pid],
        )
        return cursor.fetchone()[0]


def waits_on(thread: threading.Thread, pid: int) -> bool:
    """Wait until ``thread`` blocks on a lock of backend ``pid`` or ends; say which."""
    wait_for(
        lambda: someone_waits_on(pid) or not thread.is_alive(),
        timeout=10,
        interval=0.01,
        what="a lock wait or the end of the thread",
    )
    return thread.is_alive() and someone_waits_on(pid)


@pytest.mark.django_db
def test_new_seats_open_behind_seats_already_taken_and_reopen_complete_tasks(org):
    project = make_project(org)
    import_rows(project, image_rows(3))
    other = org.add_annotator("other")
    staff(project, org.annotator, other)
    claim_next(annotator=org.annotator)  # takes the first task: seat 0 leased
    held = claim_next(annotator=other).claimed
    assignment_submit(assignment=Assignment.objects.get(pk=held.assignment_id), payload=BOX)
    done_task = Task.objects.get(pk=held.task_id)
    assert done_task.completed_at is not None

    project_update(project=project, actor=None, overlap=3)
    assert project_seats_add(project=project) == 6
    leased_task = Assignment.objects.get(annotator=org.annotator).task_id
    open_task = (
        Task.objects.filter(project=project).exclude(pk__in=[leased_task, done_task.pk]).get().pk
    )
    assert seats(open_task) == ["open", "waiting", "waiting"]
    assert seats(leased_task) == ["leased", "open", "waiting"]
    assert seats(done_task.pk) == ["done", "open", "waiting"]
    done_task.refresh_from_db()
    assert done_task.completed_at is None
    # Run again: nothing is missing, nothing is added.
    assert project_seats_add(project=project) == 0
    # The new seats go to other annotators; nobody gets a task twice.
    third = org.add_annotator("third")
    staff(project, third)
    taken = {claim_next(annotator=third).claimed.task_id for _ in range(3)}
    assert taken == {open_task, leased_task, done_task.pk}
    assert claim_next(annotator=other).claimed.task_id != done_task.pk


@pytest.mark.django_db
def test_a_raise_whose_seats_job_was_lost_is_seated_by_the_catch_up(org):
    project = make_project(org)
    import_rows(project, image_rows(2))
    empty = make_project(org, name="No tasks yet")
    assert project.seated_overlap == empty.seated_overlap == 1
    # The raise commits; its job's message never reaches a worker (the broker lost it).
    with TestCase.captureOnCommitCallbacks(execute=False):
        project_update(project=project, actor=None, overlap=3)
    project_update(project=empty, actor=None, overlap=2)  # nothing to seat: seated at once
    assert list(Project.objects.order_by("pk").values_list("overlap", "seated_overlap")) == [
        (3, 1),
        (2, 2),
    ]
    assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [["open"]] * 2

    assert project_seats_catch_up() == 1
    assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [
        ["open", "waiting", "waiting"]
    ] * 2
    project.refresh_from_db()
    assert project.seated_overlap == 3
    assert project_seats_catch_up() == 0  # nothing behind any more
    # The bookkeeping is not a setting: the audit record of the raise names the overlap only.
    updated = AuditEvent.objects.filter(verb="project.updated").order_by("id")
    updated = updated.values_list("after", flat=True)
    assert list(updated) == [{"overlap": 3}, {"overlap": 2}]


@pytest.mark.django_db
def test_a_seats_run_that_fails_is_finished_by_the_catch_up(org, monkeypatch):
    project = make_project(org)
    import_rows(project, image_rows(5))
    monkeypatch.setattr("tasks.services.projects.SEATS_BATCH_SIZE", 2)
    batches = []
    real = projects_service.lock_seats

    def database_gone_at_the_second_batch(*args):
        batches.append(args)
        if len(batches) == 2:
            raise OperationalError("the database went away")
        return real(*args)

    monkeypatch.setattr("tasks.services.projects.lock_seats", database_gone_at_the_second_batch)
    with pytest.raises(OperationalError), TestCase.captureOnCommitCallbacks(execute=True):
        project_update(project=project, actor=None, overlap=2)
    project.refresh_from_db()
    assert (project.overlap, project.seated_overlap) == (2, 1)
    assert sum(len(seats(t.pk)) for t in Task.objects.all()) == 7  # the first batch's two

    assert project_seats_catch_up() == 1
    assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [["open", "waiting"]] * 5
    project.refresh_from_db()
    assert project.seated_overlap == 2


@pytest.mark.django_db(transaction=True)
def test_the_catch_up_leaves_a_project_whose_seats_run_is_live_to_that_run(org):
    project = make_project(org)
    import_rows(project, image_rows(2))
    Project.objects.filter(pk=project.pk).update(overlap=2)  # raised; its job is running
    live, finish = threading.Event(), threading.Event()

    def running_job() -> None:
        try:
            with seats_run(project.pk):
                live.set()
                finish.wait(10)
        finally:
            connection.close()

    job = threading.Thread(target=running_job)
    job.start()
    try:
        assert live.wait(10)
        assert project_seats_catch_up() == 0
        assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [["open"]] * 2
    finally:
        finish.set()
        job.join(10)
    assert project_seats_catch_up() == 1  # that run ended without seating it: this one does
    assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [["open", "waiting"]] * 2


@pytest.mark.django_db
def test_raising_through_the_api_adds_seats_and_lowering_is_refused(org):
    project = make_project(org)
    import_rows(project, image_rows(4))
    client = org.client(Role.MANAGER)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 2})
    assert response.status_code == 200 and response.json()["overlap"] == 2
    progress = client.get(f"/api/v1/projects/{project.pk}/").json()["progress"]
    assert progress["annotations_needed"] == 8
    lowered = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 1})
    assert lowered.status_code == 409
    assert lowered.json()["error"]["fields"]["overlap"] == [
        "Tasks have 2 seats each; it cannot go lower."
    ]
    # Tasks imported after the raise come with every seat.
    import_rows(project, image_rows(1, start=10))
    assert seats(Task.objects.get(external_id="img-10").pk) == ["open", "waiting"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_raising_the_overlap_while_claimers_race_leaves_no_seat_behind(org, monkeypatch):
    """Seats added while 16 claimers take the last ones: none stays waiting behind a taken one."""
    monkeypatch.setattr("tasks.services.projects.SEATS_BATCH_SIZE", 100)
    project = make_project(org, overlap=1, max_concurrent_tasks=1000)
    import_rows(
        project, [{"external_id": str(i), "data": {"width": 9, "height": 9}} for i in range(1500)]
    )
    annotators = [org.add_annotator(f"c{i}", max_concurrent_tasks=1000) for i in range(16)]
    staff(project, *annotators)

    errors: list[BaseException] = []

    def raise_overlap() -> None:
        try:
            # Raise once a third of the first seats are taken: the claimers are at work.
            wait_for(
                lambda: (
                    Slot.objects.filter(project=project).exclude(state=SlotState.OPEN).count()
                    >= 500
                ),
                timeout=60,
                interval=0.01,
                what="the claimers to take 500 seats",
            )
            # Outside a transaction the job runs at once, here, in batches of 100 tasks.
            project_update(project=project, actor=None, overlap=3)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    raiser = threading.Thread(target=raise_overlap)
    raiser.start()
    claimed = run_claimers(annotators, project, seconds=120, churn=0.02)
    raiser.join()
    assert not errors, errors
    # The raise did race the claimers: they took new seats before they ran out of work.
    assert (
        Slot.objects.filter(project=project, seat__gt=0)
        .exclude(state__in=[SlotState.OPEN, SlotState.WAITING])
        .exists()
    )
    # Seats opened late may have been left; a last pass by everyone takes them.
    for index, annotator in enumerate(annotators):
        while claim := claim_next(annotator=annotator, project_id=project.pk).claimed:
            claimed[index].append(Assignment.objects.get(pk=claim.assignment_id))
    project.refresh_from_db()
    assert project.overlap == 3 and Slot.objects.filter(project=project).count() == 4500
    # No seat waits behind a seat that is taken, and none is open: every seat was handed out.
    assert not Slot.objects.filter(project=project, state=SlotState.OPEN).exists()
    assert not Slot.objects.filter(project=project, state=SlotState.WAITING).exists()
    assert_invariants(project, claimed)


@pytest.mark.django_db(transaction=True)
def test_seats_are_added_after_a_claim_in_flight_on_the_last_seat_commits(org):
    """Read before the claim commits, the new seat would wait forever behind a taken one."""
    project = make_project(org)
    import_rows(project, image_rows(1))
    slot = Slot.objects.get(project=project)
    locked, finish = threading.Event(), threading.Event()
    holder: list[int] = []
    errors: list[BaseException] = []

    def claim_in_flight() -> None:
        try:
            with transaction.atomic():
                Slot.objects.select_for_update().get(pk=slot.pk)
                holder.append(backend_pid())
                locked.set()
                finish.wait(10)
                Slot.objects.filter(pk=slot.pk).update(state=SlotState.DONE)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def add_seats() -> None:
        try:
            project_seats_add(project=project)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    claimer = threading.Thread(target=claim_in_flight)
    claimer.start()
    assert locked.wait(10)
    Project.objects.filter(pk=project.pk).update(overlap=2)
    adder = threading.Thread(target=add_seats)
    adder.start()
    waiting = waits_on(adder, holder[0])
    finish.set()
    claimer.join(10)
    adder.join(10)
    assert not errors, errors
    assert waiting, "seats were added without waiting for the claim's lock on the last seat"
    assert seats(slot.task_id) == ["done", "open"]


@pytest.mark.django_db(transaction=True)
def test_a_raise_waits_for_an_import_batch_written_with_the_old_overlap(org):
    """A batch holds the overlap it read until it commits; its tasks then get the new seats."""
    project = make_project(org)
    import_rows(project, image_rows(2))
    locked, finish = threading.Event(), threading.Event()
    holder: list[int] = []
    overlaps: list[int] = []
    errors: list[BaseException] = []

    def import_batch() -> None:
        try:
            with transaction.atomic():
                overlaps.append(lock_project_overlap(project.pk))
                holder.append(backend_pid())
                locked.set()
                finish.wait(10)
                import_rows(project, image_rows(1, start=5))  # written with the overlap read
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def raise_overlap() -> None:
        try:
            project_update(project=project, actor=None, overlap=2)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    batch = threading.Thread(target=import_batch)
    batch.start()
    assert locked.wait(10)
    raiser = threading.Thread(target=raise_overlap)
    raiser.start()
    waiting = waits_on(raiser, holder[0])
    finish.set()
    batch.join(10)
    raiser.join(10)
    assert not errors, errors
    assert waiting, "the overlap was raised without waiting for the import batch"
    assert overlaps == [1]
    assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [["open", "waiting"]] * 3


@pytest.mark.django_db(transaction=True)
def test_the_seats_job_waits_behind_an_import_holding_the_project_past_the_lock_timeout(org):
    """An import holds the project until its file is written; the job adding a raise's seats
    waits for it, however long, instead of failing and leaving the older tasks short."""
    project = make_project(org)
    import_rows(project, image_rows(2))
    Project.objects.filter(pk=project.pk).update(overlap=2)  # raised; the job is the test's
    started = time.monotonic()
    with project_row_held(project, seconds=1.0):
        added = project_seats_add(project=project)
    assert time.monotonic() - started >= 1.0
    assert added == 2
    assert [seats(t.pk) for t in Task.objects.order_by("pk")] == [["open", "waiting"]] * 2


@pytest.mark.django_db
def test_seats_reach_every_task_of_the_project_and_no_other(org, monkeypatch):
    """Tasks of two projects interleave by id, with gaps longer than a batch."""
    monkeypatch.setattr("tasks.services.projects.SEATS_BATCH_SIZE", 2)
    mine, theirs = make_project(org), make_project(org, name="Other")
    for start in (0, 3, 10):
        import_rows(mine, image_rows(2, start=start))
        import_rows(theirs, image_rows(5, start=start))
    project_update(project=mine, actor=None, overlap=2)
    assert project_seats_add(project=mine) == 6
    assert {len(seats(t)) for t in mine.tasks.values_list("pk", flat=True)} == {2}
    assert {len(seats(t)) for t in theirs.tasks.values_list("pk", flat=True)} == {1}
