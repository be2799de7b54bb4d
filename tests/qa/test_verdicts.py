"""Verdicts (``qa.verdicts``): what each one does, what is refused, and invariant 3 in the
database, on PostgreSQL."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.errors import Conflict, ErrorCode, PermissionDenied
from qa.models import (
    LiveEvent,
    LiveEventType,
    Review,
    ReviewAccuracy,
    ReviewItem,
    ReviewItemState,
)
from qa.verdicts import review_judge, version_payload
from tasks.models import Annotation, ProjectMember
from tests.qa.live_helpers import checked_event
from tests.qa.review_helpers import (
    CAR,
    PERSON,
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
from workforce.services import member_role_change

pytestmark = pytest.mark.django_db

# The person's box moved far off: one of two boxes matches, precision and recall 1/2, F1 1/2.
MOVED = {"boxes": [CAR, PERSON | {"x": 500, "y": 100}]}


def leased(org, project, reviewer=None, payload=None):
    """A submission by the org's annotator, waiting at its first sampling layer and leased to
    ``reviewer`` (the org's QA lead by default)."""
    annotation = submit(org.annotator, project, payload)
    return lease(waiting_item(annotation), reviewer or org.qa_lead)


def verdict(org, item, body, role=Role.QA_LEAD):
    return org.client(role).post(f"/api/v1/reviews/{item.pk}/verdict", body, format="json")


def test_an_accept_at_the_last_layer_is_final_and_scores_one(org):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    response = verdict(org, item, {"verdict": "accept", "comment": "Fine."})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["verdict"], body["score"], body["final"], body["next_item"]) == (
        "accept",
        1.0,
        True,
        None,
    )
    assert body["rework"] is None
    item.refresh_from_db()
    assert item.state == ReviewItemState.DONE
    review = Review.objects.get()
    assert (review.reviewer_id, review.author_member_id) == (
        org.qa_lead.pk,
        org.annotator_member.pk,
    )
    accuracy = ReviewAccuracy.objects.get(annotator=org.annotator, project=project)
    assert (accuracy.reviewed, accuracy.score_sum, accuracy.recent) == (1, 1.0, [1.0])


def test_an_accept_moves_the_version_to_the_next_layer_that_samples_it(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 0.0, 1.0))
    item = leased(org, project)
    judgement = review_judge(item=item, reviewer=org.qa_lead, verdict="accept")
    # Layer 2 samples nothing: its decision is recorded, and the version goes on to layer 3.
    skipped = ReviewItem.objects.get(annotation=item.annotation, layer=layer_at(project, 2))
    assert (skipped.sampled, skipped.state, skipped.version) == (False, "skipped", 1)
    assert judgement.next_item.layer == layer_at(project, 3)
    assert (judgement.next_item.state, judgement.next_item.version) == ("open", 1)
    # Layer 3 accepts it: nothing follows, the version is final.
    other = reviewer_on(org, project, "acme-reviewer-2")
    final = review_judge(item=lease(judgement.next_item, other), reviewer=other, verdict="accept")
    assert final.next_item is None and final.rework is None
    assert not ReviewItem.objects.filter(state__in=["open", "leased"]).exists()


def test_a_correction_is_the_next_version_scored_with_the_kinds_compare(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0))
    item = leased(org, project)
    judgement = review_judge(
        item=item, reviewer=org.qa_lead, verdict="correct", corrected_payload=MOVED
    )
    review = judgement.review
    # One of two boxes matches: precision 1/2, recall 1/2, F1 1/2; the match is exact.
    assert review.score == pytest.approx(0.5)
    assert review.details["precision"] == pytest.approx(0.5)
    assert review.details["recall"] == pytest.approx(0.5)
    assert review.details["mean_iou"] == pytest.approx(1.0)
    annotation = Annotation.objects.get(pk=item.annotation_id)
    # The annotation keeps the annotator's own work; the correction is version 2.
    assert (annotation.version, annotation.payload_version) == (2, 1)
    assert annotation.payload == TWO_BOXES
    assert version_payload(annotation, 2) == MOVED
    assert version_payload(annotation, 1) == TWO_BOXES
    # Version 2 goes on from layer 1 to layer 2.
    assert (judgement.next_item.layer.position, judgement.next_item.version) == (2, 2)
    accuracy = ReviewAccuracy.objects.get(annotator=org.annotator, project=project)
    assert (accuracy.reviewed, accuracy.score_sum) == (1, 0.5)


def test_a_verdict_on_a_correction_counts_toward_nobodys_accuracy(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0))
    item = leased(org, project)
    corrected = review_judge(
        item=item, reviewer=org.qa_lead, verdict="correct", corrected_payload=MOVED
    )
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    # Layer 2 judges the correction, not the annotator: the score stays on the review.
    second = review_judge(
        item=lease(corrected.next_item, reviewer),
        reviewer=reviewer,
        verdict="correct",
        corrected_payload=TWO_BOXES,
    )
    assert second.review.score == pytest.approx(0.5)
    assert second.review.version == 2
    accuracy = ReviewAccuracy.objects.get(annotator=org.annotator, project=project)
    assert (accuracy.reviewed, accuracy.score_sum) == (1, 0.5)
    assert Annotation.objects.get(pk=item.annotation_id).version == 3
    assert version_payload(item.annotation, 3) == TWO_BOXES


def test_the_verdict_is_told_live_to_staff_in_its_schema(org):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    review = review_judge(item=item, reviewer=org.qa_lead, verdict="accept").review
    event = LiveEvent.objects.get(type=LiveEventType.REVIEW_COMPLETED)
    assert event.staff and event.member_id is None
    checked_event(event.type, event.data, id=event.pk)
    assert event.data == {
        "review": review.pk,
        "item": item.pk,
        "annotation": item.annotation_id,
        "version": 1,
        "project": project.pk,
        "task": item.task_id,
        "annotator": org.annotator.pk,
        "layer": item.layer_id,
        "reviewer": org.qa_lead.pk,
        "verdict": "accept",
        "score": 1.0,
    }


OUT_OF_IMAGE = {"boxes": [CAR | {"x": 650}]}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"verdict": "reject"}, {"tags", "comment"}),
        ({"verdict": "reject", "tags": ["missed-object"], "comment": "  "}, {"comment"}),
        (
            {"verdict": "reject", "tags": ["missed-object", "blurry", "missed-object"],
             "comment": "Redo."},
            {"tags[1]", "tags[2]"},
        ),
        (
            {"verdict": "accept", "tags": ["missed-object"], "corrected_payload": TWO_BOXES},
            {"tags", "corrected_payload"},
        ),
        ({"verdict": "correct"}, {"corrected_payload"}),
        ({"verdict": "correct", "corrected_payload": OUT_OF_IMAGE}, {"corrected_payload.boxes[0].x"}),
        ({"verdict": "correct", "corrected_payload": TWO_BOXES}, {"corrected_payload"}),
        ({"verdict": "maybe"}, {"verdict"}),
        ({"verdict": "reject", "tags": "missed-object", "comment": "x"}, {"tags"}),
    ],
)  # fmt: skip
def test_a_bad_verdict_names_each_field_and_changes_nothing(org, body, fields):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    response = verdict(org, item, body)
    assert response.status_code == 400, response.json()
    assert set(response.json()["error"]["fields"]) == fields
    item.refresh_from_db()
    assert item.state == ReviewItemState.LEASED and item.reviewer_id == org.qa_lead.pk
    assert not Review.objects.exists() and not ReviewAccuracy.objects.exists()
    assert Annotation.objects.get(pk=item.annotation_id).version == 1
    assert not LiveEvent.objects.filter(type=LiveEventType.REVIEW_COMPLETED).exists()


def test_unknown_tags_are_named(org):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    body = {"verdict": "reject", "tags": ["wrong-label", "blurry"], "comment": "Redo."}
    fields = verdict(org, item, body).json()["error"]["fields"]
    assert fields == {"tags[1]": ["Unknown tag 'blurry': not in the project's error taxonomy."]}


def test_only_the_lease_holder_judges_and_only_once(org):
    project = verdict_project(org, org.annotator)
    other = reviewer_on(org, project, "acme-reviewer-2")
    item = leased(org, project, reviewer=other)
    taken = verdict(org, item, {"verdict": "accept"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "lease_lost"
    # A lease that lapsed but nobody took over still counts.
    item = lease(item, org.qa_lead, seconds=-60)
    assert verdict(org, item, {"verdict": "accept"}).status_code == 201
    again = verdict(org, item, {"verdict": "accept"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_submitted"
    assert Review.objects.count() == 1


def test_a_reviewer_who_lost_the_role_or_the_project_cannot_judge(org):
    project = verdict_project(org, org.annotator, tasks=6)
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    item = leased(org, project, reviewer=reviewer)
    member_role_change(member=reviewer, role=Role.ANNOTATOR, actor=None)
    reviewer.refresh_from_db()
    with pytest.raises(PermissionDenied):
        review_judge(item=item, reviewer=reviewer, verdict="accept")
    member_role_change(member=reviewer, role=Role.REVIEWER, actor=None)
    reviewer.refresh_from_db()
    ProjectMember.objects.filter(annotator__member=reviewer).update(is_active=False)
    with pytest.raises(PermissionDenied):
        review_judge(item=item, reviewer=reviewer, verdict="accept")
    # The org's own reviewer, on no project, is refused too; over the API, 403.
    item = lease(item, org.reviewer)
    assert verdict(org, item, {"verdict": "accept"}, role=Role.REVIEWER).status_code == 403
    assert not Review.objects.exists()
    item.refresh_from_db()
    assert item.state == ReviewItemState.LEASED


def test_a_qa_lead_layer_refuses_reviewers(org):
    project = verdict_project(org, org.annotator)
    project.review_layers.update(role="qa_lead")
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    item = leased(org, project, reviewer=reviewer)
    with pytest.raises(PermissionDenied):
        review_judge(item=item, reviewer=reviewer, verdict="accept")
    lease(item, org.qa_lead)
    assert review_judge(item=item, reviewer=org.qa_lead, verdict="accept").review.score == 1.0


def test_annotators_and_managers_cannot_give_verdicts(org):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    for role in (Role.ANNOTATOR, Role.MANAGER):
        assert verdict(org, item, {"verdict": "accept"}, role=role).status_code == 403
    assert not Review.objects.exists()


def test_the_database_refuses_a_verdict_by_the_author(org):
    project = verdict_project(org, org.annotator)
    item = waiting_item(submit(org.annotator, project))
    # The item cannot even be leased to its author ...
    with pytest.raises(IntegrityError), transaction.atomic():
        lease(item, org.annotator_member)
    # ... nor can a review by them be written, however it is inserted.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Review._meta.db_table} (item_id, annotation_id, version, layer_id, "
            "project_id, author_member_id, reviewer_id, verdict, tags, comment, score, details, "
            "created_at) VALUES (%s, %s, 1, %s, %s, %s, %s, 'accept', '{}', '', 1, '{}', now())",
            [item.pk, item.annotation_id, item.layer_id, project.pk, org.annotator_member.pk,
             org.annotator_member.pk],
        )  # fmt: skip
    assert not Review.objects.exists()


def test_one_reviewer_never_judges_an_annotation_at_two_layers(org):
    project = verdict_project(org, org.annotator, rates=(1.0, 1.0))
    first = leased(org, project)
    second = review_judge(item=first, reviewer=org.qa_lead, verdict="accept").next_item
    # The claim would not hand them layer 2's item; the database refuses it to them anyway ...
    with pytest.raises(IntegrityError), transaction.atomic():
        lease(second, org.qa_lead)
    # ... and a verdict of theirs there, however it is written.
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(
            item=second,
            annotation_id=second.annotation_id,
            version=1,
            layer=second.layer,
            project=project,
            author_member=org.annotator_member,
            reviewer=org.qa_lead,
            verdict="accept",
            score=1,
            created_at=timezone.now(),
        )
    second.refresh_from_db()
    assert second.state == ReviewItemState.OPEN
    assert Review.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_verdicts_on_one_item_one_wins(org):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    won, refused, errors = [], [], []

    def judge(i: int) -> None:
        try:
            barrier.wait()
            kind = "accept" if i % 2 else "correct"
            payload = MOVED if kind == "correct" else None
            won.append(
                review_judge(
                    item=item, reviewer=org.qa_lead, verdict=kind, corrected_payload=payload
                )
            )
        except Conflict as exc:
            refused.append(exc.code)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=judge, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(won) == 1 and refused == [ErrorCode.ALREADY_SUBMITTED] * (threads_n - 1)
    assert Review.objects.count() == 1
    accuracy = ReviewAccuracy.objects.get(annotator=org.annotator, project=project)
    assert accuracy.reviewed == 1
    assert Annotation.objects.get(pk=item.annotation_id).version in (1, 2)
    assert LiveEvent.objects.filter(type=LiveEventType.REVIEW_COMPLETED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_verdicts_on_one_annotators_work_add_up(org):
    project = verdict_project(org, org.annotator, tasks=8)
    items = [leased(org, project) for _ in range(8)]
    barrier = threading.Barrier(len(items))
    errors = []

    def judge(item) -> None:
        try:
            barrier.wait()
            review_judge(item=item, reviewer=org.qa_lead, verdict="accept")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=judge, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    accuracy = ReviewAccuracy.objects.get(annotator=org.annotator, project=project)
    assert (accuracy.reviewed, accuracy.score_sum, len(accuracy.recent)) == (8, 8.0, 8)


def test_review_accuracy_is_shown_with_its_interval_beside_gold(org):
    project = verdict_project(org, org.annotator, tasks=3)
    items = [leased(org, project) for _ in range(3)]
    review_judge(item=items[0], reviewer=org.qa_lead, verdict="accept")
    review_judge(
        item=items[1], reviewer=org.qa_lead, verdict="reject", tags=["wrong-label"], comment="No."
    )
    review_judge(item=items[2], reviewer=org.qa_lead, verdict="correct", corrected_payload=MOVED)
    # n 3, k 1 + 0 + 0.5: mean 0.5, Wilson interval [0.1253, 0.8747] at z 1.96.
    expected = {"reviewed": 3, "mean": 0.5}
    staff = org.client(Role.QA_LEAD)
    [row] = staff.get(f"/api/v1/projects/{project.pk}/accuracy").json()["results"]
    rows = {
        "project": row["review"],
        "annotator": staff.get(f"/api/v1/annotators/{org.annotator.pk}/accuracy").json()[
            "projects"
        ][0]["review"],
        "own": org.client(Role.ANNOTATOR)
        .get("/api/v1/me/accuracy")
        .json()["projects"][0]["review"],
    }
    for where, review in rows.items():
        assert {k: review[k] for k in expected} == expected, where
        assert review["low"] == pytest.approx(0.1253, abs=1e-4), where
        assert review["high"] == pytest.approx(0.8747, abs=1e-4), where
    assert row["scored"] == 0  # no gold: gold figures stand apart
    own = org.client(Role.ANNOTATOR).get("/api/v1/me/accuracy").json()
    assert own["kinds"][0]["review"]["reviewed"] == 3


def test_an_annotator_reads_the_verdicts_on_their_work_not_who_gave_them(org):
    project = verdict_project(org, org.annotator, tasks=3)
    items = [leased(org, project) for _ in range(2)]
    review_judge(
        item=items[0],
        reviewer=org.qa_lead,
        verdict="reject",
        tags=["missed-object", "wrong-label"],
        comment="Box the bus.",
    )
    review_judge(item=items[1], reviewer=org.qa_lead, verdict="correct", corrected_payload=MOVED)
    response = org.client(Role.ANNOTATOR).get("/api/v1/me/reviews")
    assert response.status_code == 200
    corrected, rejected = response.json()["results"]
    assert rejected["verdict"] == "reject" and rejected["comment"] == "Box the bus."
    assert rejected["tags"] == [
        {"code": "missed-object", "description": TAGS["missed-object"]},
        {"code": "wrong-label", "description": TAGS["wrong-label"]},
    ]
    assert rejected["layer"] == "layer 1" and rejected["corrected_payload"] is None
    assert rejected["task"] == items[0].task_id
    assert rejected["assignment"] == items[0].annotation.assignment_id
    assert corrected["corrected_payload"] == MOVED
    assert not any("reviewer" in key or "score" in key for key in rejected)
    # Others' work is not theirs to read.
    assert org.client(Role.QA_LEAD).get("/api/v1/me/reviews").json()["count"] == 0


def test_the_own_reviews_page_costs_the_same_whatever_its_size(org):
    project = verdict_project(org, org.annotator, tasks=6)
    client = org.client(Role.ANNOTATOR)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/me/reviews?page_size=50").status_code == 200
        return len(captured)

    review_judge(item=leased(org, project), reviewer=org.qa_lead, verdict="accept")
    one = queries()
    for _ in range(5):
        review_judge(
            item=leased(org, project),
            reviewer=org.qa_lead,
            verdict="reject",
            tags=["wrong-label"],
            comment="No.",
        )
    assert queries() == one


def test_nothing_crosses_an_organization(org, other_org):
    project = verdict_project(org, org.annotator)
    item = leased(org, project)
    theirs = other_org.client(Role.QA_LEAD)
    response = theirs.post(
        f"/api/v1/reviews/{item.pk}/verdict", {"verdict": "accept"}, format="json"
    )
    assert response.status_code == 404
    # Even called directly, a member of another organization may not judge here.
    lease(item, other_org.qa_lead)
    with pytest.raises(PermissionDenied):
        review_judge(item=item, reviewer=other_org.qa_lead, verdict="accept")
    lease(item, org.qa_lead)
    review_judge(item=item, reviewer=org.qa_lead, verdict="accept")
    assert other_org.client(Role.ANNOTATOR).get("/api/v1/me/reviews").json()["count"] == 0
    assert theirs.get(f"/api/v1/projects/{project.pk}/accuracy").status_code == 404
    assert theirs.get(f"/api/v1/annotators/{org.annotator.pk}/accuracy").status_code == 404
