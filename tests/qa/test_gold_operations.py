"""Making gold: a task marked gold, an answer corrected, an annotation promoted, a gold task
retired; past work rescored; gold health's flags. Every change audited."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from qa import gold as qa_gold
from qa.gold import gold_rescore_due, gold_rescores_catch_up
from qa.models import Accuracy, GoldRescore, GoldScore
from tasks.models import Assignment, AssignmentStatus, Slot, Task
from tasks.services.claims import claim_next
from tasks.services.projects import project_archive
from tests.helpers import image_rows, import_rows, make_project
from tests.qa.gold_helpers import ANSWER, HALF, WRONG, annotators, gold_project, is_gold, submit
from workforce.models import AuditEvent, AuditVerb, Role


def url(project, task, action=""):
    return f"/api/v1/projects/{project.pk}/tasks/{task.pk}/gold{action}"


def test_a_task_made_gold_loses_its_seats_and_its_past_work_is_scored(
    org, django_capture_on_commit_callbacks
):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(1))
    first, second = annotators(org, project, 2)
    done = submit(first, project, lambda task: HALF)
    held = claim_next(annotator=second, project_id=project.pk).claimed
    task = Task.objects.get()
    qa = org.client(Role.QA_LEAD)
    bad = qa.post(
        url(project, task), {"answer": {"boxes": [{"label": "car", "x": 700}]}}, format="json"
    )
    assert bad.status_code == 400
    fields = bad.json()["error"]["fields"]
    assert "answer.boxes[0].y" in fields and all(f.startswith("answer.") for f in fields)
    assert not Task.objects.get().is_gold and Slot.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = qa.post(
            url(project, task), {"answer": ANSWER, "reason": "checked"}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["is_gold"] and body["gold_answer"] == ANSWER and body["seats"] == []
    assert Assignment.objects.get(pk=held.assignment_id).status == AssignmentStatus.REVOKED
    # The work submitted before is scored against the answer, by the job, and counted.
    score = GoldScore.objects.get(annotation=done)
    assert score.score == pytest.approx(2 / 3) and score.answer_version == 1
    assert Accuracy.objects.get(annotator=first).scored == 1
    event = AuditEvent.objects.get(verb=AuditVerb.GOLD_SET)
    assert event.reason == "checked" and event.after["seats_removed"] == 2
    assert event.after["leases_ended"] == [held.assignment_id]
    # The same answer again changes nothing; a corrected one rescores.
    assert qa.post(url(project, task), {"answer": ANSWER}, format="json").status_code == 200
    assert AuditEvent.objects.filter(verb=AuditVerb.GOLD_SET).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        qa.post(url(project, task), {"answer": WRONG}, format="json")
    score.refresh_from_db()
    assert score.answer_version == 2 and score.score == pytest.approx(2 / 3)
    with django_capture_on_commit_callbacks(execute=True):
        qa.post(url(project, task), {"answer": {"boxes": []}}, format="json")
    score.refresh_from_db()
    assert score.answer_version == 3 and score.score == 0.0
    row = Accuracy.objects.get(annotator=first)
    assert (row.scored, row.score_sum, row.recent) == (1, 0.0, [0.0])


def test_a_rescore_that_failed_before_rebuilding_accuracy_is_finished_by_the_catch_up(
    org, django_capture_on_commit_callbacks, monkeypatch
):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(1))
    first, second = annotators(org, project, 2)
    submit(first, project, lambda task: HALF)
    submit(second, project)
    task = Task.objects.get()
    qa = org.client(Role.QA_LEAD)
    with django_capture_on_commit_callbacks(execute=True):
        assert qa.post(url(project, task), {"answer": ANSWER}, format="json").status_code == 200
    assert not GoldRescore.objects.exists()  # done: nothing due

    def sums():
        return sorted(Accuracy.objects.values_list("score_sum", flat=True))

    assert sums() == [pytest.approx(2 / 3), 1.0]

    # Corrected: the job writes every new score, then its database goes away before the
    # accuracy rows are rebuilt. The scores are of the new answer; the rows are not.
    def database_gone(**_):
        raise OperationalError("the database went away")

    monkeypatch.setattr("qa.gold.accuracy_rebuild", database_gone)
    with pytest.raises(OperationalError), django_capture_on_commit_callbacks(execute=True):
        qa.post(url(project, task), {"answer": {"boxes": []}}, format="json")
    monkeypatch.undo()
    assert set(GoldScore.objects.values_list("answer_version", "score")) == {(2, 0.0)}
    assert sums() == [pytest.approx(2 / 3), 1.0]
    assert GoldRescore.objects.get().version == 2

    assert gold_rescores_catch_up() == 0  # due, but its job may still be running
    GoldRescore.objects.update(since=timezone.now() - timedelta(minutes=3))
    assert gold_rescores_catch_up() == 1
    assert sums() == [0.0, 0.0]
    assert not GoldRescore.objects.exists()


def test_promoting_an_annotation_makes_its_task_gold_without_scoring_its_author(
    org, django_capture_on_commit_callbacks
):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(1))
    author, other = annotators(org, project, 2)
    promoted = submit(author, project)
    second = submit(other, project, lambda task: HALF)
    qa = org.client(Role.QA_LEAD)
    with django_capture_on_commit_callbacks(execute=True):
        response = qa.post(f"/api/v1/annotations/{promoted.pk}/promote", {}, format="json")
    assert response.status_code == 200
    task = Task.objects.get()
    assert task.is_gold and task.gold_answer == ANSWER and task.gold_source == promoted.pk
    assert list(GoldScore.objects.values_list("annotation_id", flat=True)) == [second.pk]
    assert not Accuracy.objects.filter(annotator=author).exists()
    annotator = org.client(Role.ANNOTATOR)
    assert annotator.post(f"/api/v1/annotations/{promoted.pk}/promote").status_code == 403
    assert other_org_cannot(org, promoted)


def other_org_cannot(org, annotation) -> bool:
    from tests.helpers import Org

    outsider = Org("outsiders")
    return (
        outsider.client(Role.QA_LEAD)
        .post(f"/api/v1/annotations/{annotation.pk}/promote", {}, format="json")
        .status_code
        == 404
    )


def test_a_retired_gold_task_is_served_no_more_and_keeps_its_scores(org):
    project = gold_project(org, regular=10, gold=1, gold_rate=1.0)
    first, second = annotators(org, project, 2)
    submit(first, project)
    gold = Task.objects.get(is_gold=True)
    qa = org.client(Role.QA_LEAD)
    response = qa.post(url(project, gold, "/retire"), {"reason": "leaked"}, format="json")
    assert response.status_code == 200 and response.json()["gold_answer"] == ANSWER
    assert not is_gold(claim_next(annotator=second, project_id=project.pk).claimed)
    assert GoldScore.objects.count() == 1
    assert AuditEvent.objects.get(verb=AuditVerb.GOLD_RETIRED).reason == "leaked"
    regular = Task.objects.filter(is_gold=False).first()
    refused = qa.post(url(project, regular, "/retire"), {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "invalid_status"
    assert org.client(Role.ANNOTATOR).post(url(project, gold, "/retire")).status_code == 403


def test_archiving_a_project_ends_its_gold_leases_and_deleting_a_held_gold_task_is_refused(org):
    project = gold_project(org, regular=5, gold=1, gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    held = claim_next(annotator=person, project_id=project.pk).claimed
    assert is_gold(held)
    gold = Task.objects.get(is_gold=True)
    refused = org.client(Role.MANAGER).delete(f"/api/v1/projects/{project.pk}/tasks/{gold.pk}")
    assert refused.status_code == 409
    project_archive(project=project, actor=org.manager.user)
    assert Assignment.objects.get(pk=held.assignment_id).status == AssignmentStatus.REVOKED


def test_gold_health_flags_contested_and_overexposed_tasks(org):
    """The three most accurate annotators fail one gold task and pass the other: the first is
    contested. Both were served to every annotator: overexposed above the project's share."""
    project = gold_project(org, regular=30, gold=2, gold_rate=1.0)
    people = annotators(org, project, 6)
    best = people[:3]
    for person in best:
        # A record that makes them the project's most accurate (lower bound well above others).
        Accuracy.objects.create(
            annotator=person,
            project=project,
            scored=20,
            score_sum=19.0,
            recent=[1.0] * 20,
            day="2026-01-01",
            updated_at="2026-01-01T00:00:00Z",
        )
    contested_task, fine_task = Task.objects.filter(is_gold=True).order_by("pk")

    def answer(person):
        return lambda task: WRONG if task.pk == contested_task.pk and person in best else ANSWER

    for person in people:
        submit(person, project, answer(person))
        submit(person, project, answer(person))
    qa = org.client(Role.QA_LEAD)
    rows = {r["id"]: r for r in qa.get(f"/api/v1/projects/{project.pk}/gold").json()["results"]}
    contested, fine = rows[contested_task.pk], rows[fine_task.pk]
    assert contested["contested"] and not fine["contested"]
    assert contested["best_scored"] == 3 and contested["best_mean_score"] == 0.0
    assert contested["scored"] == 6 and contested["mean_score"] == pytest.approx(0.5)
    assert fine["best_mean_score"] == 1.0
    assert contested["served"] == 6 and contested["exposure"] == 1.0
    assert contested["overexposed"] and fine["overexposed"]
    manager = org.client(Role.MANAGER)
    assert (
        manager.patch(
            f"/api/v1/projects/{project.pk}", {"gold_max_exposure": 1.0}, format="json"
        ).status_code
        == 200
    )
    rows = qa.get(f"/api/v1/projects/{project.pk}/gold").json()["results"]
    assert not any(r["overexposed"] for r in rows)
    assert org.client(Role.ANNOTATOR).get(f"/api/v1/projects/{project.pk}/gold").status_code == 403


def test_a_rescore_failing_in_the_catch_up_holds_up_no_other_and_stays_due(org, monkeypatch):
    project = make_project(org)
    import_rows(project, image_rows(2))
    broken, fine = Task.objects.order_by("pk")
    for task in (broken, fine):
        Task.objects.filter(pk=task.pk).update(is_gold=True, gold_answer=ANSWER, gold_version=1)
        gold_rescore_due(task.pk)
    GoldRescore.objects.update(since=timezone.now() - timedelta(minutes=3))
    real = qa_gold.gold_rescore

    def failing_for_one(*, task_id):
        if task_id == broken.pk:
            raise OperationalError("the database went away")
        return real(task_id=task_id)

    monkeypatch.setattr(qa_gold, "gold_rescore", failing_for_one)
    assert gold_rescores_catch_up() == 1
    assert list(GoldRescore.objects.values_list("task_id", flat=True)) == [broken.pk]
