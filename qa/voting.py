"""Categorical consensus (DESIGN.md section 5): majority vote, weighted vote and Dawid-Skene.

All three take a `qa.agreement.LabelTable` and answer one class index per task (`table.tasks`
order; -1 for a task nobody labelled) with a confidence in [0, 1]. They are plain array math,
vectorised over labels, so that a project's whole consensus is recomputed in one pass.

Dawid-Skene (Dawid and Skene, 1979) models each annotator by a confusion matrix — the probability
of each label given each true class — and estimates matrices, class priors and every task's
posterior together by EM. Unlike a vote it learns that an annotator who answers at random says
nothing and that one who always writes "cat" for "lynx" still says something, which is why the
QA lead can inspect the matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from qa.agreement import LabelTable, value_counts

# Pseudo-count added to every cell of every annotator's confusion counts (Laplace smoothing).
# Without it, a cell never observed is a probability of 0, whose log is -inf, and one such label
# would veto a class outright; with it, a true class an annotator never met is a uniform row.
# 0.1 (not the textbook 1) because a row of a rare class may rest on a few dozen labels: adding 1
# to each of 5 cells would pull a 0.9 diagonal down by 0.05 there, 0.1 by 0.005.
SMOOTHING = 0.1


@dataclass(frozen=True, eq=False)
class Votes:
    """A consensus: `labels` (class index per task, -1 for no labels) and its `confidence`."""

    labels: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True, eq=False)
class DawidSkene:
    """The result of Dawid-Skene EM.

    `posteriors` (n_tasks x K) is each task's probability of each true class; a task with no
    labels gets the priors. `confusion` (n_annotators x K x K) is each annotator's probability of
    giving class l (column) when the truth is k (row); each row sums to 1. `priors` (K) are the
    class frequencies the model believes in. `labels` is the most probable class (-1 for no
    labels), `confidence` its posterior (0 for no labels). `converged` is False when `max_iter`
    rounds did not bring the posteriors' largest change below `tol`.
    """

    labels: np.ndarray
    confidence: np.ndarray
    posteriors: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    iterations: int
    converged: bool


def majority_vote(table: LabelTable) -> Votes:
    """Return each task's most frequent label and its share of the task's labels.

    A tie goes to the class earlier in `table.classes` (the lower index): deterministic, so a
    recomputation never flips a consensus, and the schema's order is the one place a project
    states which class comes first.
    """
    return _vote(value_counts(table).astype(np.float64))


def weighted_vote(table: LabelTable, weights: np.ndarray) -> Votes:
    """Return each task's label with the greatest total weight, and that weight's share.

    `weights` has one finite, non-negative entry per annotator in `table.annotators` order (for
    instance their gold accuracy). A task whose voters all weigh 0 (only untested or
    zero-accuracy annotators labelled it) falls back to equal weights rather than to no
    consensus: their labels are still the only evidence. Ties, exact in floating point, go to
    the lower class index as in `majority_vote`.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (table.n_annotators,):
        raise ValueError(
            f"weights must have one entry per annotator ({table.n_annotators}), "
            f"got shape {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and non-negative")
    k = table.n_classes
    tallies = np.bincount(
        table.task_index * k + table.label_index,
        weights=weights[table.annotator_index],
        minlength=table.n_tasks * k,
    ).reshape(table.n_tasks, k)
    weightless = tallies.sum(axis=1) == 0
    tallies[weightless] = value_counts(table)[weightless]
    return _vote(tallies)


def dawid_skene(table: LabelTable, tol: float = 1e-5, max_iter: int = 100) -> DawidSkene:
    """Estimate true classes, annotator confusion matrices and class priors by EM.

    Starts from the majority vote's shares (each task's posterior is the share of its labels in
    each class), then alternates: M-step, the priors are the mean posterior and each annotator's
    confusion counts are the posterior mass of each true class behind each label they gave
    (plus `SMOOTHING` per cell); E-step, each task's log posterior is log prior plus the log
    probabilities of its labels under each true class, normalised after subtracting its largest
    term (log-sum-exp) so that tasks with many labels do not underflow. Stops when no posterior moved by `tol` or more (the
    posteriors are what the consensus and its confidence are read from; the log-likelihood
    can stall while a few tasks still flip). The parameters returned are those that produced
    the returned posteriors.

    Both steps are one sparse product with the fixed label matrix (tasks x annotator-label
    pairs, one entry per label), so an iteration costs two passes over the labels.
    """
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    n_tasks, n_annotators, k = table.n_tasks, table.n_annotators, table.n_classes
    counts = value_counts(table).astype(np.float64)
    totals = counts.sum(axis=1)
    labelled = totals > 0
    # Row t, column (annotator, label): 1 where that annotator gave that label to task t.
    given = sparse.csr_matrix(
        (
            np.ones(table.n_labels),
            (table.task_index, table.annotator_index * k + table.label_index),
        ),
        shape=(n_tasks, n_annotators * k),
    )[labelled]
    given_by_label = given.T.tocsr()
    posteriors = counts[labelled] / totals[labelled, None]

    priors = np.full(k, 1 / k) if k else np.zeros(0)
    confusion = np.full((n_annotators, k, k), 1 / k) if k else np.zeros((n_annotators, 0, 0))
    iterations, converged = 0, not labelled.any()
    while not converged and iterations < max_iter:
        iterations += 1
        priors = posteriors.mean(axis=0)
        # (annotator, label) x true class -> annotator x true class x label.
        mass = (given_by_label @ posteriors).reshape(n_annotators, k, k).transpose(0, 2, 1)
        mass += SMOOTHING
        confusion = mass / mass.sum(axis=2, keepdims=True)
        # A class no task leans to at all has prior 0: log -inf keeps it impossible, as it is.
        with np.errstate(divide="ignore"):
            log_priors = np.log(priors)
        log_label = np.log(confusion).transpose(0, 2, 1).reshape(n_annotators * k, k)
        log_joint = given @ log_label + log_priors
        # Normalised in log space: subtract each task's largest term before exponentiating.
        updated = np.exp(log_joint - log_joint.max(axis=1, keepdims=True))
        updated /= updated.sum(axis=1, keepdims=True)
        converged = bool(np.max(np.abs(updated - posteriors)) < tol)
        posteriors = updated

    full = np.tile(priors, (n_tasks, 1))
    full[labelled] = posteriors
    labels = np.full(n_tasks, -1, dtype=np.int64)
    confidence = np.zeros(n_tasks)
    if k:
        labels[labelled] = np.argmax(posteriors, axis=1)
        confidence[labelled] = posteriors.max(axis=1)
    return DawidSkene(
        labels=labels,
        confidence=confidence,
        posteriors=full,
        confusion=confusion,
        priors=priors,
        iterations=iterations,
        converged=converged,
    )


def _vote(tallies: np.ndarray) -> Votes:
    """Return the heaviest class per row (first on a tie) and its share; -1 and 0 for empty rows."""
    totals = tallies.sum(axis=1)
    voted = totals > 0
    labels = np.full(len(tallies), -1, dtype=np.int64)
    confidence = np.zeros(len(tallies))
    if tallies.shape[1]:
        # argmax returns the first maximum: the lower class index wins a tie.
        labels[voted] = np.argmax(tallies[voted], axis=1)
        confidence[voted] = tallies[voted].max(axis=1) / totals[voted]
    return Votes(labels=labels, confidence=confidence)
