"""Inter-annotator agreement for categorical labels (DESIGN.md section 5), as plain array math.

Everything here works on a `LabelTable`: the labels of one project in coordinate form, one entry
per (task, annotator) label, with missing labels simply absent. The database side builds the table
once and asks it every question (Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha,
agreement with consensus), so every function is vectorised over all labels: a million labels
must cost well under a second, never a Python loop per label, task or pair-of-annotators-on-a-task.

An agreement coefficient that its formula leaves undefined (0/0: everyone used one class, no two
tasks to compare) is `None`, never NaN and never a made-up 0 or 1, so that callers show "not
enough data" instead of a number nobody can interpret. The reference implementations answer NaN
there (scikit-learn, statsmodels, `krippendorff`); elsewhere these functions agree with them to
rounding (tests/qa/test_agreement_math.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np

LEVELS = ("nominal", "ordinal", "interval")
# Cohen's kappa counts pairs in one dense array of annotators x annotators bins while it has at
# most this many cells (2,048 annotators: 32 MiB of counts); beyond it, pairs are found by
# sorting, which costs about 0.2 s per million pairs instead of 2 ms.
DENSE_PAIR_CELLS = 2048 * 2048


@dataclass(frozen=True, eq=False)
class LabelTable:
    """The labels of a set of tasks in coordinate form, sorted by task, then annotator.

    `tasks` and `annotators` hold the ids (sorted, unique); `task_index`, `annotator_index` and
    `label_index` say, for each label, which task (row of `tasks`), annotator (row of
    `annotators`) and class (position in `classes`) it is. Build it with `label_table()`, which
    validates the input and makes the arrays read-only. `eq=False`: arrays have no truth value,
    so tables compare by identity.
    """

    tasks: np.ndarray
    annotators: np.ndarray
    classes: tuple[str, ...]
    task_index: np.ndarray
    annotator_index: np.ndarray
    label_index: np.ndarray

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_labels(self) -> int:
        return len(self.label_index)


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of annotators `a` < `b` (ids) over the `shared` tasks both labelled."""

    a: int
    b: int
    shared: int
    kappa: float | None


@dataclass(frozen=True, eq=False)
class AnnotatorAgreement:
    """Per annotator (in `table.annotators` order): how often their label equals a reference.

    `compared` counts their labels on tasks that have a reference label, `agreed` those equal to
    it, and `share` is agreed / compared (NaN where they labelled no such task). When the
    reference is a consensus the annotator voted in, their own label pulls it towards them: with
    three labels per task the share is an upper bound of their accuracy, not an estimate of it.
    """

    annotators: np.ndarray
    compared: np.ndarray
    agreed: np.ndarray
    share: np.ndarray


def label_table(
    task_ids: Sequence[int] | np.ndarray,
    annotator_ids: Sequence[int] | np.ndarray,
    labels: Sequence[str] | np.ndarray,
    classes: Sequence[str],
    *,
    tasks: Sequence[int] | np.ndarray | None = None,
) -> LabelTable:
    """Return the table of labels `labels[i]` given by `annotator_ids[i]` to `task_ids[i]`.

    `classes` fixes the class order (the order ordinal and interval agreement measure in, and
    the index every result uses). `tasks`, when given, lists every task the table must have a
    row for, labelled or not (consensus answers -1 for the unlabelled ones); it must include
    every labelled task. Raise ValueError for an unknown label (naming it), a (task, annotator)
    pair labelled twice (naming it), repeated classes or sequences of different lengths.

    Costs a few sorts of the input (about 0.3 s for a million labels given as Python lists, less
    for arrays already sorted by task and annotator, as an ORDER BY returns them).
    """
    classes = tuple(classes)
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be unique, got {classes!r}")
    task_ids = _ids(task_ids, "task_ids")
    annotator_ids = _ids(annotator_ids, "annotator_ids")
    label_values = np.asarray(labels, dtype=np.str_)
    if not len(task_ids) == len(annotator_ids) == len(label_values):
        raise ValueError(
            f"task_ids, annotator_ids and labels differ in length "
            f"({len(task_ids)}, {len(annotator_ids)}, {len(label_values)})"
        )
    label_index = _class_index(label_values, classes)

    annotator_rows = _unique(annotator_ids)
    annotator_index = np.searchsorted(annotator_rows, annotator_ids)
    order = _task_annotator_order(task_ids, annotator_index, len(annotator_rows))
    if order is not None:
        task_ids, annotator_index, label_index = (
            task_ids[order],
            annotator_index[order],
            label_index[order],
        )
    same_task = task_ids[1:] == task_ids[:-1]
    repeated = np.flatnonzero(same_task & (annotator_index[1:] == annotator_index[:-1]))
    if len(repeated):
        at = repeated[0]
        raise ValueError(
            f"annotator {annotator_rows[annotator_index[at]]} labelled task {task_ids[at]} "
            f"more than once"
        )
    # The ids are sorted now: a task's row is the number of task changes before it.
    new_task = np.concatenate(([True], ~same_task)) if len(task_ids) else np.zeros(0, bool)
    task_rows = task_ids[new_task]
    task_index = np.cumsum(new_task) - 1
    if tasks is not None:
        listed = _unique(_ids(tasks, "tasks"))
        missing = task_rows[~np.isin(task_rows, listed, assume_unique=True)]
        if len(missing):
            raise ValueError(f"labelled task {missing[0]} is not in tasks")
        task_index = np.searchsorted(listed, task_ids)
        task_rows = listed
    return LabelTable(
        tasks=_frozen(task_rows),
        annotators=_frozen(annotator_rows),
        classes=classes,
        task_index=_frozen(task_index),
        annotator_index=_frozen(annotator_index),
        label_index=_frozen(label_index),
    )


def value_counts(table: LabelTable) -> np.ndarray:
    """Return how many annotators gave each class to each task (n_tasks x n_classes, int64)."""
    k = table.n_classes
    cells = np.bincount(table.task_index * k + table.label_index, minlength=table.n_tasks * k)
    return cells.reshape(table.n_tasks, k)


def fleiss_kappa(table: LabelTable, raters: int) -> float | None:
    """Return Fleiss' kappa over the tasks that have exactly `raters` labels.

    Fleiss' kappa assumes the same number of raters per task, so tasks with more or fewer labels
    drop out instead of being truncated or padded. None when fewer than two tasks remain (one
    task has no between-task variation to measure chance against) or when every remaining label
    is the same class: then observed and chance agreement are both 1 and the formula is 0/0 —
    perfect agreement and no information are indistinguishable, so no number is given.
    """
    if raters < 2:
        raise ValueError(f"raters must be at least 2, got {raters}")
    counts = value_counts(table)
    counts = counts[counts.sum(axis=1) == raters]
    if len(counts) < 2:
        return None
    totals = counts.sum(axis=0)
    if np.count_nonzero(totals) < 2:
        return None
    shares = totals / totals.sum()
    observed = ((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1))).mean()
    chance = float(shares @ shares)
    return float((observed - chance) / (1 - chance))


def krippendorff_alpha(table: LabelTable, level: str = "nominal") -> float | None:
    """Return Krippendorff's alpha at `level` (nominal, ordinal or interval) over every task.

    Any number of labels per task and missing labels are allowed; a task with fewer than two
    labels cannot be paired and drops out. `ordinal` ranks the classes in `table.classes` order;
    `interval` reads each class string as a number (ValueError naming one that is not) and uses
    squared differences of those numbers. None when no task has two labels or every pairable
    label is the same class (the formula is 0/0, as for Fleiss' kappa).

    Computed by the `krippendorff` package from the value counts (about 0.1 s for 100,000 tasks),
    which builds the coincidence matrix without ever expanding tasks into a rater matrix.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    domain = np.arange(table.n_classes)
    if level == "interval":
        domain = _numeric_classes(table.classes)
    counts = value_counts(table)
    counts = counts[counts.sum(axis=1) >= 2]
    if np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    # Two classes can be the same number ("1" and "1.0"): then the expected disagreement can
    # still be 0, and the 0/0 is reported like the others.
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = float(
            krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level)
        )
    return alpha if math.isfinite(alpha) else None


def cohen_kappas(table: LabelTable, min_shared: int) -> list[PairKappa]:
    """Return Cohen's kappa for every annotator pair that labelled at least `min_shared` tasks.

    Each pair is measured on the tasks both labelled, with chance agreement from the two
    annotators' own class shares on those tasks. Every pair of labels on a task becomes one row
    (label counts, not tasks, bound the work), each row a key pair x class x class, and one
    bincount gives every pair's confusion matrix. Kappa is computed from integer counts, so a
    pair that used one same class throughout (chance agreement exactly 1, kappa 0/0) is None.
    Sorted by (a, b).
    """
    if min_shared < 1:
        raise ValueError(f"min_shared must be at least 1, got {min_shared}")
    first, second = _label_pairs(table)
    n_annotators, k = table.n_annotators, table.n_classes
    # Rows are sorted by annotator within a task, so the first of a pair is the lower index.
    codes = table.annotator_index[first] * n_annotators + table.annotator_index[second]
    if n_annotators * n_annotators <= DENSE_PAIR_CELLS:
        shared = np.bincount(codes, minlength=n_annotators * n_annotators)
        kept = np.flatnonzero(shared >= min_shared)
        lookup = np.full(len(shared), -1)
        lookup[kept] = np.arange(len(kept))
        pair_of_row = lookup[codes]
        shared = shared[kept]
    else:
        kept, pair_of_row, shared = np.unique(codes, return_inverse=True, return_counts=True)
        enough = shared >= min_shared
        lookup = np.where(enough, np.cumsum(enough) - 1, -1)
        kept, shared, pair_of_row = kept[enough], shared[enough], lookup[pair_of_row]
    rows = pair_of_row >= 0
    first_label = table.label_index[first[rows]]
    second_label = table.label_index[second[rows]]
    cells = (pair_of_row[rows] * k + first_label) * k + second_label
    matrices = np.bincount(cells, minlength=len(kept) * k * k).reshape(len(kept), k, k)
    agreed = np.trace(matrices, axis1=1, axis2=2)
    # n^2 * pe, exactly: the products of the two annotators' class totals.
    chance = np.einsum("pk,pk->p", matrices.sum(axis=2), matrices.sum(axis=1))
    square = shared * shared
    result = []
    for code, n, agree, expected, n_squared in zip(
        kept.tolist(),
        shared.tolist(),
        agreed.tolist(),
        chance.tolist(),
        square.tolist(),
        strict=True,
    ):
        a, b = divmod(code, n_annotators)
        kappa = None if expected == n_squared else (n * agree - expected) / (n_squared - expected)
        result.append(
            PairKappa(a=int(table.annotators[a]), b=int(table.annotators[b]), shared=n, kappa=kappa)
        )
    return result


def agreement_with(table: LabelTable, reference: np.ndarray) -> AnnotatorAgreement:
    """Return, per annotator, how many of their labels meet a reference label and how many equal it.

    `reference` holds one class index per task (`table.tasks` order), -1 where the task has
    none (no consensus yet, or not gold).
    """
    reference = _reference(table, reference)
    expected = reference[table.task_index]
    compared_rows = expected >= 0
    equal = compared_rows & (expected == table.label_index)
    compared = np.bincount(
        table.annotator_index, weights=compared_rows, minlength=table.n_annotators
    ).astype(np.int64)
    agreed = np.bincount(table.annotator_index, weights=equal, minlength=table.n_annotators)
    agreed = agreed.astype(np.int64)
    share = np.full(table.n_annotators, np.nan)
    np.divide(agreed, compared, out=share, where=compared > 0)
    return AnnotatorAgreement(
        annotators=table.annotators, compared=compared, agreed=agreed, share=share
    )


def confusion(table: LabelTable, reference: np.ndarray) -> np.ndarray:
    """Return the K x K counts of labels by reference class (rows) and given class (columns).

    Every label on a task with a reference counts once, whoever gave it: the diagonal is
    agreement, and a heavy off-diagonal cell names the pair of classes the project's annotators
    confuse (the schema's definitions of those two classes need work).
    """
    reference = _reference(table, reference)
    expected = reference[table.task_index]
    rows = expected >= 0
    k = table.n_classes
    cells = expected[rows] * k + table.label_index[rows]
    return np.bincount(cells, minlength=k * k).reshape(k, k)


def _label_pairs(table: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """Return the positions (first, second) of every unordered pair of labels on one task.

    The labels of a task are contiguous (the table is sorted by task), so the label at position
    p pairs with every later position of its task: `end - 1 - p` partners. Repeating p that
    many times and adding a running offset within each run yields every pair without a loop.
    """
    sizes = np.bincount(table.task_index, minlength=table.n_tasks)
    ends = np.cumsum(sizes)
    positions = np.arange(table.n_labels)
    partners = ends[table.task_index] - 1 - positions
    first = np.repeat(positions, partners)
    run_starts = np.cumsum(partners) - partners
    offsets = np.arange(len(first)) - np.repeat(run_starts, partners)
    return first, first + 1 + offsets


def _unique(values: np.ndarray) -> np.ndarray:
    """Return the sorted unique values: a plain sort, several times faster than np.unique's."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _task_annotator_order(
    task_ids: np.ndarray, annotator_index: np.ndarray, n_annotators: int
) -> np.ndarray | None:
    """Return the permutation sorting labels by task id, then annotator; None if already sorted.

    One combined integer key sorts several times faster than a two-key lexsort; it is used
    whenever the task ids span a range the key cannot overflow in (ids from one sequence do).
    """
    if not len(task_ids):
        return None
    low, high = int(task_ids.min()), int(task_ids.max())
    if (high - low + 1) * n_annotators >= 2**62:
        return np.lexsort((annotator_index, task_ids))
    key = (task_ids - low) * n_annotators + annotator_index
    if np.all(key[1:] >= key[:-1]):
        return None
    return np.argsort(key)


def _reference(table: LabelTable, reference: np.ndarray) -> np.ndarray:
    reference = np.asarray(reference)
    if reference.shape != (table.n_tasks,):
        raise ValueError(
            f"reference must have one entry per task ({table.n_tasks}), got shape {reference.shape}"
        )
    if not np.issubdtype(reference.dtype, np.integer):
        raise ValueError(f"reference must hold class indices, got dtype {reference.dtype}")
    if len(reference) and (reference.min() < -1 or reference.max() >= table.n_classes):
        raise ValueError(f"reference holds a class index outside -1..{table.n_classes - 1}")
    return reference.astype(np.int64, copy=False)


def _ids(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _class_index(labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Map class strings to their positions in `classes`; ValueError naming an unknown one."""
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    if not classes:
        raise ValueError(f"label {str(labels[0])!r} is not one of the classes ()")
    names = np.asarray(classes, dtype=np.str_)
    order = np.argsort(names)
    found = np.minimum(np.searchsorted(names[order], labels), len(names) - 1)
    unknown = np.flatnonzero(names[order][found] != labels)
    if len(unknown):
        raise ValueError(f"label {str(labels[unknown[0]])!r} is not one of the classes {classes}")
    return order[found].astype(np.int64)


def _numeric_classes(classes: tuple[str, ...]) -> np.ndarray:
    values = []
    for name in classes:
        try:
            values.append(float(name))
        except ValueError:
            raise ValueError(
                f"interval agreement reads classes as numbers; {name!r} is not a number"
            ) from None
    domain = np.array(values)
    if not np.all(np.isfinite(domain)):
        raise ValueError("interval agreement needs finite class values")
    return domain


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.int64)
    array.setflags(write=False)
    return array
