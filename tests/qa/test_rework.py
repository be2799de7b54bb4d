"""Rework (``tasks.services.tasks.assignment_rework``, ``qa.verdicts``): rejected work goes back
to its author, back to the layer that rejected it when it comes in again, and to the pool when
the author may not or does not take it; on PostgreSQL, through the real claim and submit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from qa.models import ReviewAccuracy, ReviewItem, ReviewItemState, SamplingBasis
from qa.verdicts import review_judge, version_payload
from tasks.models import (
    Annotation,
    AnnotationVersion,
    Assignment,
    AssignmentStatus,
    Slot,
    SlotState,
    Task,
)
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import image_rows, import_rows
from tests.qa.review_helpers import (
    CAR,
    TAGS,
    TWO_BOXES,
    layer_at,
    lease,
    reviewer_on,
    submit,
    verdict_project,
    waiting_item,
)
from workforce.models import Role
from workforce.services import annotator_set_status

pytestmark = pytest.mark.django_db

FIXED = {"boxes": [CAR]}


def verdict_over_api(org, item, body):
    return org.client(Role.QA_LEAD).post(f"/api/v1/reviews/{item.pk}/verdict", body, format="json")


def reject(item, reviewer, comment="The person is not in the picture."):
    return review_judge(
        item=item, reviewer=reviewer, verdict="reject", tags=["wrong-label"], comment=comment
    )


def test_the_rework_loop_keeps_every_version(org):
    project = verdict_project(org, org.annotator)
    annotation = submit(org.annotator, project)
    task = Task.objects.get(pk=annotation.task_id)
    assert task.completed_at is not None  # overlap 1: the one seat is done
    item = lease(waiting_item(annotation), org.qa_lead)
    judgement = reject(item, org.qa_lead)
    assert judgement.rework.to_author and judgement.next_item is None

    # Back with the same annotator, under a fresh lease of the project's length; the slot is
    # leased back to that assignment with the same expiry, and the task is open again.
    assignment = Assignment.objects.get(pk=annotation.assignment_id)
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert assignment.status == AssignmentStatus.ACTIVE and assignment.ended_at is None
    lease_left = (assignment.lease_expires_at - timezone.now()).total_seconds()
    assert project.lease_seconds - 5 < lease_left <= project.lease_seconds
    assert (slot.state, slot.assignment_id) == (SlotState.LEASED, assignment.pk)
    assert slot.lease_expires_at == assignment.lease_expires_at
    task.refresh_from_db()
    assert task.completed_at is None

    # The annotator sees why, in their assignment.
    client = org.client(Role.ANNOTATOR)
    listed = client.get("/api/v1/assignments?status=active").json()["results"]
    assert [a["id"] for a in listed] == [assignment.pk]
    rework = listed[0]["rework"]
    assert rework["review"] == judgement.review.pk and rework["layer"] == "layer 1"
    assert rework["tags"] == [{"code": "wrong-label", "description": TAGS["wrong-label"]}]
    assert rework["comment"] == "The person is not in the picture."
    assert client.get(f"/api/v1/assignments/{assignment.pk}").json()["rework"] == rework

    # They submit again through the ordinary submit: version 2, the first one kept.
    url = f"/api/v1/assignments/{assignment.pk}/submit"
    response = client.post(url, {"payload": FIXED, "active_seconds": 1}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 2
    annotation.refresh_from_db()
    assert (annotation.payload, annotation.version, annotation.payload_version) == (FIXED, 2, 2)
    [earlier] = AnnotationVersion.objects.filter(annotation=annotation)
    assert (earlier.version, earlier.payload) == (1, TWO_BOXES)
    assert version_payload(annotation, 1) == TWO_BOXES
    task.refresh_from_db()
    assert task.completed_at is not None
    assert client.get(f"/api/v1/assignments/{assignment.pk}").json()["rework"] is None
    # A retried request answers the same annotation; another payload now is a conflict.
    again = client.post(url, {"payload": FIXED}, format="json")
    assert again.status_code == 200 and again.json()["version"] == 2
    other = client.post(url, {"payload": TWO_BOXES}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_submitted"

    # Version 2 is back at the layer that rejected it, whatever its rate; accepted, it is final.
    back = waiting_item(annotation)
    assert (back.layer_id, back.version, back.basis, back.rate) == (
        item.layer_id,
        2,
        SamplingBasis.REWORK,
        1.0,
    )
    # Claimed through the review queue, over the API, and accepted there: final.
    claimed = org.client(Role.QA_LEAD).post(
        "/api/v1/reviews/claim", {"project": project.pk}, format="json"
    )
    assert claimed.status_code == 201, claimed.json()
    assert claimed.json()["id"] == back.pk
    accepted = verdict_over_api(org, back, {"verdict": "accept"})
    assert accepted.status_code == 201 and accepted.json()["final"] is True
    assert list(
        ReviewItem.objects.filter(annotation=annotation)
        .order_by("id")
        .values_list("version", "state")
    ) == [(1, ReviewItemState.DONE), (2, ReviewItemState.DONE)]


def test_reworked_work_skips_the_layers_before_the_one_that_rejected_it(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0))
    annotation = submit(org.annotator, project)
    first = review_judge(
        item=lease(waiting_item(annotation), org.qa_lead), reviewer=org.qa_lead, verdict="accept"
    )
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    reject(lease(first.next_item, reviewer), reviewer)
    assignment = Assignment.objects.select_related("project", "task").get(
        pk=annotation.assignment_id
    )
    response = org.client(Role.ANNOTATOR).post(
        f"/api/v1/assignments/{assignment.pk}/submit", {"payload": FIXED}, format="json"
    )
    assert response.status_code == 201
    back = waiting_item(annotation)
    assert (back.layer, back.version) == (layer_at(project, 2), 2)
    # Layer 1 decided on version 1 only.
    assert not ReviewItem.objects.filter(layer=layer_at(project, 1), version=2).exists()
    # The same reviewer judges the rework at the same layer.
    assert review_judge(item=lease(back, reviewer), reviewer=reviewer, verdict="accept")


def test_rework_not_taken_within_the_lease_goes_to_the_pool(org):
    other = org.add_annotator("acme-other")
    project = verdict_project(org, org.annotator, other, tasks=1)
    annotation = submit(org.annotator, project)
    reject(lease(waiting_item(annotation), org.qa_lead), org.qa_lead)
    assignment = Assignment.objects.get(pk=annotation.assignment_id)
    # The author lets the lease lapse.
    past = timezone.now() - timedelta(seconds=1)
    Slot.objects.filter(pk=assignment.slot_id).update(lease_expires_at=past)
    Assignment.objects.filter(pk=assignment.pk).update(lease_expires_at=past)
    # The claim's rule for lapsed leases hands the slot to the next annotator.
    claimed = claim_next(annotator=other, project_id=project.pk).claimed
    assert claimed is not None and claimed.task_id == annotation.task_id
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.EXPIRED
    late = org.client(Role.ANNOTATOR).post(
        f"/api/v1/assignments/{assignment.pk}/submit", {"payload": FIXED}, format="json"
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "lease_lost"
    annotation.refresh_from_db()
    assert (annotation.version, annotation.payload) == (1, TWO_BOXES)
    # The newcomer's work is a submission of its own, reviewed as any first one is.
    theirs = submit_claimed(other, claimed)
    assert Task.objects.get(pk=annotation.task_id).completed_at is not None
    assert waiting_item(theirs).layer == layer_at(project, 1)


def submit_claimed(annotator, claimed):
    assignment = Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)
    return assignment_submit(assignment=assignment, payload=FIXED)[0]


def test_rework_goes_to_the_pool_at_once_when_the_author_is_suspended(org):
    other = org.add_annotator("acme-other")
    project = verdict_project(org, org.annotator, other, tasks=1)
    annotation = submit(org.annotator, project)
    annotator_set_status(
        annotator=org.annotator, action="suspend", actor=None, reason="Under investigation."
    )
    judgement = reject(lease(waiting_item(annotation), org.qa_lead), org.qa_lead)
    assert not judgement.rework.to_author
    assignment = Assignment.objects.get(pk=annotation.assignment_id)
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert assignment.status == AssignmentStatus.REVOKED
    assert (slot.state, slot.assignment_id) == (SlotState.OPEN, None)
    assert Task.objects.get(pk=annotation.task_id).completed_at is None
    claimed = claim_next(annotator=other, project_id=project.pk).claimed
    assert claimed is not None and claimed.task_id == annotation.task_id
    # Reinstated, the author may not hand it in any more.
    annotator_set_status(annotator=org.annotator, action="reinstate", actor=None, reason="Ok.")
    late = org.client(Role.ANNOTATOR).post(
        f"/api/v1/assignments/{assignment.pk}/submit", {"payload": FIXED}, format="json"
    )
    assert late.status_code == 403 and late.json()["error"]["code"] == "access_ended"


def test_an_author_suspended_during_rework_loses_it_to_the_pool(org):
    project = verdict_project(org, org.annotator, tasks=1)
    annotation = submit(org.annotator, project)
    reject(lease(waiting_item(annotation), org.qa_lead), org.qa_lead)
    annotator_set_status(annotator=org.annotator, action="suspend", actor=None, reason="Gone.")
    assignment = Assignment.objects.get(pk=annotation.assignment_id)
    assert assignment.status == AssignmentStatus.REVOKED
    assert Slot.objects.get(pk=assignment.slot_id).state == SlotState.OPEN


def test_a_rejection_shows_only_on_the_authors_own_assignment(org, other_org):
    project = verdict_project(org, org.annotator, tasks=2)
    kept = submit(org.annotator, project)
    annotation = submit(org.annotator, project)
    reject(lease(waiting_item(annotation), org.qa_lead), org.qa_lead)
    listed = org.client(Role.ANNOTATOR).get("/api/v1/assignments").json()["results"]
    notes = {a["id"]: a["rework"] for a in listed}
    assert notes[kept.assignment_id] is None
    assert notes[annotation.assignment_id]["comment"] == "The person is not in the picture."
    staff = org.client(Role.MANAGER).get(f"/api/v1/assignments/{annotation.assignment_id}")
    assert staff.json()["rework"]["layer"] == "layer 1"
    foreign = other_org.client(Role.MANAGER).get(f"/api/v1/assignments/{annotation.assignment_id}")
    assert foreign.status_code == 404


def test_gold_is_never_reviewed(org):
    project = verdict_project(org, org.annotator, tasks=1, gold_rate=1.0)
    rows = image_rows(1, start=10)
    rows[0]["gold_answer"] = TWO_BOXES
    import_rows(project, rows)
    annotation = submit(org.annotator, project)
    assert Task.objects.get(pk=annotation.task_id).is_gold
    assert not ReviewItem.objects.filter(annotation=annotation).exists()
    assert Annotation.objects.get(pk=annotation.pk).version == 1


def test_a_rejected_correction_comes_back_as_the_annotators_next_version(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0))
    annotation = submit(org.annotator, project)
    corrected = review_judge(
        item=lease(waiting_item(annotation), org.qa_lead),
        reviewer=org.qa_lead,
        verdict="correct",
        corrected_payload=FIXED,
    )
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    # Layer 2 rejects version 2, the correction: the work goes back to its annotator all the
    # same, and the rejection of a reviewer's work does not count against them. Their record
    # holds the correction's score alone: one of their two boxes kept, F1 2/3.
    reject(lease(corrected.next_item, reviewer), reviewer)
    accuracy = ReviewAccuracy.objects.get(annotator=org.annotator, project=project)
    assert accuracy.reviewed == 1
    assert accuracy.score_sum == pytest.approx(2 / 3)
    assignment = Assignment.objects.select_related("project", "task").get(
        pk=annotation.assignment_id
    )
    mine = {"boxes": [CAR | {"x": 12}]}
    assignment_submit(assignment=assignment, payload=mine)
    annotation.refresh_from_db()
    assert (annotation.version, annotation.payload_version, annotation.payload) == (3, 3, mine)
    assert [version_payload(annotation, v) for v in (1, 2, 3)] == [TWO_BOXES, FIXED, mine]
    back = waiting_item(annotation)
    assert (back.layer, back.version, back.basis) == (layer_at(project, 2), 3, SamplingBasis.REWORK)
