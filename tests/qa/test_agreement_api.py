"""The project agreement report and Dawid-Skene over REST: figures equal to the reference
implementations' on the same labels, a cache that new work invalidates, and who may read them."""

import random

import krippendorff
import numpy as np
import pytest
from django.db import connection
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from qa.agreement import label_table
from qa.agreement_report import work_fingerprint
from qa.models import AgreementReport, TaskConsensus
from qa.verdicts import review_judge
from qa.voting import dawid_skene
from tasks.models import Annotation, Assignment, Task
from tasks.services.claims import (
    assignment_heartbeat,
    assignment_release,
    assignment_submit,
    claim_next,
)
from tasks.services.gold import task_gold_set
from tests.qa.agreement_helpers import CAR, PERSON, crowd_project, work
from tests.qa.review_helpers import layer, lease, set_policy, waiting_item
from workforce.models import Role

CLASSES = ["1", "2", "3"]
SCHEMA = {"labels": [{"name": name} for name in CLASSES]}
TASKS = 12


def labelled_project(org, callbacks, *, scale=None, tasks=TASKS, extra_tasks=0):
    """Three annotators label every one of ``tasks`` tasks (of ``tasks + extra_tasks``) with a
    seeded mix of agreement; returns (project, annotators)."""
    schema = SCHEMA | ({"scale": scale} if scale else {})
    project, people = crowd_project(org, tasks=tasks + extra_tasks, people=3, schema=schema)
    rng = random.Random(7)
    truth = {f"img-{i}": rng.choice(CLASSES) for i in range(tasks)}

    def label(task, skill):
        right = rng.random() < skill
        return {"label": truth[task.external_id] if right else rng.choice(CLASSES)}

    with callbacks(execute=True):
        for person, skill in zip(people, [0.9, 0.7, 0.4], strict=True):
            for _ in range(tasks):
                work(person, project, lambda task, skill=skill: label(task, skill))
    return project, people


def stored_labels(project) -> dict[tuple[int, int], int]:
    """(task, annotator) -> class index of every submitted label, as the database holds it."""
    rows = Annotation.objects.filter(project=project).values_list(
        "task_id", "annotator_id", "payload"
    )
    return {(t, a): CLASSES.index(p["label"]) for t, a, p in rows}


def reference_table(project):
    labels = stored_labels(project)
    tasks, people = sorted({t for t, _ in labels}), sorted({a for _, a in labels})
    matrix = np.full((len(people), len(tasks)), np.nan)
    for (t, a), value in labels.items():
        matrix[people.index(a), tasks.index(t)] = value
    return labels, tasks, people, matrix


def url(project, tail="agreement"):
    return f"/api/v1/projects/{project.pk}/{tail}"


def test_categorical_figures_equal_the_reference_implementations(
    org, django_capture_on_commit_callbacks
):
    project, _ = labelled_project(org, django_capture_on_commit_callbacks)
    response = org.client(Role.QA_LEAD).get(url(project), {"min_shared": TASKS})
    assert response.status_code == 200, response.content
    body = response.json()
    labels, tasks, people, matrix = reference_table(project)
    assert (body["kind"], body["categorical"], body["tasks"], body["cached"]) == (
        "classification",
        True,
        TASKS,
        False,
    )
    assert body["classes"] == CLASSES and body["min_shared"] == TASKS

    pairs = [(a, b) for i, a in enumerate(people) for b in people[i + 1 :]]
    expected = [
        cohen_kappa_score(
            [labels[(t, a)] for t in tasks], [labels[(t, b)] for t in tasks], labels=[0, 1, 2]
        )
        for a, b in pairs
    ]
    assert [(p["a"], p["b"], p["shared"]) for p in body["cohen"]] == [
        (a, b, TASKS) for a, b in pairs
    ]
    assert [p["kappa"] for p in body["cohen"]] == pytest.approx(expected)

    counts = np.zeros((len(tasks), 3))
    for (t, _), value in labels.items():
        counts[tasks.index(t), value] += 1
    assert body["fleiss"]["raters"] == 3 and body["fleiss"]["tasks"] == TASKS
    assert body["fleiss"]["kappa"] == pytest.approx(fleiss_kappa(counts))
    nominal = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert body["krippendorff"] == {"nominal": pytest.approx(nominal)}

    # Against the consensus stored for each task by its job.
    consensus = {
        t: CLASSES.index(p["label"])
        for t, p in TaskConsensus.objects.filter(project=project).values_list("task_id", "payload")
    }
    assert set(consensus) == set(tasks)
    shares = {a: np.mean([labels[(t, a)] == consensus[t] for t in tasks]) for a in people}
    assert [(row["annotator"], row["compared"]) for row in body["annotators"]] == [
        (a, TASKS) for a in people
    ]
    assert [row["agreement"] for row in body["annotators"]] == pytest.approx(
        [shares[a] for a in people]
    )
    confusion = np.zeros((3, 3), dtype=int)
    for (t, _), value in labels.items():
        confusion[consensus[t], value] += 1
    assert body["confusion"] == confusion.tolist()
    # The mean of the tasks' stored pairwise agreement: the share of agreeing pairs.
    pairwise = [np.mean([labels[(t, a)] == labels[(t, b)] for a, b in pairs]) for t in tasks]
    assert body["mean_pairwise"] == {"tasks": TASKS, "value": pytest.approx(np.mean(pairwise))}

    fewer = org.client(Role.MANAGER).get(url(project), {"min_shared": TASKS + 1}).json()
    assert fewer["cohen"] == [] and fewer["cached"] is False


def test_an_interval_scale_reports_alpha_at_every_level(org, django_capture_on_commit_callbacks):
    project, _ = labelled_project(org, django_capture_on_commit_callbacks, scale="interval")
    body = org.client(Role.QA_LEAD).get(url(project)).json()
    _, _, _, matrix = reference_table(project)
    expected = {
        "nominal": krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"),
        "ordinal": krippendorff.alpha(
            reliability_data=matrix, level_of_measurement="ordinal", value_domain=[0, 1, 2]
        ),
        # The label names are the numbers: 1, 2, 3 are the indices plus one.
        "interval": krippendorff.alpha(
            reliability_data=matrix + 1, level_of_measurement="interval"
        ),
    }
    assert body["krippendorff"] == pytest.approx(expected)


def test_the_report_is_served_from_its_cache_until_new_work_arrives(
    org, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    project, people = labelled_project(org, django_capture_on_commit_callbacks, extra_tasks=1)
    client = org.client(Role.QA_LEAD)
    first = client.get(url(project)).json()
    assert first["cached"] is False
    with django_assert_max_num_queries(8):
        second = client.get(url(project)).json()
    assert second["cached"] is True and second["computed_at"] == first["computed_at"]
    assert {k: v for k, v in second.items() if k != "cached"} == {
        k: v for k, v in first.items() if k != "cached"
    }
    assert AgreementReport.objects.filter(project=project).count() == 1

    # A new label on the last task: the report reads it.
    with django_capture_on_commit_callbacks(execute=True):
        work(people[0], project, {"label": "1"})
    third = client.get(url(project)).json()
    assert third["cached"] is False and third["tasks"] == TASKS + 1
    assert client.get(url(project)).json()["cached"] is True

    # A correction (a new version of a label) is new work too.
    annotation = Annotation.objects.filter(project=project, task__completed_at__isnull=False)[0]
    changed = "1" if annotation.payload["label"] != "1" else "2"
    Annotation.objects.filter(pk=annotation.pk).update(payload={"label": changed}, version=2)
    assert client.get(url(project)).json()["cached"] is False
    # So is a task made gold: its labels, agreement and consensus leave the report.
    task_gold_set(task=Task.objects.get(pk=annotation.task_id), answer={"label": "1"}, actor=None)
    fourth = client.get(url(project)).json()
    assert fourth["cached"] is False and fourth["tasks"] == TASKS
    assert fourth["mean_pairwise"]["tasks"] == TASKS - 1
    assert sum(map(sum, fourth["confusion"])) == 3 * (TASKS - 1)


def test_the_database_counts_every_change_of_the_reports_work_and_nothing_else(
    org, django_capture_on_commit_callbacks
):
    """The fingerprint moves with each transaction that changes the labels or the stored rows,
    whoever makes it, and stays put for work that changes neither."""
    project, (a, b, c) = crowd_project(org, people=3, overlap=2)
    set_policy(org, project, [layer()], [{"code": "wrong-label", "description": "Wrong."}])
    seen = [(0, 0)]

    def moved() -> tuple[bool, bool]:
        """Whether the labels' and the stored rows' counts moved since last asked."""
        fingerprint = work_fingerprint(project, labels=True)
        now = fingerprint["labels"], fingerprint["stored"]
        before, seen[0] = seen[0], now
        return now[0] > before[0], now[1] > before[1]

    assert moved() == (False, False)
    # Claims, heartbeats and releases change no label.
    claimed = claim_next(annotator=c, project_id=project.pk).claimed
    assignment = Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)
    assignment_heartbeat(assignment=assignment)
    assignment_release(assignment=assignment)
    assert moved() == (False, False)
    with django_capture_on_commit_callbacks(execute=True):
        first = work(a, project, {"label": "car"}).annotation
    assert moved() == (True, False)
    # The second label completes the task: the job stores its agreement and consensus.
    with django_capture_on_commit_callbacks(execute=True):
        work(b, project, {"label": "person"})
    assert moved() == (True, True)
    item = lease(waiting_item(first), org.qa_lead)
    review_judge(item=item, reviewer=org.qa_lead, verdict="reject", tags=["wrong-label"],
                 comment="No.")  # fmt: skip
    # Sent back: it counts no more.
    assert moved() == (True, False)
    # Resubmitted, which completes the task again.
    assignment = Assignment.objects.select_related("project", "task").get(pk=first.assignment_id)
    with django_capture_on_commit_callbacks(execute=True):
        assignment_submit(assignment=assignment, payload={"label": "person"})
    assert moved() == (True, True)
    # Plain SQL counts as much as a service; a column no report reads, not at all.
    Annotation.objects.filter(pk=first.pk).update(payload={"label": "car"})
    assert moved() == (True, False)
    Annotation.objects.filter(pk=first.pk).update(active_seconds=12)
    assert moved() == (False, False)
    # A task made gold: its seats taken away, its stored rows removed.
    task_gold_set(task=Task.objects.get(pk=first.task_id), answer={"label": "car"}, actor=None)
    assert moved() == (True, True)


def test_one_statement_counts_once_however_many_rows_it_changes(org):
    project, _ = crowd_project(org)
    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute(
                "SELECT qa_agreement_changed(%s, true) FROM generate_series(1, 500)", [project.pk]
            )
    assert work_fingerprint(project, labels=True)["labels"] == 2


def test_dawid_skene_equals_the_model_on_the_same_labels_and_is_cached(
    org, django_capture_on_commit_callbacks
):
    project, _ = labelled_project(org, django_capture_on_commit_callbacks)
    client = org.client(Role.MANAGER)
    body = client.get(url(project, "consensus/dawid-skene")).json()
    labels, _, people, _ = reference_table(project)
    keys = sorted(labels)
    table = label_table(
        [t for t, _ in keys], [a for _, a in keys], [CLASSES[labels[k]] for k in keys], CLASSES
    )
    model = dawid_skene(table)
    assert body["cached"] is False and body["classes"] == CLASSES and body["tasks"] == TASKS
    assert (body["iterations"], body["converged"]) == (model.iterations, model.converged)
    assert body["priors"] == pytest.approx(model.priors.tolist())
    assert [row["annotator"] for row in body["annotators"]] == people
    assert [row["labels"] for row in body["annotators"]] == [TASKS] * 3
    for row, matrix in zip(body["annotators"], model.confusion, strict=True):
        np.testing.assert_allclose(row["confusion"], matrix, rtol=1e-12)
    assert client.get(url(project, "consensus/dawid-skene")).json()["cached"] is True


def test_a_structured_kind_reports_mean_pairwise_and_scores_against_consensus(
    org, django_capture_on_commit_callbacks
):
    project, (a, b) = crowd_project(org, kind="bbox", tasks=2, people=2)
    with django_capture_on_commit_callbacks(execute=True):
        # First task: b drew one of a's two boxes (F1 2/3); second: the same box (1).
        work(a, project, {"boxes": [CAR, PERSON]})
        work(a, project, {"boxes": [CAR]})
        work(b, project, {"boxes": [CAR]})
        work(b, project, {"boxes": [CAR]})
    body = org.client(Role.QA_LEAD).get(url(project)).json()
    assert (body["categorical"], body["tasks"]) == (False, 2)
    assert body["mean_pairwise"] == {"tasks": 2, "value": pytest.approx((2 / 3 + 1) / 2)}
    # Consensus of the first task is the car box: a scores 2/3 there and 1 on the second.
    assert body["annotators"] == [
        {"annotator": a.pk, "compared": 2, "agreement": pytest.approx((2 / 3 + 1) / 2)},
        {"annotator": b.pk, "compared": 2, "agreement": 1.0},
    ]
    assert body["cohen"] is None and body["fleiss"] is None and body["krippendorff"] is None
    refused = org.client(Role.QA_LEAD).get(url(project, "consensus/dawid-skene"))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"


def test_only_staff_of_the_organization_may_read_them(
    org, other_org, django_capture_on_commit_callbacks
):
    project, _ = crowd_project(org)
    for tail in ("agreement", "consensus/dawid-skene"):
        for role in (Role.ANNOTATOR, Role.REVIEWER):
            response = org.client(role).get(url(project, tail))
            assert response.status_code == 403, (tail, role)
        assert other_org.client(Role.MANAGER).get(url(project, tail)).status_code == 404
        assert other_org.client(Role.QA_LEAD).get(url(project, tail)).status_code == 404
    assert not AgreementReport.objects.exists()


@pytest.mark.parametrize("value", ["x", "0", "-3", "1.5", "1000001"])
def test_a_bad_min_shared_is_refused_by_name(org, value):
    project, _ = crowd_project(org)
    response = org.client(Role.QA_LEAD).get(url(project), {"min_shared": value})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["min_shared"]
    assert not AgreementReport.objects.exists()


def test_a_project_without_work_reports_no_figures(org):
    project, _ = crowd_project(org)
    client = org.client(Role.QA_LEAD)
    body = client.get(url(project)).json()
    assert (body["tasks"], body["cohen"], body["annotators"]) == (0, [], [])
    assert body["fleiss"] == {"raters": 3, "tasks": 0, "kappa": None}
    assert body["krippendorff"] == {"nominal": None}
    assert body["mean_pairwise"] == {"tasks": 0, "value": None}
    model = client.get(url(project, "consensus/dawid-skene")).json()
    assert (model["tasks"], model["annotators"], model["iterations"]) == (0, [], 0)
