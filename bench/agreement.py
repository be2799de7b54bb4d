"""Benchmark agreement and consensus on a million categorical labels.

Run with `.venv/bin/python bench/agreement.py [--runs N]`; it needs no database. Simulates
100,000 tasks of 5 classes (skewed priors) each labelled by the same 10 annotators of varying
quality (eight right 85 % down to 50 % of the time, a spammer answering at random, one who
systematically writes "c" for "b"): 1,000,000 labels. Dawid-Skene's time is its iterations
(12-25 ms each on a 2-core machine, depending on its load): this crowd needs about a dozen; a
much worse one (the best annotator right 70 % of the time) needs about 80, 1.0-1.3 s.

Then times, best and median of `--runs` runs (default 3):

- `label_table` from Python lists in random order (as a query without ORDER BY returns them)
  and from arrays already sorted by task and annotator;
- Krippendorff's alpha (nominal), target at most 0.5 s;
- Fleiss' kappa (10 raters), target at most 0.5 s;
- Dawid-Skene to convergence (tol 1e-5, at most 100 iterations), target at most 1 s;
- majority vote, and Cohen's kappa for all 45 pairs (no target);

and the reference implementations on the same data where feasible (`krippendorff` from a rater
matrix, statsmodels' `fleiss_kappa` from counts and from a rater matrix, scikit-learn's
`cohen_kappa_score` per pair), with the ratio of their time to ours and the largest difference
between the answers. Prints PASS/FAIL per target. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from itertools import combinations

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from qa.agreement import cohen_kappas, fleiss_kappa, krippendorff_alpha, label_table, value_counts
from qa.voting import dawid_skene, majority_vote

TASKS, ANNOTATORS = 100_000, 10
CLASSES = ("a", "b", "c", "d", "e")
PRIORS = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
TARGETS = {"alpha": 0.5, "fleiss": 0.5, "dawid_skene": 1.0}


def crowd(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return the true class per task and every annotator's confusion matrix."""
    k = len(CLASSES)
    truth = rng.choice(k, size=TASKS, p=PRIORS)
    matrices = []
    for accuracy in (0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5):
        matrix = np.full((k, k), (1 - accuracy) / (k - 1))
        np.fill_diagonal(matrix, accuracy)
        matrices.append(matrix)
    matrices.append(np.full((k, k), 1 / k))  # the spammer
    biased = np.eye(k) * 0.9 + (1 - np.eye(k)) * 0.025
    biased[1] = [0.0, 0.3, 0.7, 0.0, 0.0]  # writes "c" for most "b"
    matrices.append(biased)
    return truth, np.stack(matrices)


def simulate(rng: np.random.Generator, truth: np.ndarray, matrices: np.ndarray):
    """Every annotator labels every task from their matrix; return ids and labels, shuffled."""
    task_ids = np.repeat(np.arange(TASKS, dtype=np.int64) + 1, ANNOTATORS)
    annotator_ids = np.tile(np.arange(ANNOTATORS, dtype=np.int64) + 101, TASKS)
    rows = matrices[annotator_ids - 101, np.repeat(truth, ANNOTATORS)]
    draws = rng.random(len(rows))[:, None]
    labels = np.minimum((draws > np.cumsum(rows, axis=1)).sum(axis=1), len(CLASSES) - 1)
    order = rng.permutation(len(labels))
    labels = labels[order]
    return task_ids[order], annotator_ids[order], np.asarray(CLASSES)[labels], labels


def timed(call: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Return the best and the median time of `runs` calls, and the last call's answer."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        samples.append(time.perf_counter() - started)
    return min(samples), statistics.median(samples), answer


def line(label: str, best: float, p50: float, target: float | None = None) -> bool:
    verdict, ok = "", True
    if target is not None:
        ok = best <= target
        verdict = f"[{'PASS' if ok else 'FAIL'}] target <= {target:.1f} s"
    print(f"  {label:52} best {best * 1000:8.1f} ms  p50 {p50 * 1000:8.1f} ms  {verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    args = parser.parse_args()
    runs = args.runs

    rng = np.random.default_rng(20240601)
    truth, matrices = crowd(rng)
    task_ids, annotator_ids, labels, label_codes = simulate(rng, truth, matrices)
    print(f"{len(labels):,} labels: {TASKS:,} tasks x {ANNOTATORS} annotators, "
          f"{len(CLASSES)} classes; {runs} runs each\n")  # fmt: skip

    lists = (task_ids.tolist(), annotator_ids.tolist(), labels.tolist())
    best, p50, table = timed(lambda: label_table(*lists, CLASSES), runs)
    line("label_table, Python lists in random order", best, p50)
    order = np.lexsort((annotator_ids, task_ids))
    arrays = (task_ids[order], annotator_ids[order], labels[order])
    best, p50, _ = timed(lambda: label_table(*arrays, CLASSES), runs)
    line("label_table, arrays sorted by task and annotator", best, p50)

    passed = []
    best, p50, alpha = timed(lambda: krippendorff_alpha(table, "nominal"), runs)
    passed.append(line("Krippendorff's alpha, nominal", best, p50, TARGETS["alpha"]))
    alpha_time = best
    best, p50, fleiss = timed(lambda: fleiss_kappa(table, ANNOTATORS), runs)
    passed.append(line(f"Fleiss' kappa, {ANNOTATORS} raters", best, p50, TARGETS["fleiss"]))
    fleiss_time = best
    best, p50, model = timed(lambda: dawid_skene(table, tol=1e-5, max_iter=100), runs)
    passed.append(line("Dawid-Skene to convergence", best, p50, TARGETS["dawid_skene"]))
    print(f"  {'':52} {model.iterations} iterations, converged: {model.converged}")
    best, p50, votes = timed(lambda: majority_vote(table), runs)
    line("majority vote", best, p50)
    best, p50, pairs = timed(lambda: cohen_kappas(table, min_shared=1), runs)
    line(f"Cohen's kappa, all {len(pairs)} pairs", best, p50)
    cohen_time = best

    # The table's tasks are 1..TASKS in order, so truth lines up with its rows.
    print(f"\n  accuracy against the simulated truth: majority vote "
          f"{np.mean(votes.labels == truth):.4f}, Dawid-Skene {np.mean(model.labels == truth):.4f}")  # fmt: skip
    errors = np.abs(model.confusion - matrices).mean(axis=(1, 2))
    print(f"  Dawid-Skene confusion matrices, mean |error| per cell: "
          f"{', '.join(f'{e:.4f}' for e in errors)}")  # fmt: skip

    print("\nreference implementations on the same data (their time / ours):")
    raters = np.full((ANNOTATORS, TASKS), np.nan)
    raters[annotator_ids - 101, task_ids - 1] = label_codes
    best, p50, reference = timed(
        lambda: krippendorff.alpha(reliability_data=raters, level_of_measurement="nominal"), runs
    )
    line("krippendorff.alpha(reliability_data=...)", best, p50)
    print(f"  {'':52} {best / alpha_time:.1f}x ours, |diff| {abs(reference - alpha):.1e}")
    counts = value_counts(table)
    best, p50, reference = timed(lambda: statsmodels_fleiss(counts), runs)
    line("statsmodels fleiss_kappa(counts)", best, p50)
    print(f"  {'':52} {best / fleiss_time:.1f}x ours, |diff| {abs(reference - fleiss):.1e}")
    subjects = raters.T.astype(np.int64)
    best, p50, reference = timed(lambda: statsmodels_fleiss(aggregate_raters(subjects)[0]), runs)
    line("statsmodels fleiss_kappa(aggregate_raters(...))", best, p50)
    print(f"  {'':52} {best / fleiss_time:.1f}x ours, |diff| {abs(reference - fleiss):.1e}")
    by_pair = {(pair.a, pair.b): pair.kappa for pair in pairs}

    def sklearn_pairs() -> float:
        worst = 0.0
        for a, b in combinations(range(ANNOTATORS), 2):
            kappa = cohen_kappa_score(raters[a], raters[b])
            worst = max(worst, abs(kappa - by_pair[(a + 101, b + 101)]))
        return worst

    best, p50, worst = timed(sklearn_pairs, runs)
    line("sklearn cohen_kappa_score, 45 pairs", best, p50)
    print(f"  {'':52} {best / cohen_time:.1f}x ours, max |diff| {worst:.1e}")

    print("\nall targets met" if all(passed) else "\nSOME TARGETS MISSED")
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
