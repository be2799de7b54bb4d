"""One-to-one matching of annotated items and the scores built on it.

bbox, polygon, keypoints and video_events all pair the items of two payloads with the Hungarian
algorithm on a similarity matrix (IoU, OKS or temporal IoU) and then count or average the pairs;
ner, relations and entity_linking count exact matches of hashable keys. Both live here so that a
fix to either reaches every kind at once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

# Added to every admissible pair before the assignment, so that among matchings of equal total
# similarity the one with more pairs wins (and the result does not depend on item order). It is far
# below any difference in IoU or OKS that could matter.
_TIE_BREAK = 1e-9


@dataclass(frozen=True, slots=True)
class Matching:
    """Pairs (rows[k], cols[k]) of items of a and b with their similarity values[k]."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def pairs(self) -> list[list[Any]]:
        """Return the pairs as JSON-friendly [index_a, index_b, similarity] triples."""
        return [
            [int(i), int(j), round(float(v), 6)]
            for i, j, v in zip(self.rows, self.cols, self.values, strict=True)
        ]


def label_codes(labels_a: Sequence[str], labels_b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode two label sequences with shared integer codes, for vectorised comparisons."""
    codes: dict[str, int] = {}
    a = np.fromiter((codes.setdefault(x, len(codes)) for x in labels_a), np.int64, len(labels_a))
    b = np.fromiter((codes.setdefault(x, len(codes)) for x in labels_b), np.int64, len(labels_b))
    return a, b


def same_label(labels_a: Sequence[str], labels_b: Sequence[str]) -> np.ndarray:
    """Return the boolean matrix of pairs that carry the same label."""
    a, b = label_codes(labels_a, labels_b)
    return a[:, None] == b[None, :]


def match(similarity: np.ndarray, admissible: np.ndarray) -> Matching:
    """Pair items one-to-one to maximise the total similarity over admissible pairs.

    Inadmissible pairs (another label, or similarity under the kind's threshold) are never
    returned, and they cannot block an admissible pair because they weigh nothing.
    """
    if similarity.size == 0 or not admissible.any():
        empty = np.empty(0, dtype=np.int64)
        return Matching(empty, empty, np.empty(0))
    gain = np.where(admissible, similarity + _TIE_BREAK, 0.0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    keep = admissible[rows, cols]
    rows, cols = rows[keep], cols[keep]
    return Matching(rows, cols, similarity[rows, cols])


def ratio(numerator: float, denominator: float, *, both_empty: bool) -> float:
    """Divide, treating 0/0 as perfect when both payloads are empty and as 0 otherwise."""
    if denominator:
        return numerator / denominator
    return 1.0 if both_empty else 0.0


def detection_scores(matched: int, n_a: int, n_b: int) -> dict[str, float]:
    """Return precision (matched / len(a)), recall (matched / len(b)) and their F1.

    Two empty payloads agree perfectly: all three are 1.
    """
    both_empty = n_a == 0 and n_b == 0
    return {
        "precision": ratio(matched, n_a, both_empty=both_empty),
        "recall": ratio(matched, n_b, both_empty=both_empty),
        "f1": ratio(2 * matched, n_a + n_b, both_empty=both_empty),
    }


def set_f1(a: Collection, b: Collection) -> dict[str, float]:
    """Score two sets of hashable keys (spans, triples) by exact match."""
    a_set = a if isinstance(a, set | frozenset) else set(a)
    b_set = b if isinstance(b, set | frozenset) else set(b)
    return detection_scores(len(a_set & b_set), len(a_set), len(b_set))


def detection_comparison(
    similarity: np.ndarray, admissible: np.ndarray, *, measure: str = "iou"
) -> dict[str, Any]:
    """Match items one-to-one and score the matches as a detection F1 with details.

    Shared by bbox, polygon and video_events: `similarity` is the IoU (or temporal IoU) matrix
    and `admissible` marks the same-label pairs at or above the kind's threshold.
    """
    n_a, n_b = similarity.shape
    matching = match(similarity, admissible)
    details: dict[str, Any] = detection_scores(len(matching), n_a, n_b)
    details[f"mean_{measure}"] = float(matching.values.mean()) if len(matching) else None
    details["matched"] = len(matching)
    details["pairs"] = matching.pairs()
    return details
