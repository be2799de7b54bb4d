"""Building blocks for merging several annotators' payloads into one (DESIGN.md section 5).

Geometric and temporal kinds cluster the annotators' items: two items may share a cluster only
when they carry the same label, come from different annotators and are similar enough (IoU, OKS or
temporal IoU at or above the kind's threshold) to every other member of the cluster (complete
linkage). Clusters whose annotators weigh more than the quorum share of the total are kept.
Span kinds vote on exact keys instead. Both policies, and the confidence of the result, are here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.kinds.base import Kind, Payload, Schema

# Item identity inside a merge: (annotator index, item index in that annotator's payload).
Node = tuple[int, int]


def annotator_weights(weights: Sequence[float] | None, count: int) -> np.ndarray:
    """Return validated weights (default: one each); raise ValueError on nonsense."""
    if count == 0:
        raise ValueError("merge needs at least one payload")
    if weights is None:
        return np.ones(count)
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} payloads")
    array = np.asarray(weights, dtype=float)
    if not np.all(np.isfinite(array)) or np.any(array < 0) or array.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return array


def check_quorum(quorum: float) -> None:
    if not 0 <= quorum < 1:
        raise ValueError(f"quorum must be in [0, 1), got {quorum}")


def has_quorum(support: float, total: float, quorum: float) -> bool:
    """Tell whether supporters weighing `support` out of `total` are more than the quorum share.

    "More than" matters: with the default quorum of one half, two of four equal annotators do
    not carry an item, two of three do.
    """
    return support > quorum * total


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average rows of `values` around the first row, so that equal rows average to themselves.

    A plain sum(w * x) / sum(w) can move identical coordinates by a rounding error; measuring the
    offsets from the first row keeps "merging identical payloads returns that payload" exact.
    """
    anchor = values[0]
    return anchor + (weights @ (values - anchor)) / weights.sum()


def weighted_vote(
    choices: Iterable[tuple[Hashable, float]], order: Callable[[Hashable], object]
) -> tuple[Hashable, float, dict[Hashable, float]]:
    """Return the heaviest choice, its weight and all tallies; ties go to the first in `order`."""
    tally: dict[Hashable, float] = {}
    for choice, weight in choices:
        tally[choice] = tally.get(choice, 0.0) + weight
    best = min(tally, key=lambda choice: (-tally[choice], order(choice)))
    return best, tally[best], tally


def quorum_keys(
    keyed_payloads: Sequence[Iterable[Hashable]],
    weights: np.ndarray,
    quorum: float,
) -> dict[Hashable, list[int]]:
    """Return each key chosen by a quorum of annotators, with the annotators who chose it."""
    voters: dict[Hashable, list[int]] = {}
    for annotator, keys in enumerate(keyed_payloads):
        for key in set(keys):
            voters.setdefault(key, []).append(annotator)
    total = float(weights.sum())
    return {
        key: sorted(who)
        for key, who in voters.items()
        if has_quorum(float(weights[who].sum()), total, quorum)
    }


@dataclass(frozen=True, slots=True)
class Cluster:
    """Items from distinct annotators judged to be the same object."""

    nodes: tuple[Node, ...]
    support: float  # total weight of the annotators in the cluster

    @property
    def annotators(self) -> list[int]:
        return [annotator for annotator, _ in self.nodes]


def cluster_items(
    items: Sequence[Sequence[Any]],
    similarity: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    weights: np.ndarray,
) -> tuple[list[Cluster], dict[tuple[Node, Node], float]]:
    """Cluster items of several annotators by greedy complete-linkage agglomeration.

    `items[p]` are annotator p's items; `similarity(p, q)` returns the similarity matrix of
    annotators p and q and a boolean matrix of the pairs that may share a cluster (same label,
    above the kind's threshold). Pairs are merged from the most similar down, equal items first
    among equally similar pairs (the similarity may ignore an attribute, e.g. a keypoint
    instance's optional bbox); two clusters join only when their annotators are disjoint (one
    item per annotator per cluster) and every cross pair may share a cluster.

    Return every cluster (singletons included) and the admissible pair similarities.
    """
    sizes = [len(x) for x in items]
    edges: list[tuple[float, bool, Node, Node]] = []
    linked: dict[tuple[Node, Node], float] = {}
    for p in range(len(sizes)):
        for q in range(p + 1, len(sizes)):
            if not sizes[p] or not sizes[q]:
                continue
            values, admissible = similarity(p, q)
            for i, j in zip(*np.nonzero(admissible), strict=True):
                value = float(values[i, j])
                u, v = (p, int(i)), (q, int(j))
                edges.append((value, items[p][i] != items[q][j], u, v))
                linked[(u, v)] = linked[(v, u)] = value
    edges.sort(key=lambda edge: (-edge[0], edge[1], edge[2], edge[3]))

    members: dict[Node, list[Node]] = {
        (p, i): [(p, i)] for p, size in enumerate(sizes) for i in range(size)
    }
    for _, _, u, v in edges:
        cu, cv = members[u], members[v]
        if cu is cv:
            continue
        if {p for p, _ in cu} & {p for p, _ in cv}:
            continue
        if any((x, y) not in linked for x in cu for y in cv):
            continue
        cu.extend(cv)
        for node in cv:
            members[node] = cu

    clusters = []
    seen: set[int] = set()
    for group in members.values():
        if id(group) in seen:
            continue
        seen.add(id(group))
        nodes = tuple(sorted(group))
        support = float(sum(weights[p] for p, _ in nodes))
        clusters.append(Cluster(nodes, support))
    return clusters, linked


def medoid(cluster: Cluster, linked: dict[tuple[Node, Node], float], weights: np.ndarray) -> Node:
    """Return the member most similar to the others (weighted), ties to the heaviest, then first.

    Used where coordinates cannot be averaged, e.g. polygons with different point counts.
    """
    if len(cluster.nodes) == 1:
        return cluster.nodes[0]

    def rank(node: Node) -> tuple[float, float, Node]:
        agreement = sum(
            weights[other[0]] * linked[(node, other)] for other in cluster.nodes if other != node
        )
        return (-agreement, -float(weights[node[0]]), node)

    return min(cluster.nodes, key=rank)


def support_confidence(
    kind: Kind,
    payloads: Sequence[Payload],
    weights: np.ndarray,
    consensus: Payload,
    schema: Schema,
) -> float:
    """Return the weighted mean agreement of each annotator with the consensus, in [0, 1]."""
    scores = np.array([kind.compare(payload, consensus, schema).score for payload in payloads])
    value = float(weights @ scores / weights.sum())
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def quorum_clusters(
    items: Sequence[Sequence[Any]],
    similarity: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    weights: np.ndarray,
    quorum: float,
) -> tuple[list[Cluster], dict[tuple[Node, Node], float]]:
    """Cluster the annotators' items and keep the clusters a quorum of the weight supports."""
    check_quorum(quorum)
    clusters, linked = cluster_items(items, similarity, weights)
    total = float(weights.sum())
    kept = [c for c in clusters if has_quorum(c.support, total, quorum)]
    return kept, linked


def unique_id(candidate: Hashable, used: set[Hashable]) -> Hashable:
    """Return `candidate`, or a suffixed variant when another merged item already took it.

    Merged spans and tracks keep an annotator's own id, so merging identical payloads changes
    nothing; ids from different annotators can clash, hence the suffix.
    """
    result, suffix = candidate, 1
    while result in used:
        suffix += 1
        result = f"{candidate}-{suffix}"
    used.add(result)
    return result
