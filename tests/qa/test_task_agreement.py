"""A task's agreement, computed by a job once its last seat is submitted: exact figures per kind
family, only submitted work counted, idempotent, and caught up after the broker refused it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from qa.jobs import catch_up_task_agreements, compute_task_agreement
from qa.models import TaskAgreement, TaskConsensus
from qa.task_agreement import task_agreement_compute, task_agreements_catch_up
from tasks.models import Annotation, Assignment, AssignmentStatus, Task
from tasks.services.gold import task_gold_set
from tests.faults import broker_at
from tests.qa.agreement_helpers import (
    ACME,
    ANA,
    CAR,
    PERSON,
    crowd_project,
    one_task,
    work,
)
from tests.qa.gold_helpers import gold_project
from workforce.models import PendingJob
from workforce.queue import pending_jobs_requeue

CLOSED_PORT = "redis://127.0.0.1:9/0"


def test_a_classification_task_stores_its_pairwise_agreement_and_label_table(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org)
    with django_capture_on_commit_callbacks(execute=True):
        for person, label in zip(people, ["car", "car", "person"], strict=True):
            work(person, project, {"label": label})
    task = one_task(project)
    agreement = TaskAgreement.objects.get(task=task)
    # Pairs: (car, car) 1, (car, person) 0 twice.
    assert agreement.value == pytest.approx(1 / 3)
    assert agreement.labels == {"car": 2, "person": 1}
    assert agreement.annotations == 3 and agreement.seats == 3 and not agreement.seat_added
    assert agreement.task_completed_at == task.completed_at
    ids = sorted(Annotation.objects.filter(task=task).values_list("pk", flat=True))
    assert (agreement.annotation_ids, agreement.versions) == (ids, [1, 1, 1])


def test_a_bbox_task_agreement_is_the_mean_f1_of_its_pairs(org, django_capture_on_commit_callbacks):
    project, (a, b) = crowd_project(org, kind="bbox", people=2)
    with django_capture_on_commit_callbacks(execute=True):
        work(a, project, {"boxes": [CAR, PERSON]})
        work(b, project, {"boxes": [CAR]})
    agreement = TaskAgreement.objects.get(task=one_task(project))
    # One of two boxes against one of one matched: F1 = 2 * 1 / (2 + 1), both ways.
    assert agreement.value == pytest.approx(2 / 3)
    assert agreement.labels == {}


def test_an_ner_task_agreement_is_the_mean_strict_span_f1_over_three_pairs(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org, kind="ner")
    payloads = [
        {"spans": [ANA, ACME]},
        {"spans": [ANA]},
        {"spans": [ANA, ACME | {"label": "PER"}]},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for person, payload in zip(people, payloads, strict=True):
            work(person, project, payload)
    agreement = TaskAgreement.objects.get(task=one_task(project))
    # F1 of the pairs: (1, 2) 2/3, (1, 3) 1/2, (2, 3) 2/3.
    assert agreement.value == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)


def test_nothing_is_computed_before_the_last_seat_nor_for_gold_nor_for_overlap_one(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org)
    with django_capture_on_commit_callbacks(execute=True):
        work(people[0], project, {"label": "car"})
        work(people[1], project, {"label": "car"})
    assert not TaskAgreement.objects.exists()
    assert task_agreement_compute(task_id=one_task(project).pk) is None

    single, (person,) = crowd_project(org, people=1, name="single")
    with django_capture_on_commit_callbacks(execute=True):
        work(person, single, {"label": "car"})
    assert one_task(single).completed_at is not None
    assert task_agreement_compute(task_id=one_task(single).pk) is None
    assert not TaskAgreement.objects.exists()

    gold = gold_project(org, regular=0, gold=1, overlap=2, name="gold")
    assert task_agreement_compute(task_id=Task.objects.get(project=gold).pk) is None
    assert not TaskAgreement.objects.exists()


def test_only_submitted_annotations_count(org, django_capture_on_commit_callbacks):
    project, people = crowd_project(org)
    with django_capture_on_commit_callbacks(execute=True):
        for person, label in zip(people, ["car", "car", "person"], strict=True):
            work(person, project, {"label": label})
    task = one_task(project)
    # The dissenter's work went back for rework: their assignment is active again.
    dissent = Assignment.objects.get(task=task, annotator=people[2])
    Assignment.objects.filter(pk=dissent.pk).update(status=AssignmentStatus.ACTIVE)
    agreement = task_agreement_compute(task_id=task.pk)
    assert (agreement.annotations, agreement.value, agreement.labels) == (2, 1.0, {"car": 2})
    assert TaskConsensus.objects.get(task=task).scores == {
        str(people[0].pk): 1.0,
        str(people[1].pk): 1.0,
    }
    # Lost to the pool: expired, and still not counted.
    Assignment.objects.filter(pk=dissent.pk).update(status=AssignmentStatus.EXPIRED)
    assert task_agreement_compute(task_id=task.pk).annotations == 2


def test_the_job_run_again_finds_its_work_done_and_a_new_version_is_recomputed(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org)
    with django_capture_on_commit_callbacks(execute=True):
        for person, label in zip(people, ["car", "car", "person"], strict=True):
            work(person, project, {"label": label})
    task = one_task(project)
    first = TaskAgreement.objects.get(task=task)
    with CaptureQueriesContext(connection) as queries:
        assert compute_task_agreement(task.pk) == pytest.approx(1 / 3)
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(("UPDATE", "DELETE"))]
    assert TaskAgreement.objects.get(task=task).computed_at == first.computed_at

    # A reviewer corrected the dissenting label: a new version, counted anew.
    dissent = Annotation.objects.get(task=task, annotator=people[2])
    Annotation.objects.filter(pk=dissent.pk).update(payload={"label": "car"}, version=2)
    assert compute_task_agreement(task.pk) == 1.0
    again = TaskAgreement.objects.get(task=task)
    assert again.computed_at > first.computed_at and sorted(again.versions) == [1, 1, 2]
    assert again.labels == {"car": 3}


@pytest.mark.django_db(transaction=True)
def test_a_refused_job_waits_as_pending_work_and_the_catch_up_computes_it_once(org, eager_jobs_off):
    project, people = crowd_project(org, tasks=2)
    with broker_at(CLOSED_PORT):
        for person in people:
            work(person, project, {"label": "car"})
    task = Task.objects.get(project=project, completed_at__isnull=False)
    pending = PendingJob.objects.get()
    assert (pending.name, pending.args) == ("qa.compute_task_agreement", [task.pk])
    assert not TaskAgreement.objects.exists()

    # Beat's catch-up finds the complete task without agreement (the other is not complete).
    assert catch_up_task_agreements() == 1
    caught = TaskAgreement.objects.get()
    assert (caught.task_id, caught.value) == (task.pk, 1.0)
    assert TaskConsensus.objects.get().payload == {"label": "car"}
    assert task_agreements_catch_up() == 0

    # The broker is back: the pending job runs (in-process here) and finds its work done.
    from config.celery import app

    app.conf.task_always_eager = True
    assert pending_jobs_requeue() == 1
    assert TaskAgreement.objects.get().computed_at == caught.computed_at
    assert not PendingJob.objects.exists()


def test_the_catch_up_recomputes_an_agreement_answering_an_earlier_completion(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org, tasks=3)
    with django_capture_on_commit_callbacks(execute=True):
        for person in people:
            for _ in range(3):
                work(person, project, {"label": "car"})
    assert TaskAgreement.objects.count() == 3
    stale = TaskAgreement.objects.order_by("task_id").first()
    Task.objects.filter(pk=stale.task_id).update(completed_at=stale.task_completed_at.replace(1999))
    TaskAgreement.objects.exclude(pk=stale.pk).order_by("task_id").last().delete()
    # Two batches of one: every stale task is found, past the first batch too.
    assert task_agreements_catch_up(batch_size=1) == 2
    assert TaskAgreement.objects.count() == 3
    stale.refresh_from_db()
    assert stale.task_completed_at.year == 1999


def test_a_task_made_gold_leaves_agreement_and_consensus_and_is_not_caught_up(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org)
    with django_capture_on_commit_callbacks(execute=True):
        for person in people:
            work(person, project, {"label": "car"})
    task = one_task(project)
    assert TaskAgreement.objects.filter(task=task).exists()
    task_gold_set(task=task, answer={"label": "car"}, actor=None)
    assert not TaskAgreement.objects.exists() and not TaskConsensus.objects.exists()
    assert task_agreements_catch_up() == 0
    assert task_agreement_compute(task_id=task.pk) is None
