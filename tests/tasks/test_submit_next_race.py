"""A submit asking for the next task, sent twice at once (a double click, a client retrying
before the first answer came), claims one task, and both answers carry it.

The second request finds the work stored by the first and answers the task its annotator holds.
Were the claim made after the submission committed, the second could look in between, find
nothing held and claim a task of its own. A trigger that makes every claim slow holds the first
request in that window, so the race is not left to chance.
"""

import pytest
from django.db import connection

from tasks.models import Annotation, Assignment, AssignmentStatus
from tasks.services.claims import ClaimOutcome, assignment_submit_next, claim_next
from tests.helpers import at_once, image_rows, import_rows, make_project, staff

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
PAUSE = 0.5


@pytest.fixture
def slow_claims():
    """Every assignment a claim inserts waits first, inside the claim."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION test_pause() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep({PAUSE}); RETURN NEW; END $$;
            CREATE TRIGGER test_pause BEFORE INSERT ON tasks_assignment
            FOR EACH ROW EXECUTE FUNCTION test_pause();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_pause ON tasks_assignment; DROP FUNCTION test_pause();")


def test_a_submit_with_next_sent_twice_at_once_claims_one_task(org, slow_claims):
    project = make_project(org)
    import_rows(project, image_rows(5))
    staff(project, org.annotator)
    first = claim_next(annotator=org.annotator, project_id=project.pk).claimed

    def submit():
        assignment = Assignment.objects.select_related("task", "project", "annotator")
        return assignment_submit_next(
            assignment=assignment.get(pk=first.assignment_id), payload=BOX
        )

    answers = at_once(submit, submit)
    assert sorted(created for _, created, _ in answers) == [False, True]
    assert {annotation.pk for annotation, _, _ in answers} == {Annotation.objects.get().pk}
    outcomes = {(result.outcome, result.claimed.assignment_id) for _, _, result in answers}
    held = Assignment.objects.get(status=AssignmentStatus.ACTIVE)
    assert outcomes == {(ClaimOutcome.CLAIMED, held.pk)}
    assert Assignment.objects.count() == 2
