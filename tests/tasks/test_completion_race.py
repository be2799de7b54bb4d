"""A task whose last seats are submitted at the same moment is completed exactly once.

Each submit marks its own slot done, then decides whether the task is complete. If that decision
looked at the other slots before taking the task's lock, two last submits would each see the
other's slot still leased (READ COMMITTED shows neither the other's uncommitted write) and the
task would never be completed. A trigger that pauses each submit's commit holds every submit in
that window, so the race is not left to chance.
"""

import importlib
import threading

import pytest
from django.db import connection, connections

from tasks.models import Annotation, Assignment, Slot, SlotState, Task
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import import_rows, make_project, staff

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
PAUSE = 0.5


@pytest.fixture
def slow_slot_updates():
    """A transaction that marked a slot done sleeps as it commits: whatever it decided before
    committing, the other submits decide too while it is still uncommitted."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION test_pause() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep({PAUSE}); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER test_pause AFTER UPDATE OF state ON tasks_slot
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION test_pause();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_pause ON tasks_slot; DROP FUNCTION test_pause();")


@pytest.mark.parametrize("overlap", [2, 3])
def test_last_seats_submitted_at_once_complete_the_task(org, slow_slot_updates, overlap):
    project = make_project(org, overlap=overlap)
    import_rows(project, [{"external_id": "t", "data": {"width": 10, "height": 10}}])
    annotators = [org.add_annotator(f"a{i}") for i in range(overlap)]
    staff(project, *annotators)
    claims = [claim_next(annotator=a, project_id=project.pk).claimed for a in annotators]
    assert all(claims)
    assignments = [Assignment.objects.get(pk=claim.assignment_id) for claim in claims]
    start = threading.Barrier(overlap)
    errors: list[BaseException] = []

    def submit(assignment):
        try:
            start.wait()
            assignment_submit(assignment=assignment, payload=BOX)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(a,)) for a in assignments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert Slot.objects.filter(project=project).exclude(state=SlotState.DONE).count() == 0
    task = Task.objects.get(project=project)
    assert task.completed_at is not None


def test_the_repair_completes_tasks_left_incomplete_and_only_those(org):
    """Tasks the race left incomplete are completed by migration 0003, at their last annotation;
    a task with a seat still open is left alone."""
    repair = importlib.import_module("tasks.migrations.0003_complete_finished_tasks")
    project = make_project(org, overlap=2)
    import_rows(project, [{"external_id": t, "data": {"width": 10, "height": 10}} for t in "ab"])
    annotators = [org.add_annotator(f"a{i}") for i in range(2)]
    staff(project, *annotators)
    for annotator in annotators:
        claim = claim_next(annotator=annotator, project_id=project.pk).claimed
        assignment_submit(assignment=Assignment.objects.get(pk=claim.assignment_id), payload=BOX)
    # Both annotators did the first task claimed; the second has one seat done, one open.
    done = Task.objects.get(project=project, completed_at__isnull=False)
    Task.objects.filter(pk=done.pk).update(completed_at=None)
    with connection.cursor() as cursor:
        cursor.execute(repair.COMPLETE)
    last = Annotation.objects.filter(task=done).latest("submitted_at").submitted_at
    assert Task.objects.get(pk=done.pk).completed_at == last
    assert Task.objects.exclude(pk=done.pk).get(project=project).completed_at is None
