"""Categorical consensus (qa/voting.py): majority vote, weighted vote, Dawid-Skene.

Dawid-Skene is checked on simulated crowds whose truth and confusion matrices are known: it must
beat the majority vote by a clear margin and recover every annotator's matrix. Fixed seeds, so
every figure below is reproducible. Plain arrays: no database.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.agreement import LabelTable, label_table
from qa.voting import dawid_skene, majority_vote, weighted_vote

CLASSES = ("a", "b", "c", "d", "e")
PRIORS = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


def uniform_errors(accuracy: float, k: int = 5) -> np.ndarray:
    matrix = np.full((k, k), (1 - accuracy) / (k - 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


def biased(true: int, given: int) -> np.ndarray:
    """A careful annotator (85 %) who labels most of class `true` as `given`."""
    matrix = uniform_errors(0.85)
    matrix[true] = 0.05 / 3
    matrix[true, true], matrix[true, given] = 0.3, 0.65
    return matrix


# Five reliable annotators, four spammers answering uniformly at random, three biased ones.
CROWD = np.stack(
    [uniform_errors(accuracy) for accuracy in (0.9, 0.85, 0.85, 0.8, 0.75)]
    + [np.full((5, 5), 0.2)] * 4
    + [biased(0, 1), biased(1, 2), biased(2, 0)]
)


def simulate(seed: int, tasks: int = 2000, per_task: int = 5):
    """Each task gets `per_task` labels from distinct random annotators of `CROWD`.

    Returns the table (task ids 0..tasks-1, annotator ids 0..11), the truth and, per label,
    (annotator, true class, given class) for the empirical confusion matrices.
    """
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(CLASSES), size=tasks, p=PRIORS)
    voters = np.argsort(rng.random((tasks, len(CROWD))), axis=1)[:, :per_task].ravel()
    task_ids = np.repeat(np.arange(tasks), per_task)
    cumulative = np.cumsum(CROWD[voters, truth[task_ids]], axis=1)
    given = np.minimum((rng.random(len(voters))[:, None] > cumulative).sum(axis=1), 4)
    table = label_table(task_ids, voters, np.asarray(CLASSES)[given], CLASSES)
    return table, truth, (voters, truth[task_ids], given)


def table_of(matrix, task_ids=None, annotator_ids=None) -> LabelTable:
    """The table of an annotators x tasks matrix of class indices (-1 = no label).

    Every column is a task of the table, labelled or not.
    """
    matrix = np.asarray(matrix)
    annotators, tasks = np.nonzero(matrix >= 0)
    task_ids = np.arange(matrix.shape[1]) if task_ids is None else np.asarray(task_ids)
    annotator_ids = np.arange(matrix.shape[0]) if annotator_ids is None else annotator_ids
    names = np.asarray(CLASSES)[matrix[annotators, tasks]]
    return label_table(
        task_ids[tasks], np.asarray(annotator_ids)[annotators], names, CLASSES, tasks=task_ids
    )


# --- majority vote -----------------------------------------------------------------------------


def test_majority_vote_takes_the_most_frequent_label_and_its_share():
    # Tasks: a, a, b / c, c / d.
    table = table_of([[0, 2, 3], [0, 2, -1], [1, -1, -1]])

    votes = majority_vote(table)

    assert votes.labels.tolist() == [0, 2, 3]
    assert votes.confidence.tolist() == pytest.approx([2 / 3, 1.0, 1.0])


def test_majority_vote_breaks_a_tie_toward_the_lower_class_index():
    # c, b / e, a, d / b, c, c, b: every tie goes to the class earlier in CLASSES.
    table = table_of([[2, 4, 1], [1, 0, 2], [-1, 3, 2], [-1, -1, 1]])

    votes = majority_vote(table)

    assert votes.labels.tolist() == [1, 0, 1]
    assert votes.confidence.tolist() == pytest.approx([0.5, 1 / 3, 0.5])


def test_a_task_without_labels_gets_no_consensus():
    table = label_table([2], [1], ["c"], CLASSES, tasks=[1, 2, 3])

    for votes in (majority_vote(table), weighted_vote(table, np.ones(1)), dawid_skene(table)):
        assert votes.labels.tolist() == [-1, 2, -1]
        assert votes.confidence.tolist() == [0.0, 1.0, 0.0]


@PROPERTY_SETTINGS
@given(rows=st.lists(st.lists(st.integers(-1, 4), min_size=6, max_size=6), min_size=1, max_size=6))
def test_majority_vote_matches_counting_by_hand(rows):
    matrix = np.array(rows)
    votes = majority_vote(table_of(matrix))

    for task in range(matrix.shape[1]):
        labels = [label for label in matrix[:, task] if label >= 0]
        if not labels:
            assert votes.labels[task] == -1
            continue
        counts = [labels.count(k) for k in range(5)]
        assert votes.labels[task] == counts.index(max(counts))
        assert votes.confidence[task] == pytest.approx(max(counts) / len(labels))


# --- weighted vote -----------------------------------------------------------------------------


def test_a_heavy_annotator_outvotes_two_light_ones():
    table = table_of([[0, 0], [0, 1], [1, 1]])

    votes = weighted_vote(table, np.array([0.3, 0.3, 0.9]))

    # Task 0: a weighs 0.6, b 0.9. Task 1: a 0.3, b 1.2.
    assert votes.labels.tolist() == [1, 1]
    assert votes.confidence.tolist() == pytest.approx([0.6, 0.8])


def test_weighted_vote_with_equal_weights_is_the_majority_vote():
    table, _, _ = simulate(seed=1, tasks=300)
    equal = weighted_vote(table, np.full(table.n_annotators, 0.7))
    majority = majority_vote(table)

    assert np.array_equal(equal.labels, majority.labels)
    assert np.allclose(equal.confidence, majority.confidence)


def test_a_task_whose_voters_all_weigh_nothing_falls_back_to_equal_weights():
    # Task 0: only annotators of weight 0 (c, c, b): counted as equals. Task 1: annotator 3
    # (weight 1) says a and outweighs the three others.
    table = table_of([[2, 1], [2, 1], [1, 1], [-1, 0]])

    votes = weighted_vote(table, np.array([0.0, 0.0, 0.0, 1.0]))

    assert votes.labels.tolist() == [2, 0]
    assert votes.confidence.tolist() == pytest.approx([2 / 3, 1.0])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -0.1], "non-negative"),
        ([1.0, np.nan], "finite"),
        ([1.0, np.inf], "finite"),
        ([1.0], r"one entry per annotator \(2\)"),
    ],
)
def test_weighted_vote_refuses_bad_weights(weights, message):
    table = table_of([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match=message):
        weighted_vote(table, np.array(weights))


# --- Dawid-Skene -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_beats_majority_vote_on_a_crowd_with_spammers_and_biased_annotators(seed):
    table, truth, _ = simulate(seed)

    model = dawid_skene(table)
    majority = np.mean(majority_vote(table).labels == truth)
    accuracy = np.mean(model.labels == truth)

    # Measured: majority vote 0.86-0.88, Dawid-Skene 0.945-0.951 on these seeds.
    assert model.converged
    assert model.iterations <= 100
    assert accuracy >= majority + 0.05
    # Its confidence is calibrated: on average as sure as it is right.
    assert np.mean(model.confidence) == pytest.approx(accuracy, abs=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_recovers_every_annotators_confusion_matrix(seed):
    table, _, (voters, true, given) = simulate(seed)

    model = dawid_skene(table)

    # About 830 labels per annotator, 67 of them on the rarest class. Against the matrices the
    # labels were drawn from, the error is mostly that sampling noise (measured at most 0.042
    # per cell); against what each annotator actually answered (the empirical matrix), it is
    # what the estimate itself gets wrong (measured at most 0.016).
    drawn_error = np.abs(model.confusion - CROWD[table.annotators]).mean(axis=(1, 2))
    empirical = np.zeros_like(CROWD)
    np.add.at(empirical, (voters, true, given), 1)
    empirical /= empirical.sum(axis=2, keepdims=True)
    realised_error = np.abs(model.confusion - empirical[table.annotators]).mean(axis=(1, 2))
    assert drawn_error.max() <= 0.05
    assert realised_error.max() <= 0.02
    # The spammers' rows are flat; the biased annotators' favourite mistake is found.
    assert np.abs(model.confusion[5:9] - 0.2).max() < 0.15
    assert model.confusion[9, 0, 1] == pytest.approx(0.65, abs=0.06)
    assert model.priors == pytest.approx(PRIORS, abs=0.02)


def test_dawid_skene_result_is_a_set_of_distributions():
    table, _, _ = simulate(seed=3, tasks=500)

    model = dawid_skene(table)

    assert model.posteriors.shape == (500, 5)
    assert model.confusion.shape == (12, 5, 5)
    assert np.allclose(model.posteriors.sum(axis=1), 1)
    assert np.allclose(model.confusion.sum(axis=2), 1)
    assert model.priors.sum() == pytest.approx(1)
    assert np.array_equal(model.labels, model.posteriors.argmax(axis=1))
    assert np.array_equal(model.confidence, model.posteriors.max(axis=1))


def test_dawid_skene_on_a_unanimous_crowd_is_sure_of_the_obvious():
    matrix = np.tile([0, 1, 2, 3, 4, 0, 1], (4, 1))

    model = dawid_skene(table_of(matrix))

    assert model.labels.tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert model.confidence.min() > 0.99
    assert model.converged


def test_dawid_skene_gives_tasks_without_labels_the_priors():
    table = label_table([1, 1, 2, 2], [1, 2, 1, 2], ["a", "a", "b", "b"], CLASSES, tasks=[1, 2, 3])

    model = dawid_skene(table)

    assert model.labels[2] == -1
    assert model.posteriors[2] == pytest.approx(model.priors)


def test_dawid_skene_on_an_empty_table_does_nothing():
    model = dawid_skene(label_table([], [], [], CLASSES))

    assert (model.iterations, model.converged) == (0, True)
    assert model.posteriors.shape == (0, 5)
    assert model.confusion.shape == (0, 5, 5)


def test_dawid_skene_reports_when_it_ran_out_of_iterations():
    table, _, _ = simulate(seed=0, tasks=500)

    model = dawid_skene(table, max_iter=2)

    assert (model.iterations, model.converged) == (2, False)
    with pytest.raises(ValueError, match="tol"):
        dawid_skene(table, tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        dawid_skene(table, max_iter=0)


@PROPERTY_SETTINGS
@given(
    rows=st.lists(st.lists(st.integers(-1, 4), min_size=8, max_size=8), min_size=2, max_size=5),
    data=st.data(),
)
def test_relabelling_annotators_and_tasks_changes_no_consensus(rows, data):
    matrix = np.array(rows)
    n_annotators, n_tasks = matrix.shape
    annotator_ids = np.array(data.draw(st.permutations(range(n_annotators)))) * 5 + 3
    task_ids = np.array(data.draw(st.permutations(range(n_tasks)))) * 11 + 7
    original, relabelled = table_of(matrix), table_of(matrix, task_ids, annotator_ids)
    # The original's ids are positions in the matrix; sort the relabelled rows back to them.
    task_rows = np.argsort(np.argsort(task_ids))
    annotator_positions = [list(annotator_ids).index(a) for a in relabelled.annotators]
    annotator_rows = np.argsort(annotator_positions)
    weights = np.linspace(0.1, 1, n_annotators)

    for ours, theirs in (
        (majority_vote(original), majority_vote(relabelled)),
        (
            weighted_vote(original, weights[original.annotators]),
            weighted_vote(relabelled, weights[annotator_positions]),
        ),
    ):
        assert np.array_equal(ours.labels, theirs.labels[task_rows])
        assert np.allclose(ours.confidence, theirs.confidence[task_rows])

    # The same EM path up to rounding: the stopping test may fire one round apart (1e-5).
    ours, theirs = dawid_skene(original), dawid_skene(relabelled)
    assert np.allclose(ours.posteriors, theirs.posteriors[task_rows], atol=1e-4)
    assert np.allclose(ours.confusion, theirs.confusion[annotator_rows], atol=1e-4)
    assert np.allclose(ours.priors, theirs.priors, atol=1e-4)
