"""Per annotator, project and hour stats: written with the events they count, read as figures."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qa.gold import gold_rescore
from qa.models import AnnotatorHourStats, LiveEvent, LiveEventType, StatsCursor
from qa.models.stats import HANDLING_BUCKETS
from qa.stats import (
    CLAIMS_SETTLE,
    HANDLING_BOUNDS,
    claims_roll_up,
    figures,
    handling_bucket,
    hour_of,
    hour_rows,
    stats_add,
)
from qa.task_agreement import task_agreement_compute
from qa.verdicts import review_judge
from tasks.models import Annotation, Assignment, AssignmentStatus, Task
from tasks.selectors import own_assignment
from tasks.services.claims import assignment_submit, claim_next
from tasks.services.gold import task_gold_set
from tasks.services.tasks import assignment_rework
from tests.helpers import at_once, image_rows, import_rows, make_project, staff
from tests.qa.agreement_helpers import crowd_project, one_task, work
from tests.qa.gold_helpers import ANSWER, HALF, label_gold_project, label_gold_submit
from tests.qa.gold_helpers import submit as gold_submit
from tests.qa.review_helpers import CAR, layer, lease, set_policy, verdict_project, waiting_item
from tests.qa.review_helpers import submit as review_submit

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 2, 10, 17, 5, tzinfo=UTC)
BOX = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}


def test_stats_add_adds_to_the_row_of_the_hour_and_hour_rows_reads_it(org):
    project = make_project(org)
    stats_add(project_id=project.pk, annotator_id=org.annotator.pk, at=AT, submitted=1)
    stats_add(
        project_id=project.pk,
        annotator_id=org.annotator.pk,
        at=AT.replace(minute=59),
        submitted=2,
        gold_scored=1,
        gold_score_sum=0.5,
    )
    stats_add(
        project_id=project.pk, annotator_id=org.annotator.pk, at=AT.replace(hour=11), claimed=1
    )
    assert AnnotatorHourStats.objects.count() == 2
    [row] = hour_rows(project_id=project.pk, annotator_ids=[org.annotator.pk], hour=AT)
    assert row["hour"] == "2026-03-02T10:00:00Z"
    assert (row["submitted"], row["gold_scored"], row["gold_score_sum"]) == (3, 1, 0.5)
    assert row["throughput_per_hour"] == 3 and row["gold_accuracy"] == 0.5
    assert row["handling_buckets"] == [0] * len(HANDLING_BOUNDS)
    assert row["handling_median_seconds"] is None
    assert hour_rows(project_id=project.pk, annotator_ids=[], hour=AT) == []
    with pytest.raises(ValueError, match="bogus"):
        stats_add(project_id=project.pk, annotator_id=org.annotator.pk, at=AT, bogus=1)


def test_handling_quantiles_are_read_from_the_buckets():
    assert len(HANDLING_BOUNDS) == HANDLING_BUCKETS
    assert [handling_bucket(s) for s in (0, 4.9, 5, 59.9, 60, 3599, 3600, 1e9)] == [
        0, 0, 1, 5, 6, 12, 13, 13,
    ]  # fmt: skip
    buckets = [0] * len(HANDLING_BOUNDS)
    for seconds in (3, 7, 8, 12, 50, 70, 100, 200, 400, 5000):
        buckets[handling_bucket(seconds)] += 1
    row = dict.fromkeys(("claimed", "gold_scored", "gold_score_sum"), 0) | {
        "submitted": 10, "active_seconds": 0, "reviews_accepted": 3, "reviews_rejected": 1,
        "reviews_corrected": 1, "review_score_sum": 3.5, "agreement_sum": 1.5,
        "agreement_count": 2, "handling_buckets": buckets,
    }  # fmt: skip
    shown = figures(row, hours_worked=4)
    # The 5th of ten, 50 s, is in [45, 60): the median reads 60.
    assert shown["handling_median_seconds"] == 60
    # The 9th is 400, in [300, 600).
    assert shown["handling_p90_seconds"] == 600
    assert shown["throughput_per_hour"] == 2.5
    assert shown["review_pass_rate"] == 0.6 and shown["review_mean_score"] == 0.7
    assert shown["agreement_mean"] == 0.75 and shown["gold_accuracy"] is None
    only_long = [0] * (len(HANDLING_BOUNDS) - 1) + [2]
    assert (
        figures(row | {"handling_buckets": only_long}, hours_worked=1)["handling_p90_seconds"]
        == HANDLING_BOUNDS[-2]
    )


def stats_of(annotator, project) -> AnnotatorHourStats:
    """The annotator's one row in the project (every test's events fall in one hour)."""
    [row] = AnnotatorHourStats.objects.filter(annotator=annotator, project=project)
    return row


def test_a_submission_counts_in_its_hour_with_its_handling_time_in_one_statement(org):
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    claimed = claim_next(annotator=org.annotator).claimed
    # The annotator took 42 s.
    Assignment.objects.filter(pk=claimed.assignment_id).update(
        leased_at=timezone.now() - timedelta(seconds=42)
    )
    assignment = Assignment.objects.select_related("project", "task", "annotator").get(
        pk=claimed.assignment_id
    )
    with CaptureQueriesContext(connection) as queries:
        annotation, _ = assignment_submit(assignment=assignment, payload=BOX)
    # ``tasks_submit`` with quality's records in its statement, and no transaction around it:
    # a regular task, no review layers, nothing left to do after it.
    assert len(queries) == 1, [q["sql"][:60] for q in queries]
    row = stats_of(org.annotator, project)
    assert row.hour == hour_of(annotation.submitted_at)
    assert (row.submitted, row.claimed, row.gold_scored) == (1, 0, 0)
    assert row.active_seconds == pytest.approx(annotation.duration_seconds)
    assert 42 <= row.active_seconds < 50
    assert row.handling_buckets[handling_bucket(42)] == 1 and sum(row.handling_buckets) == 1
    # Its live event was written by the same statement.
    event = LiveEvent.objects.get(type=LiveEventType.ANNOTATION_SUBMITTED)
    assert event.data["annotation"] == annotation.pk
    assert event.data["duration_seconds"] == pytest.approx(annotation.duration_seconds)


def test_a_resubmission_counts_again_from_its_rework_lease(org):
    """A fresh submission's records are written by the statement storing it; a resubmission is
    stored as its annotation's next version, and its records after it: both count, each round
    with its own handling time, each with its live event, and the second meets the layer that
    rejected the first."""
    project = verdict_project(org, org.annotator)
    annotation = review_submit(org.annotator, project)
    item = lease(waiting_item(annotation), org.qa_lead)
    review_judge(
        item=item, reviewer=org.qa_lead, verdict="reject", tags=["wrong-label"], comment="Again."
    )
    # Back with its author, who takes 7 s this round.
    Assignment.objects.filter(pk=annotation.assignment_id).update(
        leased_at=timezone.now() - timedelta(seconds=7)
    )
    assignment = Assignment.objects.select_related("project", "task", "annotator").get(
        pk=annotation.assignment_id
    )
    again, created = assignment_submit(assignment=assignment, payload={"boxes": [CAR]})
    assert created and (again.pk, again.version) == (annotation.pk, 2)
    row = stats_of(org.annotator, project)
    assert row.submitted == 2
    assert row.handling_buckets[handling_bucket(7)] >= 1 and sum(row.handling_buckets) == 2
    events = LiveEvent.objects.filter(type=LiveEventType.ANNOTATION_SUBMITTED)
    assert [e.data["annotation"] for e in events] == [annotation.pk, annotation.pk]
    assert waiting_item(again).layer.position == 1


def test_work_back_for_rework_is_stored_as_its_next_version_without_review_layers(org):
    """The submit's single statement takes only a fresh submission: work sent back for rework
    in a project without review layers is found by it and stored as the next version, with its
    records, in a transaction after it."""
    project = make_project(org)
    import_rows(project, image_rows(2))
    staff(project, org.annotator)
    first = review_submit(org.annotator, project, payload=BOX)
    assignment_rework(assignment_id=first.assignment_id)
    assignment = Assignment.objects.select_related("project", "task", "annotator").get(
        pk=first.assignment_id
    )
    again, created = assignment_submit(assignment=assignment, payload={"boxes": [CAR]})
    assert created and (again.pk, again.version) == (first.pk, 2)
    assert Annotation.objects.get(pk=first.pk).payload == {"boxes": [CAR]}
    assert stats_of(org.annotator, project).submitted == 2
    events = LiveEvent.objects.filter(type=LiveEventType.ANNOTATION_SUBMITTED)
    assert [e.data["annotation"] for e in events] == [first.pk, first.pk]


def test_review_layers_set_after_the_submit_read_its_assignment_still_meet_it(org):
    """The read told the submit that the project had no review layers; a layer set before its
    statement runs is seen by that statement, and the submission meets it."""
    project = make_project(org)
    import_rows(project, image_rows(2))
    staff(project, org.annotator)
    claimed = claim_next(annotator=org.annotator).claimed
    assignment = own_assignment(member=org.annotator_member, assignment_id=claimed.assignment_id)
    assert assignment.submission_reacts is False
    set_policy(org, project, [layer()])
    annotation, created = assignment_submit(assignment=assignment, payload=BOX)
    assert created and waiting_item(annotation).layer.position == 1
    assert stats_of(org.annotator, project).submitted == 1


def test_a_submission_to_a_project_with_review_layers_still_meets_them(org):
    project = verdict_project(org, org.annotator)
    annotation = review_submit(org.annotator, project)
    assert waiting_item(annotation).layer.position == 1
    assert stats_of(org.annotator, project).submitted == 1


def test_gold_scores_count_and_a_rescore_adds_its_change_not_another_score(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator, gold_tasks=3)
    right = label_gold_submit(project, org.annotator, correct=True)
    label_gold_submit(project, org.annotator, correct=False)
    row = stats_of(org.annotator, project)
    assert (row.submitted, row.gold_scored, row.gold_score_sum) == (2, 2, 1.0)
    # The answer of the task scored 1 is corrected: that score becomes 0, counted once.
    task = Task.objects.get(pk=right.task_id)
    with django_capture_on_commit_callbacks(execute=True):
        task_gold_set(task=task, answer={"label": "person"}, actor=org.qa_lead.user)
    row = stats_of(org.annotator, project)
    assert (row.gold_scored, row.gold_score_sum) == (2, 0.0)
    # Run again, the rescore finds its work done and adds nothing.
    assert gold_rescore(task_id=task.pk) == 0
    row = stats_of(org.annotator, project)
    assert (row.gold_scored, row.gold_score_sum) == (2, 0.0)


def test_work_scored_when_its_task_is_made_gold_counts_in_the_hour_it_was_submitted(
    org, django_capture_on_commit_callbacks
):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    done = gold_submit(org.annotator, project, lambda task: HALF)
    AnnotatorHourStats.objects.update(hour=hour_of(done.submitted_at))
    with django_capture_on_commit_callbacks(execute=True):
        task_gold_set(task=Task.objects.get(), answer=ANSWER, actor=org.qa_lead.user)
    row = stats_of(org.annotator, project)
    assert (row.submitted, row.gold_scored) == (1, 1)
    assert row.gold_score_sum == pytest.approx(2 / 3)


def test_each_verdict_on_the_authors_own_work_counts_with_its_score(org):
    project = verdict_project(org, org.annotator, tasks=4)
    verdicts = [
        {"verdict": "accept"},
        {"verdict": "reject", "tags": ["wrong-label"], "comment": "No person there."},
        {"verdict": "correct", "corrected_payload": {"boxes": [CAR]}},
    ]
    for body in verdicts:
        item = lease(waiting_item(review_submit(org.annotator, project)), org.qa_lead)
        review_judge(item=item, reviewer=org.qa_lead, **body)
    row = stats_of(org.annotator, project)
    assert (row.reviews_accepted, row.reviews_rejected, row.reviews_corrected) == (1, 1, 1)
    # Accept 1, reject 0, the correction: one of two boxes kept, F1 2/3.
    assert row.review_score_sum == pytest.approx(1 + 0 + 2 / 3)
    # Nothing of the reviewer's: the counts are the author's.
    assert not AnnotatorHourStats.objects.exclude(annotator=org.annotator).exists()


def test_a_tasks_agreement_counts_each_annotator_once_however_often_it_is_computed(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org)
    with django_capture_on_commit_callbacks(execute=True):
        for person, label in zip(people, ["car", "car", "person"], strict=True):
            work(person, project, {"label": label})
    task = one_task(project)

    def agreement() -> list[tuple[float, int]]:
        rows = [stats_of(person, project) for person in people]
        return [(round(row.agreement_sum, 6), row.agreement_count) for row in rows]

    # Pairs: (car, car) 1, (car, person) 0 twice: each annotator's mean of their two pairs.
    assert agreement() == [(0.5, 1), (0.5, 1), (0.0, 1)]
    task_agreement_compute(task_id=task.pk)
    assert agreement() == [(0.5, 1), (0.5, 1), (0.0, 1)]
    # The dissenter's work went back for rework: recomputed without it, they count no more.
    dissent = Assignment.objects.get(task=task, annotator=people[2])
    Assignment.objects.filter(pk=dissent.pk).update(status=AssignmentStatus.ACTIVE)
    task_agreement_compute(task_id=task.pk)
    assert agreement() == [(1.0, 1), (1.0, 1), (0.0, 0)]
    # Made gold, the task has no agreement: what it added is taken back.
    task_gold_set(task=task, answer={"label": "car"}, actor=org.qa_lead.user)
    assert agreement() == [(0.0, 0), (0.0, 0), (0.0, 0)]


def test_claims_are_rolled_up_once_they_settle_and_never_twice(org):
    project = make_project(org)
    import_rows(project, image_rows(5))
    staff(project, org.annotator)
    for _ in range(3):
        claim_next(annotator=org.annotator)
    # Just made: a claim committing late could still appear below them.
    assert claims_roll_up() == 0
    later = timezone.now() + CLAIMS_SETTLE
    assert claims_roll_up(now=later, batch_size=2) == 3
    assert claims_roll_up(now=later) == 0
    assert stats_of(org.annotator, project).claimed == 3
    assert StatsCursor.objects.get().position == Assignment.objects.order_by("-id")[0].pk


@pytest.mark.django_db(transaction=True)
def test_two_claims_roll_ups_at_once_count_every_claim_once(org):
    project = make_project(org, max_concurrent_tasks=100)
    import_rows(project, image_rows(12))
    people = [org.add_annotator(f"rolled-{i}") for i in range(3)]
    staff(project, *people)
    for person in people:
        for _ in range(4):
            claim_next(annotator=person)
    later = timezone.now() + CLAIMS_SETTLE
    # Small batches: the two runs take turns on the cursor, batch after batch.
    counted = at_once(*[lambda: claims_roll_up(now=later, batch_size=2)] * 2)
    assert sum(counted) == 12
    assert [stats_of(person, project).claimed for person in people] == [4, 4, 4]
