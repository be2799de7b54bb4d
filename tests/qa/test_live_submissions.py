"""Submissions reach live dashboards through the outbox, and only those who may see them."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from qa.models import LiveEvent
from tasks.models import Assignment
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import image_rows, import_rows, make_project, session_headers, staff
from tests.qa.live_helpers import open_socket, receive

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}


def claim_and_submit(annotator):
    claimed = claim_next(annotator=annotator).claimed
    assignment = Assignment.objects.get(pk=claimed.assignment_id)
    return assignment_submit(assignment=assignment, payload=BOX)[0]


@pytest.fixture
def project(org):
    project = make_project(org)
    import_rows(project, image_rows(2))
    staff(project, org.annotator)
    return project


def test_a_submission_reaches_staff_and_its_annotator_only(org, project):
    other = org.add_annotator("acme-other")
    staff(project, other)
    lead, author, bystander = (
        session_headers(user)
        for user in (org.qa_lead.user, org.annotator_member.user, other.member.user)
    )

    async def scenario():
        lead_socket, author_socket, bystander_socket = [
            (await open_socket(headers))[0] for headers in (lead, author, bystander)
        ]
        annotation = await database_sync_to_async(claim_and_submit)(org.annotator)
        for watcher in (lead_socket, author_socket):
            message = await receive(watcher)
            assert message["type"] == "annotation.submitted" and message["seq"] == 2
            assert message["data"] == {
                "annotation": annotation.pk,
                "project": project.pk,
                "task": annotation.task_id,
                "annotator": org.annotator.pk,
                "duration_seconds": annotation.duration_seconds,
            }
        # The bystander's own next event comes after the submission's in the outbox: had the
        # submission reached them, it would come first.
        own = await database_sync_to_async(claim_and_submit)(other)
        message = await receive(bystander_socket)
        assert (message["data"]["annotation"], message["seq"]) == (own.pk, 2)
        for communicator in (lead_socket, author_socket, bystander_socket):
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_event_is_written_with_the_submission_or_not_at_all(org, project):
    annotation = claim_and_submit(org.annotator)
    assert list(LiveEvent.objects.values_list("type", "data__annotation")) == [
        ("annotation.submitted", annotation.pk)
    ]
    row = LiveEvent.objects.get()
    assert (row.organization_id, row.member_id, row.staff) == (
        org.organization.pk,
        org.annotator_member.pk,
        True,
    )
    # A submission that fails (a different payload for the same assignment) writes no event.
    with pytest.raises(Exception, match="different payload"):
        assignment_submit(assignment=annotation.assignment, payload={"boxes": []})
    assert LiveEvent.objects.count() == 1
