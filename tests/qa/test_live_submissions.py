"""Submissions reach live dashboards through the outbox, and only those who may see them."""

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from qa.models import LiveEvent
from qa.relay import STATS_SECONDS, _Cursor, _read, _StatsDue
from qa.stats import GOLD_FIELDS, OWN_LIVE_FIELDS, hour_rows, own_live_row
from qa.verdicts import review_judge
from tasks.models import Assignment
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import image_rows, import_rows, make_project, session_headers, staff
from tests.qa.gold_helpers import label_gold_project, label_gold_submit
from tests.qa.live_helpers import checked_event, open_socket, receive_events
from tests.qa.review_helpers import lease, review_project, waiting_item

pytestmark = pytest.mark.django_db(transaction=True)

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 5, "h": 5}]}
WORK = {"assignment.claimed", "annotation.submitted"}
# What an annotator's own ``stats.updated`` holds: whose, where, when, and throughput alone.
OWN_ROW = {"project", "annotator", "hour", *OWN_LIVE_FIELDS}


def claim_and_submit(annotator):
    claimed = claim_next(annotator=annotator).claimed
    assignment = Assignment.objects.get(pk=claimed.assignment_id)
    return assignment_submit(assignment=assignment, payload=BOX)[0]


async def events_until(socket, done) -> list[tuple[float, dict]]:
    """The events the socket receives, each with when, until ``done(events)`` holds."""
    found: list[tuple[float, dict]] = []
    while not done([event for _, event in found]):
        found += [(time.monotonic(), event) for event in await receive_events(socket, 1)]
    return found


def stats_of(events: list[tuple[float, dict]]) -> list[tuple[float, dict]]:
    return [(at, event["data"]) for at, event in events if event["type"] == "stats.updated"]


def counts(submitted: int):
    """Done once a ``stats.updated`` counts ``submitted`` submissions."""
    return lambda events: any(
        e["type"] == "stats.updated" and e["data"]["submitted"] >= submitted for e in events
    )


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
    starts from it. The annotator's own sockets receive their own row too, as often, with
    throughput alone: nothing of gold, reviews or agreement."""
    import_rows(project, image_rows(2, start=10))
    path = f"/ws/orgs/acme/?project={project.pk}"
    lead, author = (session_headers(m.user) for m in (org.qa_lead, org.annotator_member))

    def all_work_and_stats(events: list[dict]) -> bool:
        return len([e for e in events if e["type"] in WORK]) == 6 and counts(3)(events)

    async def scenario():
        lead_socket, snapshot = await open_socket(lead, path)
        assert snapshot["data"]["stats"] == []  # nothing done this hour yet
        author_socket, own_snapshot = await open_socket(author, path)
        assert own_snapshot["data"]["stats"] == []
        for _ in range(3):
            await database_sync_to_async(claim_and_submit)(org.annotator)
        # Both wait for every event the work makes: a row read after an event may already
        # count the next submission, whose own event then comes a tick later.
        staff_seen, own_seen = await asyncio.gather(
            events_until(lead_socket, all_work_and_stats),
            events_until(author_socket, all_work_and_stats),
        )
        assert await lead_socket.receive_nothing(timeout=1.2)
        assert await author_socket.receive_nothing(timeout=0.2)
        later, snapshot = await open_socket(lead, path)
        # The annotator's page follows every project of theirs: the rows of the hour in each.
        own_later, own_snapshot = await open_socket(author)
        for communicator in (lead_socket, author_socket, later, own_later):
            await communicator.disconnect()
        return stats_of(staff_seen), own_seen, snapshot, own_snapshot

    staff_seen, own_seen, snapshot, own_snapshot = async_to_sync(scenario)()
    row = hour_rows(project_id=project.pk, annotator_ids=[org.annotator.pk],
                    hour=timezone.now())[0]  # fmt: skip
    assert (row["project"], row["annotator"], row["submitted"]) == (
        project.pk,
        org.annotator.pk,
        3,
    )
    own_stats = stats_of(own_seen)
    for seen in (staff_seen, own_stats):
        # The first at once, the rest at the end of its second, together.
        assert 1 <= len(seen) <= 2
        if len(seen) == 2:
            assert seen[1][0] - seen[0][0] > 0.8
    assert staff_seen[-1][1] == row
    assert set(row) >= GOLD_FIELDS
    assert snapshot["data"]["stats"] == [row]
    # Their own: exactly the throughput of the same row, and nothing else of it.
    assert own_stats[-1][1] == own_live_row(row)
    for _, data in own_stats:
        assert set(data) == OWN_ROW
    assert not GOLD_FIELDS & OWN_ROW
    assert not {name for name in OWN_ROW if "review" in name or "agreement" in name}
    assert {e["type"] for _, e in own_seen} == WORK | {"stats.updated"}
    assert own_snapshot["data"]["stats"] == [own_live_row(row)]


def test_an_annotators_own_stats_follow_their_submissions_only_and_reach_no_one_else(org):
    """A verdict on the annotator's work moves their row for staff; the annotator's own
    sockets receive nothing of it (its timing would tell a task that was not gold). Another
    annotator's socket receives nothing of theirs at all."""
    project = review_project(org, tasks=3)
    other = org.add_annotator("acme-other")
    staff(project, org.annotator, other)
    lead, author, bystander = (
        session_headers(user)
        for user in (org.qa_lead.user, org.annotator_member.user, other.member.user)
    )

    def judge(annotation) -> None:
        item = lease(waiting_item(annotation), org.qa_lead)
        review_judge(item=item, reviewer=org.qa_lead, verdict="accept")

    def reviewed(events: list[dict]) -> bool:
        return any(e["type"] == "stats.updated" and e["data"]["reviews_accepted"] for e in events)

    async def scenario():
        lead_socket, author_socket, bystander_socket = [
            (await open_socket(headers))[0] for headers in (lead, author, bystander)
        ]
        annotation = await database_sync_to_async(claim_and_submit)(org.annotator)
        await events_until(lead_socket, counts(1))
        own = stats_of(await events_until(author_socket, counts(1)))
        # Past the submission's second: whatever comes next is not its stats.
        await asyncio.sleep(STATS_SECONDS)
        assert await author_socket.receive_nothing(timeout=0.1)
        await database_sync_to_async(judge)(annotation)
        staff_seen = await events_until(lead_socket, reviewed)
        assert await author_socket.receive_nothing(timeout=0.5)
        assert await bystander_socket.receive_nothing(timeout=0.1)
        for communicator in (lead_socket, author_socket, bystander_socket):
            await communicator.disconnect()
        return own, staff_seen

    own, staff_seen = async_to_sync(scenario)()
    assert [data["submitted"] for _, data in own] == [1]
    assert set(own[0][1]) == OWN_ROW
    # The event that moved the row for staff, which the annotator never received.
    assert "review.completed" in {e["type"] for _, e in staff_seen}
    _, last = stats_of(staff_seen)[-1]
    assert (last["submitted"], last["reviews_accepted"]) == (1, 1)


def test_a_gold_score_alone_makes_only_the_staffs_stats_due(org):
    """The relay reads a gold submission's score (``gold.scored``) without its submission: staff
    get the row, the annotator nothing. Their submission's event then makes their own row due,
    at once, whenever staff's last went out: each audience on its own."""
    project = label_gold_project(org, org.annotator)
    label_gold_submit(project, org.annotator, correct=True)
    submitted = LiveEvent.objects.get(type="annotation.submitted")
    due = _StatsDue()

    _, rows, updates = _read(_Cursor(last=submitted.pk, started=True), due)
    assert "gold.scored" in {row.type for row in rows}
    assert "annotation.submitted" not in {row.type for row in rows}
    assert [update.member_id for update in updates] == [None]
    assert '"gold_scored": 1' in updates[0].text

    _, rows, updates = _read(_Cursor(last=submitted.pk - 1, started=True), due)
    assert "annotation.submitted" in {row.type for row in rows}
    assert [update.member_id for update in updates] == [org.annotator_member.pk]
    event = json.loads(updates[0].text)
    own = checked_event(event["type"], event["data"], id=None)["data"]
    assert set(own) == OWN_ROW and own["submitted"] == 1


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
