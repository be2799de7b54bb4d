"""The export's final answer per task (``tasks.exports``, ``qa.selectors.final_answers``): what
review made final, else the consensus, else the merge or the one annotation, each named as its
source; on PostgreSQL, through the real claim, submit, verdicts and agreement job."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from qa.verdicts import review_judge
from tasks.exports import export_project
from tasks.models import Assignment
from tasks.services.claims import assignment_submit
from tests.qa.agreement_helpers import crowd_project, one_task, work
from tests.qa.review_helpers import (
    CAR,
    PERSON,
    TWO_BOXES,
    layer,
    lease,
    reviewer_on,
    set_policy,
    submit,
    verdict_project,
    waiting_item,
)

pytestmark = pytest.mark.django_db

FIXED = {"boxes": [CAR]}
MOVED = {"boxes": [CAR | {"x": 20}]}
TAG = [{"code": "wrong-label", "description": "Wrong label."}]


def exported(project, **options) -> dict[str, dict]:
    chunks, _, _ = export_project(project, "jsonl", **options)
    rows = [json.loads(line) for line in "".join(chunks).splitlines()]
    return {row["external_id"]: row for row in rows}


def answer(project, **options) -> tuple[str, dict]:
    [row] = exported(project, **options).values()
    return row["source"], row["annotation"]


def judge(item, reviewer, verdict, **fields):
    return review_judge(item=lease(item, reviewer), reviewer=reviewer, verdict=verdict, **fields)


def test_an_accepted_version_is_the_answer_named_review(org):
    project = verdict_project(org, org.annotator, tasks=1)
    annotation = submit(org.annotator, project)
    # Waiting for review: the one annotation.
    assert answer(project) == ("annotation", TWO_BOXES)
    judge(waiting_item(annotation), org.qa_lead, "accept")
    assert answer(project) == ("review", TWO_BOXES)


def test_a_correction_is_the_answer_and_stays_it_once_the_next_layer_accepts_it(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0), tasks=1)
    annotation = submit(org.annotator, project)
    corrected = judge(waiting_item(annotation), org.qa_lead, "correct", corrected_payload=FIXED)
    assert answer(project) == ("review", FIXED)
    # Layer 2 accepts the correction (version 2): still the correction, not the annotator's.
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    judge(corrected.next_item, reviewer, "accept")
    assert answer(project) == ("review", FIXED)


def test_a_version_judged_before_its_rework_no_longer_counts(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0), tasks=1)
    annotation = submit(org.annotator, project)
    accepted = judge(waiting_item(annotation), org.qa_lead, "accept")
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    judge(accepted.next_item, reviewer, "reject", tags=["wrong-label"], comment="No.")
    # Back for rework: nothing submitted, nothing goes out.
    assert exported(project, include_incomplete=True) == {}
    assignment = Assignment.objects.select_related("project", "task").get(
        pk=annotation.assignment_id
    )
    assignment_submit(assignment=assignment, payload=MOVED)
    # Resubmitted and waiting at layer 2 again: layer 1's accept was of version 1.
    assert answer(project) == ("annotation", MOVED)
    judge(waiting_item(annotation), reviewer, "accept")
    assert answer(project) == ("review", MOVED)


def test_review_comes_before_consensus_and_of_two_the_latest_verdict(
    org, django_capture_on_commit_callbacks
):
    project, (a, b) = crowd_project(org, kind="bbox", people=2)
    set_policy(org, project, [layer()], TAG)
    with django_capture_on_commit_callbacks(execute=True):
        work(a, project, TWO_BOXES)
        work(b, project, {"boxes": [PERSON]})
    task = one_task(project)
    # Merged by the job: the consensus.
    assert answer(project)[0] == "consensus"
    of_b = waiting_item(task.annotations.get(annotator=b))
    of_a = waiting_item(task.annotations.get(annotator=a))
    judge(of_b, org.qa_lead, "accept")
    assert answer(project) == ("review", {"boxes": [PERSON]})
    judge(of_a, org.qa_lead, "correct", corrected_payload=FIXED)
    assert answer(project) == ("review", FIXED)


def test_the_final_answers_cost_the_same_whatever_the_number_of_reviewed_tasks(org):
    project = verdict_project(org, org.annotator, tasks=12)

    def review(count: int) -> None:
        for i in range(count):
            item = waiting_item(submit(org.annotator, project))
            if i % 2:
                judge(item, org.qa_lead, "accept")
            else:
                judge(item, org.qa_lead, "correct", corrected_payload=FIXED)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            rows = exported(project)
        assert {row["source"] for row in rows.values()} == {"review"}
        return len(captured)

    review(2)
    few = queries()
    review(8)
    assert queries() == few
