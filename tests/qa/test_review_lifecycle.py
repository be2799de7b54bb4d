"""Review items follow their task and project: a task made gold leaves the review queues, an
archived project ends its review leases, and a correction on a complete task computes its
agreement again; on PostgreSQL, through the real claim, submit and services."""

import threading

import pytest
from django.db import connection

from config.errors import Conflict, ErrorCode, PermissionDenied
from qa.models import Review, ReviewItem, ReviewItemState, TaskAgreement
from qa.reviews import review_claim, review_heartbeat, review_release
from qa.task_agreement import task_agreement_compute
from qa.verdicts import review_judge
from tasks.models import ProjectStatus, Task
from tasks.services.gold import task_gold_set
from tasks.services.projects import project_archive, project_unarchive, project_update
from tests.qa.agreement_helpers import crowd_project, one_task, work
from tests.qa.review_helpers import (
    CAR,
    TWO_BOXES,
    layer,
    lease,
    reviewer_on,
    set_policy,
    submit,
    verdict_project,
    waiting_item,
)
from workforce.models import Role

pytestmark = pytest.mark.django_db

FIXED = {"boxes": [CAR]}
TAG = [{"code": "wrong-label", "description": "Wrong label."}]


def pending(task_id: int) -> list[ReviewItem]:
    return list(
        ReviewItem.objects.filter(
            annotation__task_id=task_id,
            state__in=[ReviewItemState.OPEN, ReviewItemState.LEASED],
        )
    )


# A task made gold is never reviewed -----------------------------------------------------------


def test_a_task_made_gold_leaves_the_review_queue_and_its_lease_ends(org):
    second = org.add_annotator("second")
    project = verdict_project(org, org.annotator, second, tasks=2, overlap=2)
    first = submit(org.annotator, project)
    other = submit(second, project)
    assert other.task_id == first.task_id  # started tasks first: both on one task
    held = lease(waiting_item(first), org.qa_lead)
    waiting = waiting_item(other)

    task_gold_set(task=Task.objects.get(pk=first.task_id), answer=TWO_BOXES, actor=None)

    assert pending(first.task_id) == []
    for item in (held, waiting):
        item.refresh_from_db()
        assert (item.state, item.reviewer_id, item.lease_expires_at) == ("skipped", None, None)
        # Sampled all the same: the decision stands, the review is off.
        assert item.sampled
    # Its holder can neither heartbeat, release nor judge it, and nobody claims it.
    for act in (review_heartbeat, review_release):
        with pytest.raises(Conflict) as refused:
            act(item=held, member=org.qa_lead)
        assert refused.value.code == ErrorCode.LEASE_LOST
    with pytest.raises(Conflict) as refused:
        review_judge(item=held, reviewer=org.qa_lead, verdict="accept")
    assert "gold" in refused.value.message
    assert review_claim(member=org.qa_lead, project_id=project.pk).claimed is None
    assert not Review.objects.exists()
    queues = org.client(Role.QA_LEAD).get(f"/api/v1/projects/{project.pk}/review-queues").json()
    assert (queues[0]["open"], queues[0]["leased"]) == (0, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(4))
def test_a_rejection_racing_the_task_made_gold_never_deadlocks(org, round_):
    """A rejection locks the work's seat before its item, as making the task gold does: the two
    never wait for each other in a cycle, and whichever commits first, nothing of the task is
    left waiting for review."""
    project = verdict_project(org, org.annotator, tasks=1)
    item = lease(waiting_item(submit(org.annotator, project)), org.qa_lead)
    task = Task.objects.get(pk=item.task_id)
    barrier = threading.Barrier(2)
    errors, outcomes = [], []

    def reject() -> None:
        try:
            barrier.wait()
            review_judge(
                item=item,
                reviewer=org.qa_lead,
                verdict="reject",
                tags=["wrong-label"],
                comment="No.",
            )
            outcomes.append("rejected")
        except Conflict as exc:
            outcomes.append(exc.code)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def make_gold() -> None:
        try:
            barrier.wait()
            task_gold_set(task=task, answer=TWO_BOXES, actor=None)
            outcomes.append("gold")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reject), threading.Thread(target=make_gold)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert "gold" in outcomes
    assert Task.objects.get(pk=task.pk).is_gold
    assert pending(task.pk) == []
    # Either the rejection came first (its rework lease then ended with the seats), or the
    # item was skipped and the rejection refused.
    assert set(outcomes) - {"gold"} <= {"rejected", ErrorCode.LEASE_LOST}


# An archived project's review leases end --------------------------------------------------------


def test_archiving_ends_the_projects_review_leases_and_unarchiving_serves_them_again(org):
    project = verdict_project(org, org.annotator, tasks=3)
    reviewer = reviewer_on(org, project, "acme-reviewer-2")
    by_reviewer = lease(waiting_item(submit(org.annotator, project)), reviewer)
    by_lead = lease(waiting_item(submit(org.annotator, project)), org.qa_lead)

    project_archive(project=project, actor=None)

    for item in (by_reviewer, by_lead):
        item.refresh_from_db()
        assert (item.state, item.reviewer_id, item.lease_expires_at) == ("open", None, None)
    # As for tasks: their holders are told their access ended.
    with pytest.raises(PermissionDenied) as refused:
        review_heartbeat(item=by_reviewer, member=reviewer)
    assert refused.value.code == ErrorCode.ACCESS_ENDED
    with pytest.raises(PermissionDenied):
        review_judge(item=by_lead, reviewer=org.qa_lead, verdict="accept")
    assert review_claim(member=reviewer).claimed is None
    # Back and active: the items wait for review again, for anyone, their holders included.
    project = project_unarchive(project=project, actor=None)
    project_update(project=project, actor=None, status=ProjectStatus.ACTIVE)
    claimed = review_claim(member=reviewer, project_id=project.pk).claimed
    assert claimed is not None and claimed.item_id in {by_reviewer.pk, by_lead.pk}


def test_pausing_a_project_keeps_its_review_leases(org):
    project = verdict_project(org, org.annotator)
    item = lease(waiting_item(submit(org.annotator, project)), org.qa_lead)
    project_update(project=project, actor=None, status=ProjectStatus.PAUSED)
    item.refresh_from_db()
    assert item.state == ReviewItemState.LEASED and item.reviewer_id == org.qa_lead.pk


# A correction on a complete task --------------------------------------------------------------


def reviewed_crowd(org):
    """A bbox task two annotators completed, every submission sampled at one layer."""
    project, people = crowd_project(org, kind="bbox", people=2)
    set_policy(org, project, [layer()], TAG)
    return project, people


def test_a_correction_on_a_complete_task_computes_its_agreement_again(
    org, django_capture_on_commit_callbacks
):
    project, (a, b) = reviewed_crowd(org)
    with django_capture_on_commit_callbacks(execute=True):
        work(a, project, TWO_BOXES)
        work(b, project, FIXED)
    task = one_task(project)
    before = TaskAgreement.objects.get(task=task)
    first = waiting_item(task.annotations.get(annotator=a))
    with django_capture_on_commit_callbacks(execute=True) as queued:
        review_judge(
            item=lease(first, org.qa_lead),
            reviewer=org.qa_lead,
            verdict="correct",
            corrected_payload=FIXED,
        )
    assert queued  # the job, after commit
    after = TaskAgreement.objects.get(task=task)
    # It counted the corrected version; agreement measures the annotators' own work, which did
    # not change.
    ids = dict(zip(after.annotation_ids, after.versions, strict=True))
    assert ids[first.annotation_id] == 2 and after.computed_at > before.computed_at
    assert after.value == before.value
    # Delivered again, it finds its work done.
    assert task_agreement_compute(task_id=task.pk).computed_at == after.computed_at


def test_a_correction_on_an_incomplete_task_queues_nothing(org, django_capture_on_commit_callbacks):
    project, (a, _b) = reviewed_crowd(org)
    annotation = work(a, project, TWO_BOXES).annotation
    with django_capture_on_commit_callbacks(execute=True):
        review_judge(
            item=lease(waiting_item(annotation), org.qa_lead),
            reviewer=org.qa_lead,
            verdict="correct",
            corrected_payload=FIXED,
        )
    # Its completion will compute it; until then nothing is.
    assert not TaskAgreement.objects.exists()
    assert Task.objects.get(pk=annotation.task_id).completed_at is None
