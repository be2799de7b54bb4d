"""A task's consensus, stored with its method and confidence when the task completes: a vote
for labels (weighted by gold accuracy when every voter has one), the kind's merge otherwise."""

import pytest
from django.utils import timezone

from qa.models import Accuracy, ConsensusMethod, TaskConsensus
from qa.selectors import consensus_for
from tasks.models import Task
from tests.qa.agreement_helpers import ACME, ANA, CAR, PERSON, crowd_project, one_task, work


def label_task(org, labels, callbacks, **fields):
    project, people = crowd_project(org, people=len(labels), **fields)
    with callbacks(execute=True):
        for person, label in zip(people, labels, strict=True):
            work(person, project, {"label": label})
    return project, people, one_task(project)


def gold_accuracy(project, annotator, *, scored: int, score_sum: float) -> None:
    Accuracy.objects.create(
        project=project,
        annotator=annotator,
        scored=scored,
        score_sum=score_sum,
        day=timezone.now().date(),
        updated_at=timezone.now(),
    )


def test_labels_are_decided_by_majority_with_the_winning_share_as_confidence(
    org, django_capture_on_commit_callbacks
):
    _, people, task = label_task(org, ["car", "person", "car"], django_capture_on_commit_callbacks)
    consensus = TaskConsensus.objects.get(task=task)
    assert consensus.method == ConsensusMethod.MAJORITY_VOTE
    assert consensus.payload == {"label": "car"}
    assert consensus.confidence == pytest.approx(2 / 3)
    assert consensus.scores == {
        str(people[0].pk): 1.0,
        str(people[1].pk): 0.0,
        str(people[2].pk): 1.0,
    }


def test_a_tie_goes_to_the_label_listed_first_in_the_schema(
    org, django_capture_on_commit_callbacks
):
    _, _, task = label_task(org, ["person", "car"], django_capture_on_commit_callbacks)
    consensus = TaskConsensus.objects.get(task=task)
    assert (consensus.payload, consensus.confidence) == ({"label": "car"}, 0.5)


def test_voters_who_all_have_gold_accuracy_are_weighted_by_it(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org, newcomer_gold_tasks=5)
    # The accurate one outweighs two poor ones: 0.95 against 0.3 + 0.3.
    for person, score_sum in zip(people, [9.5, 3.0, 3.0], strict=True):
        gold_accuracy(project, person, scored=10, score_sum=score_sum)
    with django_capture_on_commit_callbacks(execute=True):
        for person, label in zip(people, ["car", "person", "person"], strict=True):
            work(person, project, {"label": label})
    consensus = TaskConsensus.objects.get(task=one_task(project))
    assert consensus.method == ConsensusMethod.WEIGHTED_VOTE
    assert consensus.payload == {"label": "car"}
    assert consensus.confidence == pytest.approx(0.95 / 1.55)


def test_one_voter_short_of_the_newcomer_count_of_gold_makes_it_a_majority_vote(
    org, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org, newcomer_gold_tasks=5)
    gold_accuracy(project, people[0], scored=10, score_sum=9.5)
    gold_accuracy(project, people[1], scored=10, score_sum=3.0)
    gold_accuracy(project, people[2], scored=4, score_sum=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        for person, label in zip(people, ["car", "person", "person"], strict=True):
            work(person, project, {"label": label})
    consensus = TaskConsensus.objects.get(task=one_task(project))
    assert consensus.method == ConsensusMethod.MAJORITY_VOTE
    assert consensus.payload == {"label": "person"}


def test_boxes_merge_to_what_a_quorum_drew_with_the_mean_score_as_confidence(
    org, django_capture_on_commit_callbacks
):
    project, (a, b) = crowd_project(org, kind="bbox", people=2)
    with django_capture_on_commit_callbacks(execute=True):
        work(a, project, {"boxes": [CAR, PERSON]})
        work(b, project, {"boxes": [CAR]})
    consensus = TaskConsensus.objects.get(task=one_task(project))
    assert consensus.method == ConsensusMethod.MERGE
    # The person box has one of two annotators: not more than half, so it is left out.
    assert consensus.payload == {"boxes": [CAR]}
    # a scores F1 2/3 against it, b 1.
    assert consensus.scores == {str(a.pk): pytest.approx(2 / 3), str(b.pk): 1.0}
    assert consensus.confidence == pytest.approx(5 / 6)


def test_spans_merge_to_those_a_quorum_chose(org, django_capture_on_commit_callbacks):
    project, people = crowd_project(org, kind="ner")
    payloads = [
        {"spans": [ANA, ACME]},
        {"spans": [ANA]},
        {"spans": [ANA, ACME | {"label": "PER"}]},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for person, payload in zip(people, payloads, strict=True):
            work(person, project, payload)
    consensus = TaskConsensus.objects.get(task=one_task(project))
    assert consensus.method == ConsensusMethod.MERGE
    assert consensus.payload == {"spans": [ANA]}
    # F1 against it: 2/3, 1, 2/3.
    assert consensus.confidence == pytest.approx(7 / 9)


def test_consensus_for_answers_the_tasks_that_have_one_in_one_query(
    org, django_assert_num_queries, django_capture_on_commit_callbacks
):
    project, people = crowd_project(org, tasks=3, people=2)
    with django_capture_on_commit_callbacks(execute=True):
        for person in people:
            for label in ["car", "person"]:
                work(person, project, {"label": label})
    first, second, untouched = Task.objects.filter(project=project).order_by("pk")
    with django_assert_num_queries(1):
        found = consensus_for([first.pk, second.pk, untouched.pk])
    # Each annotator's second claim was a fresh task, the other's first claim a started one.
    assert found == {
        first.pk: ({"label": "car"}, ConsensusMethod.MAJORITY_VOTE, 1.0),
        second.pk: ({"label": "person"}, ConsensusMethod.MAJORITY_VOTE, 1.0),
    }
