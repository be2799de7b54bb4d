"""Agreement math (qa/agreement.py) against the reference implementations people trust.

Cohen's kappa against scikit-learn, Fleiss' kappa against statsmodels, Krippendorff's alpha
against `krippendorff` fed a rater matrix (not the value counts our code passes it), on random
crowds with missing labels, to rounding (1e-9); and the edge cases where the formulas are 0/0,
which the references answer with NaN and Assay with None. Plain arrays: no database.
"""

import warnings

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from qa.agreement import (
    LabelTable,
    PairKappa,
    agreement_with,
    cohen_kappas,
    confusion,
    fleiss_kappa,
    krippendorff_alpha,
    label_table,
    value_counts,
)

CLASSES = ("cat", "dog", "fox", "owl")
PROPERTY_SETTINGS = settings(max_examples=80, deadline=None)


def crowd_matrix(
    rng: np.random.Generator, tasks: int, annotators: int, classes: int, labelled: float
) -> np.ndarray:
    """Return an annotators x tasks matrix of class indices (-1 = no label) with real agreement.

    Each annotator gives the task's true class with their own accuracy, another class otherwise,
    and labels each task with probability `labelled`: kappas land all over [-1, 1], not near 0.
    """
    truth = rng.integers(0, classes, tasks)
    accuracy = rng.uniform(0.2, 0.95, annotators)[:, None]
    noise = rng.integers(0, classes, (annotators, tasks))
    matrix = np.where(rng.random((annotators, tasks)) < accuracy, truth, noise)
    return np.where(rng.random((annotators, tasks)) < labelled, matrix, -1)


def table_of(matrix: np.ndarray, classes=CLASSES, task_ids=None, annotator_ids=None) -> LabelTable:
    """Return the table of a rater matrix; ids default to 10 + row and 1000 + column."""
    annotators, tasks = np.nonzero(matrix >= 0)
    annotator_ids = np.arange(matrix.shape[0]) + 10 if annotator_ids is None else annotator_ids
    task_ids = np.arange(matrix.shape[1]) + 1000 if task_ids is None else task_ids
    names = np.asarray(classes)[matrix[annotators, tasks]]
    return label_table(task_ids[tasks], annotator_ids[annotators], names.tolist(), classes)


def reliability(matrix: np.ndarray, values=None) -> np.ndarray:
    """The rater matrix as `krippendorff` reads it: the class's value, NaN for no label."""
    values = np.arange(matrix.max() + 1) if values is None else np.asarray(values, dtype=float)
    return np.where(matrix >= 0, values[np.maximum(matrix, 0)], np.nan)


# --- label_table -------------------------------------------------------------------------------


def test_label_table_sorts_by_task_then_annotator_and_indexes_ids_and_classes():
    table = label_table(
        [30, 10, 30, 10, 20], [7, 5, 5, 7, 5], ["dog", "cat", "owl", "cat", "fox"], CLASSES
    )

    assert table.tasks.tolist() == [10, 20, 30]
    assert table.annotators.tolist() == [5, 7]
    assert table.task_index.tolist() == [0, 0, 1, 2, 2]
    assert table.annotator_index.tolist() == [0, 1, 0, 0, 1]
    assert table.label_index.tolist() == [0, 0, 2, 3, 1]
    assert value_counts(table).tolist() == [[2, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]]


def test_label_table_is_the_same_whatever_the_order_of_the_input_rows():
    matrix = crowd_matrix(np.random.default_rng(3), 40, 6, 4, 0.7)
    annotators, tasks = np.nonzero(matrix >= 0)
    rows = np.random.default_rng(4).permutation(len(tasks))
    names = np.asarray(CLASSES)[matrix[annotators, tasks]]
    shuffled = label_table(tasks[rows] + 1000, annotators[rows] + 10, names[rows], CLASSES)
    ordered = table_of(matrix)

    for field in ("tasks", "annotators", "task_index", "annotator_index", "label_index"):
        assert np.array_equal(getattr(shuffled, field), getattr(ordered, field)), field


def test_label_table_arrays_cannot_be_changed():
    table = label_table([1], [2], ["cat"], CLASSES)
    with pytest.raises(ValueError, match="read-only"):
        table.label_index[0] = 3


def test_unknown_label_is_refused_by_name():
    with pytest.raises(ValueError, match="'lynx' is not one of the classes"):
        label_table([1, 2, 3], [1, 1, 1], ["cat", "lynx", "dog"], CLASSES)


def test_label_outside_the_sorted_classes_range_is_refused():
    # "zebra" sorts after every class: the binary search lands past the end.
    with pytest.raises(ValueError, match="'zebra'"):
        label_table([1, 2], [1, 1], ["cat", "zebra"], CLASSES)
    with pytest.raises(ValueError, match="'cat'"):
        label_table([1], [1], ["cat"], ())


def test_a_task_labelled_twice_by_one_annotator_is_refused_by_name():
    with pytest.raises(ValueError, match="annotator 7 labelled task 20 more than once"):
        label_table([10, 20, 30, 20], [7, 7, 7, 7], ["cat", "dog", "cat", "cat"], CLASSES)


def test_label_table_refuses_malformed_input():
    with pytest.raises(ValueError, match="differ in length"):
        label_table([1, 2], [1], ["cat", "dog"], CLASSES)
    with pytest.raises(ValueError, match="classes must be unique"):
        label_table([1], [1], ["cat"], ("cat", "cat"))
    with pytest.raises(ValueError, match="task_ids must be integers"):
        label_table([1.5], [1], ["cat"], CLASSES)


def test_listed_tasks_without_labels_get_rows():
    table = label_table([20], [1], ["dog"], CLASSES, tasks=[30, 10, 20])

    assert table.tasks.tolist() == [10, 20, 30]
    assert table.task_index.tolist() == [1]
    assert value_counts(table).sum(axis=1).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="labelled task 40 is not in tasks"):
        label_table([20, 40], [1, 1], ["dog", "cat"], CLASSES, tasks=[10, 20])
    with pytest.raises(ValueError, match="labelled task 20 is not in tasks"):
        label_table([20], [1], ["dog"], CLASSES, tasks=[])


def test_task_ids_too_far_apart_for_one_sort_key_still_sort():
    ids = [2**62, -(2**62), 0]
    table = label_table(ids, [2, 1, 1], ["cat", "dog", "owl"], CLASSES)

    assert table.tasks.tolist() == sorted(ids)
    assert table.label_index.tolist() == [1, 3, 0]


def test_empty_table():
    table = label_table([], [], [], CLASSES)

    assert (table.n_tasks, table.n_annotators, table.n_labels) == (0, 0, 0)
    assert value_counts(table).shape == (0, 4)
    assert fleiss_kappa(table, 3) is None
    assert krippendorff_alpha(table) is None
    assert cohen_kappas(table, min_shared=1) == []
    assert confusion(table, np.zeros(0, dtype=int)).sum() == 0


# --- Cohen's kappa -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_cohen_kappa_matches_scikit_learn_on_everyPairKappa(seed):
    rng = np.random.default_rng(seed)
    matrix = crowd_matrix(rng, tasks=120, annotators=7, classes=4, labelled=0.6)
    table = table_of(matrix)

    pairs = cohen_kappas(table, min_shared=30)

    expected = {}
    for a in range(7):
        for b in range(a + 1, 7):
            both = (matrix[a] >= 0) & (matrix[b] >= 0)
            if both.sum() >= 30:
                kappa = cohen_kappa_score(matrix[a, both], matrix[b, both])
                expected[(a + 10, b + 10)] = (int(both.sum()), kappa)
    assert [(p.a, p.b) for p in pairs] == sorted(expected)
    for pair in pairs:
        shared, kappa = expected[(pair.a, pair.b)]
        assert pair.shared == shared
        assert pair.kappa == pytest.approx(kappa, abs=1e-9)


def test_cohen_kappa_with_many_annotators_finds_pairs_by_sorting():
    # More annotators than the dense pair array holds: the sorting path, same answers.
    rng = np.random.default_rng(11)
    matrix = np.full((2100, 30), -1)
    for task in range(30):
        raters = rng.choice(2100, 6, replace=False)
        matrix[raters, task] = rng.integers(0, 3, 6)
    matrix[[0, 2099], :] = rng.integers(0, 3, (2, 30))
    table = table_of(matrix)

    pairs = cohen_kappas(table, min_shared=2)

    ours = {(p.a, p.b): p for p in pairs}
    assert (10, 2109) in ours
    pair = ours[(10, 2109)]
    assert pair.shared == 30
    assert pair.kappa == pytest.approx(cohen_kappa_score(matrix[0], matrix[2099]), abs=1e-9)
    assert all(p.shared >= 2 for p in pairs)


def test_cohen_kappa_is_one_for_perfect_agreement():
    table = table_of(np.array([[0, 1, 2, 3, 1], [0, 1, 2, 3, 1]]))

    assert cohen_kappas(table, min_shared=1) == [PairKappa(10, 11, 5, 1.0)]


def test_cohen_kappa_is_none_when_both_used_one_class_only():
    # pe = 1: kappa is 0/0. scikit-learn answers NaN (with a warning); we answer None.
    table = table_of(np.array([[2, 2, 2], [2, 2, 2]]))

    assert cohen_kappas(table, min_shared=1) == [PairKappa(10, 11, 3, None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(cohen_kappa_score([2, 2, 2], [2, 2, 2]))


def test_cohen_kappa_of_one_pair_on_hand_computed_counts():
    # Agree on 3 of 4; a: 3 x cat, 1 x dog; b: 2 x cat, 2 x dog.
    # po = 0.75, pe = (3*2 + 1*2) / 16 = 0.5, kappa = 0.5.
    table = label_table(
        [1, 1, 2, 2, 3, 3, 4, 4],
        [5, 9, 5, 9, 5, 9, 5, 9],
        ["cat", "cat", "cat", "dog", "cat", "cat", "dog", "dog"],
        CLASSES,
    )

    assert cohen_kappas(table, min_shared=4) == [PairKappa(5, 9, 4, 0.5)]
    assert cohen_kappas(table, min_shared=5) == []


def test_cohen_kappa_pairs_only_annotators_on_the_same_task():
    table = label_table([1, 1, 2], [5, 6, 7], ["cat", "dog", "cat"], CLASSES)

    assert [(p.a, p.b, p.shared) for p in cohen_kappas(table, min_shared=1)] == [(5, 6, 1)]
    with pytest.raises(ValueError, match="min_shared"):
        cohen_kappas(table, min_shared=0)


# --- Fleiss' kappa -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("raters", [2, 3, 5])
def test_fleiss_kappa_matches_statsmodels_on_tasks_with_that_many_labels(seed, raters):
    rng = np.random.default_rng(seed)
    matrix = crowd_matrix(rng, tasks=200, annotators=7, classes=4, labelled=0.55)
    table = table_of(matrix)

    counts = np.stack([(matrix == k).sum(axis=0) for k in range(4)], axis=1)
    counts = counts[(matrix >= 0).sum(axis=0) == raters]
    assert len(counts) >= 2
    assert fleiss_kappa(table, raters) == pytest.approx(statsmodels_fleiss(counts), abs=1e-9)


def test_fleiss_kappa_edge_cases():
    perfect = table_of(np.array([[0, 1, 3], [0, 1, 3], [0, 1, 3]]))
    assert fleiss_kappa(perfect, 3) == pytest.approx(1.0)
    # Everyone wrote "fox": observed and chance agreement are both 1, kappa 0/0.
    single_class = table_of(np.full((3, 4), 2))
    assert fleiss_kappa(single_class, 3) is None
    # One task with exactly two labels: nothing to measure chance agreement across.
    one_task = table_of(np.array([[0, 1, 2], [1, -1, 2], [-1, -1, 2]]))
    assert fleiss_kappa(one_task, 2) is None
    assert fleiss_kappa(one_task, 4) is None
    with pytest.raises(ValueError, match="raters"):
        fleiss_kappa(perfect, 1)


def test_fleiss_kappa_of_complete_disagreement_is_minus_one():
    table = table_of(np.array([[0, 1], [1, 0]]))

    assert fleiss_kappa(table, 2) == pytest.approx(-1.0)


# --- Krippendorff's alpha ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_matches_krippendorff_on_a_rater_matrix_with_missing_labels(seed, level):
    # Numeric class names out of their numeric order: ordinal must follow the classes' order,
    # interval the numbers.
    classes = ("2", "0.5", "10", "3")
    rng = np.random.default_rng(seed)
    matrix = crowd_matrix(rng, tasks=150, annotators=6, classes=4, labelled=0.5)
    table = table_of(matrix, classes=classes)

    if level == "interval":
        data = reliability(matrix, [float(c) for c in classes])
        reference = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    else:
        data = reliability(matrix)
        reference = krippendorff.alpha(
            reliability_data=data, value_domain=[0, 1, 2, 3], level_of_measurement=level
        )
    assert krippendorff_alpha(table, level) == pytest.approx(reference, abs=1e-9)


def test_ordinal_alpha_follows_the_order_of_the_classes():
    classes = ("low", "mid", "high", "very high")
    matrix = crowd_matrix(np.random.default_rng(8), tasks=80, annotators=4, classes=4, labelled=0.8)
    names = np.where(matrix >= 0, np.asarray(classes)[np.maximum(matrix, 0)], "nan")

    reference = krippendorff.alpha(
        reliability_data=names, value_domain=list(classes), level_of_measurement="ordinal"
    )
    assert krippendorff_alpha(table_of(matrix, classes), "ordinal") == pytest.approx(reference)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_edge_cases(level):
    classes = ("1", "2", "3")
    assert krippendorff_alpha(table_of(np.array([[0, 1, 2], [0, 1, 2]]), classes), level) == 1.0
    # One class throughout: expected disagreement 0, alpha 0/0.
    assert krippendorff_alpha(table_of(np.full((3, 5), 1), classes), level) is None
    # Tasks with a single label are not pairable; none is left.
    assert krippendorff_alpha(table_of(np.array([[0, -1], [-1, 2]]), classes), level) is None
    # One pairable task with two different values is enough.
    only_pair = table_of(np.array([[0, 1, -1], [2, -1, 0]]), classes)
    assert krippendorff_alpha(only_pair, level) == pytest.approx(
        krippendorff.alpha(
            reliability_data=[[1, 2, np.nan], [3, np.nan, 1]],
            value_domain=[1, 2, 3],
            level_of_measurement=level,
        )
    )


def test_alpha_with_a_single_class_in_the_schema_is_none():
    assert krippendorff_alpha(table_of(np.zeros((2, 3), dtype=int), ("yes",))) is None


def test_alpha_refuses_an_unknown_level_and_non_numeric_interval_classes():
    table = table_of(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha(table, "ratio")
    with pytest.raises(ValueError, match="'cat' is not a number"):
        krippendorff_alpha(table, "interval")


# --- agreement with a reference ----------------------------------------------------------------


def test_agreement_with_reference_counts_each_annotators_matching_labels():
    # Annotator 10: tasks 0 (match), 1 (miss), 2 (no reference); 11: task 1 (match); 12: task 2.
    table = table_of(np.array([[0, 1, 2], [-1, 3, -1], [-1, -1, 0]]))
    reference = np.array([0, 3, -1])

    result = agreement_with(table, reference)

    assert result.annotators.tolist() == [10, 11, 12]
    assert result.compared.tolist() == [2, 1, 0]
    assert result.agreed.tolist() == [1, 1, 0]
    assert result.share[:2].tolist() == [0.5, 1.0]
    assert np.isnan(result.share[2])


def test_confusion_counts_labels_by_reference_row_and_given_column():
    table = table_of(np.array([[0, 1, 2], [-1, 3, -1], [1, -1, 0]]))
    reference = np.array([0, 3, -1])

    matrix = confusion(table, reference)

    expected = np.zeros((4, 4), dtype=int)
    expected[0, 0] = 1  # task 0: annotator 10 said cat, reference cat
    expected[0, 1] = 1  # task 0: annotator 12 said dog
    expected[3, 1] = 1  # task 1: annotator 10 said dog, reference owl
    expected[3, 3] = 1  # task 1: annotator 11 said owl
    assert matrix.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_confusion_and_agreement_with_tell_the_same_story(seed):
    matrix = crowd_matrix(np.random.default_rng(seed), 100, 5, 4, 0.6)
    table = table_of(matrix)
    reference = np.random.default_rng(seed + 100).integers(-1, 4, table.n_tasks)

    counts = confusion(table, reference)
    agreement = agreement_with(table, reference)

    assert counts.sum() == agreement.compared.sum()
    assert np.trace(counts) == agreement.agreed.sum()


def test_reference_must_be_one_class_index_per_task():
    table = table_of(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="one entry per task"):
        agreement_with(table, np.array([0]))
    with pytest.raises(ValueError, match=r"outside -1\.\.3"):
        confusion(table, np.array([0, 4]))
    with pytest.raises(ValueError, match="class indices"):
        confusion(table, np.array([0.0, 1.0]))


# --- properties --------------------------------------------------------------------------------


@st.composite
def crowds(draw):
    """A small rater matrix (annotators x tasks, -1 = missing) of 2-4 classes."""
    annotators = draw(st.integers(2, 5))
    tasks = draw(st.integers(1, 8))
    classes = draw(st.integers(2, 4))
    cells = st.integers(-1, classes - 1)
    rows = draw(
        st.lists(
            st.lists(cells, min_size=tasks, max_size=tasks),
            min_size=annotators,
            max_size=annotators,
        )
    )
    return np.array(rows), classes


@PROPERTY_SETTINGS
@given(crowd=crowds(), data=st.data())
def test_relabelling_annotators_and_tasks_changes_no_coefficient(crowd, data):
    matrix, k = crowd
    classes = CLASSES[:k]
    n_annotators, n_tasks = matrix.shape
    # New ids in a shuffled order: the table's rows come out in a different order.
    annotator_ids = np.array(data.draw(st.permutations(range(n_annotators)))) * 3 + 1
    task_ids = np.array(data.draw(st.permutations(range(n_tasks)))) * 7 + 2
    original = table_of(matrix, classes)
    relabelled = table_of(matrix, classes, task_ids=task_ids, annotator_ids=annotator_ids)

    for raters in (2, 3):
        assert _same(fleiss_kappa(original, raters), fleiss_kappa(relabelled, raters))
    for level in ("nominal", "ordinal"):
        assert _same(krippendorff_alpha(original, level), krippendorff_alpha(relabelled, level))
    by_position = {(p.a - 10, p.b - 10): (p.shared, p.kappa) for p in cohen_kappas(original, 1)}
    position = {int(new): old for old, new in enumerate(annotator_ids)}
    moved = {}
    for p in cohen_kappas(relabelled, 1):
        key = tuple(sorted((position[p.a], position[p.b])))
        moved[key] = (p.shared, p.kappa)
    assert by_position.keys() == moved.keys()
    for key, (shared, kappa) in by_position.items():
        assert moved[key][0] == shared
        assert _same(kappa, moved[key][1])


@PROPERTY_SETTINGS
@given(crowd=crowds())
def test_kappas_stay_in_minus_one_to_one_and_alpha_at_most_one(crowd):
    matrix, k = crowd
    table = table_of(matrix, CLASSES[:k])

    for pair in cohen_kappas(table, 1):
        assert pair.kappa is None or -1 - 1e-12 <= pair.kappa <= 1 + 1e-12
    for raters in (2, 3, 4):
        kappa = fleiss_kappa(table, raters)
        assert kappa is None or -1 - 1e-12 <= kappa <= 1 + 1e-12
    alpha = krippendorff_alpha(table)
    assert alpha is None or alpha <= 1 + 1e-12


@PROPERTY_SETTINGS
@given(crowd=crowds())
def test_cohen_kappa_matches_scikit_learn_on_any_small_crowd(crowd):
    matrix, k = crowd
    table = table_of(matrix, CLASSES[:k])

    for pair in cohen_kappas(table, 1):
        a, b = pair.a - 10, pair.b - 10
        both = (matrix[a] >= 0) & (matrix[b] >= 0)
        assert pair.shared == both.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = cohen_kappa_score(matrix[a, both], matrix[b, both])
        if pair.kappa is None:
            assert np.isnan(reference)
        else:
            assert pair.kappa == pytest.approx(reference, abs=1e-9)


def _same(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is y
    return x == pytest.approx(y, abs=1e-9)
