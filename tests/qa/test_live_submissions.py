"""Submissions reach live dashboards through the outbox, and only those who may see them."""

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from qa.models import LiveEvent
from qa.stats import GOLD_FIELDS, hour_rows
from tasks.models import Assignment
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import image_rows, import_rows, make_project, session_headers, staff
from tests.qa.live_helpers import checked_event, open_socket, receive_events

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
WORK = {"assignment.claimed", "annotation.submitted"}


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
            claimed, submitted = await receive_events(watcher, 2, types=WORK)
            assert (claimed["type"], submitted["type"]) == (
                "assignment.claimed",
                "annotation.submitted",
            )
            assert claimed["data"] == {
                "assignment": annotation.assignment_id,
                "project": project.pk,
                "task": annotation.task_id,
                "annotator": org.annotator.pk,
            }
            assert submitted["data"] == {
                "annotation": annotation.pk,
                "project": project.pk,
                "task": annotation.task_id,
                "annotator": org.annotator.pk,
                "duration_seconds": annotation.duration_seconds,
            }
        # The bystander's own next events come after the others' in the outbox: had those
        # reached them, they would come first.
        own = await database_sync_to_async(claim_and_submit)(other)
        claimed, submitted = await receive_events(bystander_socket, 2, types=WORK)
        assert (claimed["data"]["assignment"], submitted["data"]["annotation"]) == (
            own.assignment_id,
            own.pk,
        )
        for communicator in (lead_socket, author_socket, bystander_socket):
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_event_is_written_with_the_submission_or_not_at_all(org, project):
    annotation = claim_and_submit(org.annotator)
    submitted = LiveEvent.objects.filter(type="annotation.submitted")
    assert list(submitted.values_list("data__annotation", flat=True)) == [annotation.pk]
    row = submitted.get()
    assert (row.organization_id, row.member_id, row.staff) == (
        org.organization.pk,
        org.annotator_member.pk,
        True,
    )
    # A submission that fails (a different payload for the same assignment) writes no event.
    with pytest.raises(Exception, match="different payload"):
        assignment_submit(assignment=annotation.assignment, payload={"boxes": []})
    assert submitted.count() == 1


def test_a_claim_writes_its_event_in_its_own_statement_gold_or_not(org, project):
    """The database writes ``assignment.claimed`` as the claim inserts its assignment
    (``qa/live.sql``): the claim stays one statement, and a gold task's row reads like any."""
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    import_rows(project, image_rows(1, start=10, gold_answer=BOX))
    claims = [claim_next(annotator=org.annotator).claimed for _ in range(2)]
    gold = Assignment.objects.filter(pk__in=[c.assignment_id for c in claims], slot=None)
    assert gold.count() == 1  # one of the two is the gold task
    rows = LiveEvent.objects.filter(type="assignment.claimed").order_by("id")
    assert [
        (row.organization_id, row.member_id, row.staff, row.data) for row in rows
    ] == [
        (org.organization.pk, org.annotator_member.pk, True,
         {"assignment": c.assignment_id, "project": project.pk, "task": c.task_id,
          "annotator": org.annotator.pk})
        for c in claims
    ]  # fmt: skip
    for row in rows:
        checked_event(row.type, row.data, id=row.pk)


def test_stats_follow_an_annotators_work_at_most_once_a_second(org, project):
    """Staff on the project receive the annotator's row of the hour after each burst of
    work, at most once a second, the last one counting everything; a socket opened later
    starts from it. The annotator receives none (their own stats end at the start of today)."""
    import_rows(project, image_rows(2, start=10))
    path = f"/ws/orgs/acme/?project={project.pk}"
    lead, author = (session_headers(m.user) for m in (org.qa_lead, org.annotator_member))

    async def stats_until(socket, submitted: int) -> list[tuple[float, dict]]:
        found = []
        while not found or found[-1][1]["submitted"] < submitted:
            for event in await receive_events(socket, 1, types={"stats.updated"}):
                found.append((time.monotonic(), event["data"]))
        return found

    async def scenario():
        lead_socket, snapshot = await open_socket(lead, path)
        assert snapshot["data"]["stats"] == []  # nothing done this hour yet
        author_socket, own_snapshot = await open_socket(author, path)
        assert own_snapshot["data"]["stats"] == []
        for _ in range(3):
            await database_sync_to_async(claim_and_submit)(org.annotator)
        staff_seen = await stats_until(lead_socket, 3)
        assert await lead_socket.receive_nothing(timeout=1.2)
        own_seen = await receive_events(author_socket, 6)
        assert await author_socket.receive_nothing(timeout=0.2)
        later, snapshot = await open_socket(lead, path)
        for communicator in (lead_socket, author_socket, later):
            await communicator.disconnect()
        return staff_seen, own_seen, snapshot

    staff_seen, own_seen, snapshot = async_to_sync(scenario)()
    # The first at once, the rest at the end of its second, together.
    assert 1 <= len(staff_seen) <= 2
    if len(staff_seen) == 2:
        assert staff_seen[1][0] - staff_seen[0][0] > 0.8
    row = staff_seen[-1][1]
    assert (row["project"], row["annotator"], row["submitted"]) == (
        project.pk,
        org.annotator.pk,
        3,
    )
    assert row == hour_rows(project_id=project.pk, annotator_ids=[org.annotator.pk],
                            hour=timezone.now())[0]  # fmt: skip
    assert set(row) >= GOLD_FIELDS
    assert {e["type"] for e in own_seen} == WORK
    assert snapshot["data"]["stats"] == [row]


def test_a_row_that_already_counted_the_next_submission_is_not_sent_twice(org, project):
    """The relay reads a row after the events that made it due; a submission that commits in
    between is counted in that row, and its own event, a tick later, finds nothing new to send."""
    from qa.relay import Row, _stats_updates, _StatsDue

    import_rows(project, image_rows(2, start=10))
    due_stats = _StatsDue()
    first, second = (claim_and_submit(org.annotator) for _ in range(2))

    def submitted(annotation, at: float) -> list:
        event = LiveEvent.objects.get(type="annotation.submitted", data__task=annotation.task_id)
        row = Row(event.pk, org.organization.pk, None, True, event.type, project.pk,
                  org.annotator.pk, event.created_at, "")  # fmt: skip
        due_stats.note([row])
        return _stats_updates(due_stats.due(at), due_stats)

    (sent,) = submitted(first, at=100.0)
    assert '"submitted": 2' in sent.text  # the second already counted
    assert submitted(second, at=101.0) == []  # its event, due a second later, repeats nothing
    claim_and_submit(org.annotator)
    (sent,) = submitted(second, at=102.0)
    assert '"submitted": 3' in sent.text
