"""Gold tasks: served at the project's rate, each to an annotator once, scored in the
submission's own transaction, counted into accuracy with honest intervals, and watched for
health. On PostgreSQL, through the real claim and submit."""

import math
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connections
from scipy.stats import binomtest

from qa.gold import own_figures, wilson
from qa.models import Accuracy, GoldScore, LiveEvent
from qa.selectors import project_accuracy
from tasks.kinds.bbox import BoundingBoxes
from tasks.models import Annotation, Assignment, AssignmentStatus, ProjectMember, Slot
from tasks.selectors import project_progress
from tasks.services.claims import ClaimOutcome, assignment_submit, claim_next
from tests.helpers import staff
from tests.qa.gold_helpers import (
    ANSWER,
    HALF,
    WRONG,
    annotators,
    claim_gold_share,
    gold_project,
    is_gold,
    submit,
)
from workforce.models import Annotator, Role

# Seats and progress.


def test_gold_tasks_have_no_seats_and_are_no_part_of_the_progress(org):
    project = gold_project(org, regular=4, gold=3, overlap=2)
    assert Slot.objects.filter(project=project).count() == 4 * 2
    assert not Slot.objects.filter(task__is_gold=True).exists()
    progress = project_progress([project.pk])[project.pk]
    assert progress["tasks_total"] == 4 and progress["annotations_needed"] == 8


# The rate the claim serves gold at.

# Two thousand claims at p = 0.1: the share's standard deviation is 0.0067; 0.03 is 4.5 of them,
# so a correct claim fails this test about once in 150,000 runs.
RATE_TOLERANCE = 0.03


def test_the_realised_gold_rate_is_the_projects_over_2000_claims(org):
    project = gold_project(org, regular=2100, gold=300, gold_rate=0.1, newcomer_gold_tasks=0)
    people = annotators(org, project, 4, limit=600)
    shares = [claim_gold_share(a, project, 500) for a in people]
    realised = sum(shares) / len(shares)
    assert abs(realised - 0.1) <= RATE_TOLERANCE, realised
    # Each gold task at most once per annotator (the database's constraint says so too).
    gold = Assignment.objects.filter(task__is_gold=True)
    assert gold.count() == len(set(gold.values_list("task_id", "annotator_id")))
    # Gold leases hold no slot; every regular one does.
    assert not gold.exclude(slot=None).exists()
    assert not Assignment.objects.filter(task__is_gold=False, slot=None).exists()


def test_newcomers_get_more_gold_until_they_have_submitted_enough_and_a_raised_rate_holds(org):
    project = gold_project(
        org,
        regular=1300,
        gold=400,
        gold_rate=0.1,
        newcomer_gold_rate=0.5,
        newcomer_gold_tasks=5,
    )
    (newcomer,) = annotators(org, project, 1, limit=2000)
    # Leases stay held (the project's limit is 1,000). n = 300 at 0.5: sd 0.029; 0.12 is 4.
    assert abs(claim_gold_share(newcomer, project, 300) - 0.5) <= 0.12
    while ProjectMember.objects.get(annotator=newcomer).gold_submitted < 5:
        submit(newcomer, project)
    # n = 300 at 0.1: sd 0.017; 0.07 is 4 of them.
    assert abs(claim_gold_share(newcomer, project, 300) - 0.1) <= 0.07
    # A rate raised for this annotator (a quality rule's action) wins over the project's.
    ProjectMember.objects.filter(annotator=newcomer).update(gold_rate=0.6)
    # n = 250 at 0.6: sd 0.031; 0.13 is 4 of them.
    assert abs(claim_gold_share(newcomer, project, 250) - 0.6) <= 0.13


def test_gold_rate_zero_serves_no_gold_even_to_newcomers(org):
    project = gold_project(org, regular=60, gold=20, gold_rate=0, newcomer_gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    assert claim_gold_share(person, project, 50) == 0


def test_a_claim_that_finds_no_regular_work_is_never_gold(org):
    """Otherwise a task handed out while the queue looked empty would be known gold."""
    project = gold_project(org, regular=0, gold=5, gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    result = claim_next(annotator=person, project_id=project.pk)
    assert result.outcome == ClaimOutcome.NONE_AVAILABLE


def test_an_annotator_who_saw_every_gold_task_gets_regular_work_and_the_pool_says_so(org):
    project = gold_project(org, regular=10, gold=3, gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    served = [is_gold(claim_next(annotator=person, project_id=project.pk).claimed)]
    served += [is_gold(claim_next(annotator=person, project_id=project.pk).claimed)]
    served += [is_gold(claim_next(annotator=person, project_id=project.pk).claimed)]
    assert served == [True, True, True]
    assert not is_gold(claim_next(annotator=person, project_id=project.pk).claimed)
    pool = org.client(Role.QA_LEAD).get(f"/api/v1/projects/{project.pk}/gold/pool").json()
    assert pool == {
        "gold_tasks": 3,
        "retired": 0,
        "annotators": 1,
        "annotators_who_saw_every_gold_task": 1,
        "ran_dry": True,
    }


@pytest.mark.django_db(transaction=True)
def test_no_annotator_gets_a_gold_task_twice_under_32_concurrent_claimers(org):
    """Eight annotators, four threads each, claiming at once: gold at every claim that finds
    work, from a pool of ten. Each annotator gets each gold task at most once, and nothing
    fails."""
    project = gold_project(org, regular=600, gold=10, gold_rate=1.0)
    people = annotators(org, project, 8, limit=100)
    start = threading.Barrier(32)
    errors: list[BaseException] = []

    def claimer(annotator):
        try:
            start.wait()
            for _ in range(12):
                claim_next(annotator=annotator, project_id=project.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(a,)) for a in people for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    gold = list(
        Assignment.objects.filter(task__is_gold=True).values_list("annotator_id", "task_id")
    )
    assert len(gold) == len(set(gold))
    per_annotator = Counter(annotator_id for annotator_id, _task in gold)
    # Every annotator saw the whole pool (48 claims each, gold first), once.
    assert per_annotator == {a.pk: 10 for a in people}
    assert Assignment.objects.count() == 8 * 48


# Scoring, in the submission's own transaction.


def test_a_gold_submission_is_scored_counted_and_told_to_staff_in_its_transaction(org):
    project = gold_project(org, regular=5, gold=1, gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    annotation = submit(person, project, lambda task: HALF)
    score = GoldScore.objects.get(annotation=annotation)
    # One of two boxes matches: precision 1/2, recall 1, F1 2/3.
    assert score.score == pytest.approx(2 / 3)
    assert score.details["precision"] == pytest.approx(0.5)
    assert score.details["recall"] == pytest.approx(1.0)
    assert score.answer_version == 1 and score.annotator_id == person.pk
    row = Accuracy.objects.get(annotator=person, project=project)
    assert (row.scored, row.score_sum, row.recent) == (1, pytest.approx(2 / 3), [score.score])
    assert ProjectMember.objects.get(annotator=person).gold_submitted == 1
    told = LiveEvent.objects.get(type="gold.scored")
    assert told.member_id is None and told.staff
    assert told.data == {
        "annotation": annotation.pk,
        "project": project.pk,
        "task": annotation.task_id,
        "annotator": person.pk,
        "score": pytest.approx(2 / 3),
    }
    # A regular submission is not scored.
    regular = submit(person, project)
    assert not GoldScore.objects.filter(annotation=regular).exists()


@pytest.mark.parametrize("failure", ["raises", "nan"])
def test_a_scorer_that_fails_fails_the_submission_whole(org, monkeypatch, failure):
    project = gold_project(org, regular=5, gold=1, gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    claimed = claim_next(annotator=person, project_id=project.pk).claimed
    assert is_gold(claimed)

    def broken(self, a, b, schema):
        if failure == "raises":
            raise RuntimeError("scorer broke")
        from tasks.kinds import Comparison

        return Comparison(math.nan, {})

    monkeypatch.setattr(BoundingBoxes, "compare", broken)
    assignment = Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)
    events_before = LiveEvent.objects.count()
    with pytest.raises((RuntimeError, ValueError)):
        assignment_submit(assignment=assignment, payload=ANSWER)
    assert not Annotation.objects.exists()
    assert not GoldScore.objects.exists() and not Accuracy.objects.exists()
    assert Assignment.objects.get(pk=claimed.assignment_id).status == AssignmentStatus.ACTIVE
    assert ProjectMember.objects.get(annotator=person).gold_submitted == 0
    assert LiveEvent.objects.count() == events_before


# The Wilson interval.


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 3), (7, 10), (50, 100), (999, 1000), (0, 50)])
def test_the_wilson_interval_matches_scipys(k, n):
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(reference.low, abs=1e-6)
    assert high == pytest.approx(reference.high, abs=1e-6)


def test_three_correct_gold_tasks_are_not_a_hundred_percent():
    low, high = wilson(3, 3)
    assert round(low, 2) == 0.44 and high == 1.0
    assert wilson(0, 0) is None
    # Fractional k (partial scores): the same formula, p = k / n.
    z = 1.959963984540054
    k, n = 2.5, 4
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(k, n) == (pytest.approx(centre - half), pytest.approx(centre + half))


# Reading accuracy.


def test_accuracy_is_read_per_project_per_annotator_and_by_oneself_without_moving(org):
    project = gold_project(org, regular=20, gold=6, gold_rate=1.0)
    good, poor = annotators(org, project, 2)
    for _ in range(3):
        submit(good, project)
        submit(poor, project, lambda task: WRONG if task.is_gold else ANSWER)
    qa = org.client(Role.QA_LEAD)
    table = qa.get(f"/api/v1/projects/{project.pk}/accuracy").json()["results"]
    first, second = table[0], table[1]
    assert first["annotator"] == good.pk and second["annotator"] == poor.pk
    assert first["scored"] == 3 and first["mean"] == 1.0
    assert (round(first["low"], 2), first["high"]) == (0.44, 1.0)
    assert second["mean"] == 0.0 and second["low"] == 0.0
    # The annotator without a gold task yet is listed, unknown.
    assert all(row["scored"] == 0 and row["low"] is None for row in table[2:])
    rollup = qa.get(f"/api/v1/annotators/{good.pk}/accuracy").json()
    assert rollup["projects"][0]["scored"] == 3
    assert rollup["kinds"] == [
        {"kind": "bbox"}
        | {k: v for k, v in first.items() if k not in ("annotator", "username")}
        | {"recent_mean": None, "recent_n": 0}
    ]
    assert (
        org.client(Role.ANNOTATOR).get(f"/api/v1/projects/{project.pk}/accuracy").status_code == 403
    )
    # Their own figures count nothing scored today: no figure moves as they work.
    row = Accuracy.objects.get(annotator=good, project=project)
    assert own_figures(row).scored == 0
    Accuracy.objects.filter(pk=row.pk).update(day=row.day - timedelta(days=1))
    row.refresh_from_db()
    assert own_figures(row).scored == 3
    # Staffing ranks the qualified by their lower bound.
    ranking = org.client(Role.MANAGER).get(f"/api/v1/projects/{project.pk}/staffing").json()
    ranked = [r["annotator"] for r in ranking if r["annotator"] in (good.pk, poor.pk)]
    assert ranked == [good.pk, poor.pk]
    by_id = {r["annotator"]: r for r in ranking}
    assert by_id[good.pk]["accuracy"]["kind"]["scored"] == 3


def test_an_annotator_reads_their_own_accuracy_as_of_yesterday(org):
    project = gold_project(org, regular=10, gold=2, gold_rate=1.0)
    annotator = org.annotator
    Annotator.objects.filter(pk=annotator.pk).update(max_concurrent_tasks=100)
    staff(project, annotator)
    submit(annotator, project)
    me = org.client(Role.ANNOTATOR).get("/api/v1/me/accuracy").json()
    # Not even a row yet: one appearing would tell which task was their first gold one.
    assert me["projects"] == [] and me["kinds"] == [] and me["domains"] == []
    Accuracy.objects.update(day=Accuracy.objects.get().day - timedelta(days=1))
    me = org.client(Role.ANNOTATOR).get("/api/v1/me/accuracy").json()
    assert me["projects"][0]["scored"] == 1
    assert "score" not in str(me).replace("scored", "")


def test_the_latest_scores_sum_kept_beside_them_stays_their_sum(org):
    """The window's sum is kept by each submission (the score in, the one 20 back out), so a
    project's table adds up no arrays; after 26 scores it is still the sum of the latest 20."""
    project = gold_project(org, regular=40, gold=26, gold_rate=1.0)
    (person,) = annotators(org, project, 1)
    answers = [ANSWER, HALF, WRONG]
    for i in range(26):
        submit(person, project, lambda task, i=i: answers[i % 3] if task.is_gold else ANSWER)
    row = Accuracy.objects.get(annotator=person)
    assert row.scored == 26 and len(row.recent) == 26
    assert row.recent_sum == pytest.approx(sum(row.recent[-20:]))
    (listed,) = project_accuracy(project=project)[:]
    assert listed["recent_n"] == 20
    assert listed["recent_mean"] == pytest.approx(sum(row.recent[-20:]) / 20)
