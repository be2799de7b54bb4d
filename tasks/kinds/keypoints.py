"""keypoints: labelled instances with one [x, y, v] per schema keypoint (COCO's layout).

{"instances": [{"label", "keypoints": [[x, y, v], ...], "bbox": [x, y, w, h] (optional)}]}
with v = 0 (not labelled), 1 (labelled, occluded) or 2 (labelled, visible), as in COCO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tasks.kinds.base import (
    DEFAULT_QUORUM,
    JSONL,
    Comparison,
    Kind,
    Merged,
    Payload,
    Schema,
    TaskData,
    ValidationIssue,
)
from tasks.kinds.consensus import (
    annotator_weights,
    quorum_clusters,
    support_confidence,
    weighted_mean,
    weighted_vote,
)
from tasks.kinds.formats.coco import COCO_KEYPOINTS
from tasks.kinds.matching import match, same_label
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import LABEL, POSITIVE, array, names, numbers, obj
from tasks.kinds.validation import (
    BOUNDS_TOLERANCE,
    MAX_ITEMS,
    MAX_LABELS,
    MAX_TOTAL_KEYPOINTS,
    check_array,
    check_box_bounds,
    check_integer,
    check_label,
    check_number,
    check_object,
    check_positive_number,
    check_unique_names,
    check_within,
    describe,
    field_path,
    image_data_issues,
    index_path,
    is_array,
    is_number,
    payload_arrays,
)

# Two annotators' instances share a merge cluster when their OKS (taken the lower way round,
# since OKS depends on which one gives the scale) is at least this: about the COCO AP50 level.
OKS_CLUSTER_THRESHOLD = 0.5
VISIBILITIES = (0, 1, 2)
# pycocotools adds this to the area so that a zero-area reference does not divide by zero.
_EPS = np.spacing(1)


class Keypoints(Kind):
    key = "keypoints"
    title = "Keypoints"
    label_schema_shape = schema_shape(
        extra_required={
            "keypoints": names(min_items=1, noun="keypoint names, in payload order"),
            "sigmas": array(
                POSITIVE, max_items=MAX_LABELS, description="One per keypoint: its OKS falloff."
            ),
        },
        extra_optional={
            "skeleton": array(
                numbers(2, {"type": "integer", "minimum": 0}, "Two keypoint indexes."),
                max_items=MAX_LABELS * MAX_LABELS,
            )
        },
    )
    payload_shape = obj(
        {
            "instances": array(
                obj(
                    {
                        "label": LABEL,
                        "keypoints": array(
                            numbers(
                                3,
                                description="[x, y, v]: pixels inside the image, and v is 0 "
                                "(not labelled), 1 (labelled, hidden) or 2 (visible).",
                            ),
                            max_items=MAX_LABELS,
                            description="One per keypoint of the schema, in its order.",
                        ),
                        "bbox": numbers(4, description="[x, y, w, h] inside the image."),
                    },
                    required=("label", "keypoints"),
                ),
                max_items=MAX_ITEMS,
            )
        },
        required=("instances",),
    )
    label_paths = {"labels": "$.instances[*].label"}
    export_formats = (COCO_KEYPOINTS, JSONL)

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(
            schema,
            extra_required={"keypoints": _check_names, "sigmas": _check_sigmas},
            extra_optional={"skeleton": _check_skeleton},
        )

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return image_data_issues(data)

    def frozen_schema_fields(self, before: Schema, after: Schema) -> list[str]:
        """An instance has one [x, y, v] per schema keypoint: their number is fixed by the work.

        Renaming keypoints or changing sigmas and the skeleton keeps every payload valid.
        """
        changed = len(before.get("keypoints", ())) != len(after.get("keypoints", ()))
        return ["keypoints"] if changed else []

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        width, height = data["width"], data["height"]
        known = label_order(schema)
        expected = len(schema["keypoints"])
        instances = payload_arrays(payload, {"instances": MAX_ITEMS}, issues).get("instances", ())
        if len(instances) * expected > MAX_TOTAL_KEYPOINTS:
            issues.append(
                ValidationIssue(
                    "instances",
                    f"has {len(instances)} instances of {expected} keypoints; the limit is "
                    f"{MAX_TOTAL_KEYPOINTS} keypoints in all",
                )
            )
            return issues
        for index, instance in enumerate(instances):
            path = index_path("instances", index)
            if not check_object(
                instance, path, issues, required=("label", "keypoints"), optional=("bbox",)
            ):
                continue
            if "label" in instance:
                check_label(instance["label"], field_path(path, "label"), known, issues)
            if "keypoints" in instance:
                _check_keypoints(
                    instance["keypoints"], field_path(path, "keypoints"), expected,
                    width, height, issues,
                )  # fmt: skip
            if "bbox" in instance:
                _check_bbox(instance["bbox"], field_path(path, "bbox"), width, height, issues)
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the mean COCO OKS of one-to-one matched instances, unmatched counting 0.

        b is the reference: its area sets the OKS scale, exactly as COCO uses the ground truth's,
        so compare(a, b) and compare(b, a) differ when the two instances' areas differ. The
        instances are paired (same label) to maximise the total OKS; the score is that total
        divided by the larger instance count.
        """
        instances_a, instances_b = a["instances"], b["instances"]
        if not instances_a and not instances_b:
            return Comparison(1.0, {"mean_oks": None, "matched": 0, "pairs": []})
        oks = oks_matrix(instances_a, instances_b, schema["sigmas"])
        admissible = same_label(
            [x["label"] for x in instances_a], [x["label"] for x in instances_b]
        )
        matching = match(oks, admissible)
        total = float(matching.values.sum())
        score = total / max(len(instances_a), len(instances_b))
        details = {
            "mean_oks": total / len(matching) if len(matching) else None,
            "matched": len(matching),
            "pairs": matching.pairs(),
        }
        return Comparison(min(1.0, score), details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep the instance clusters a quorum agrees on and average them keypoint by keypoint.

        Each keypoint's visibility is the weighted vote of the cluster's members (ties go to the
        more visible); its position is the weighted mean of the members that labelled it. The
        bbox is averaged over the members that drew one, and kept when they carry more than half
        of the cluster's weight. An instance whose vote leaves no keypoint labelled is dropped.
        """
        w = annotator_weights(weights, len(payloads))
        instances = [p["instances"] for p in payloads]
        labels = [[x["label"] for x in i] for i in instances]
        sigmas = schema["sigmas"]

        def similarity(p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
            oks = np.minimum(
                oks_matrix(instances[p], instances[q], sigmas),
                oks_matrix(instances[q], instances[p], sigmas).T,
            )
            return oks, same_label(labels[p], labels[q]) & (oks >= OKS_CLUSTER_THRESHOLD)

        clusters, _ = quorum_clusters(instances, similarity, w, quorum)
        merged = []
        for cluster in clusters:
            members = [instances[p][i] for p, i in cluster.nodes]
            instance = _average_instance(members, w[cluster.annotators])
            if instance is not None:
                merged.append(instance)
        consensus = self.canonical({"instances": merged})
        confidence = support_confidence(self, payloads, w, consensus, schema)
        return Merged(consensus, confidence, {"clusters": len(clusters)})

    def canonical(self, payload: Payload) -> Payload:
        instances = sorted(
            payload["instances"],
            key=lambda x: (x["label"], x["keypoints"], "bbox" in x, x.get("bbox", [])),
        )
        result = []
        for instance in instances:
            item: dict[str, Any] = {
                "label": instance["label"],
                "keypoints": [list(point) for point in instance["keypoints"]],
            }
            if "bbox" in instance:
                item["bbox"] = list(instance["bbox"])
            result.append(item)
        return {"instances": result}


def reference_areas(instances: Sequence[dict], points: np.ndarray) -> np.ndarray:
    """Return each instance's OKS scale: its bbox area, else that of the box around its
    labelled keypoints. `points` is the (n, k, 3) array of the instances' keypoints."""
    areas = np.empty(len(instances))
    for index, instance in enumerate(instances):
        if "bbox" in instance:
            areas[index] = instance["bbox"][2] * instance["bbox"][3]
        else:
            labelled = points[index][points[index][:, 2] > 0]
            span = labelled[:, :2].max(axis=0) - labelled[:, :2].min(axis=0)
            areas[index] = span[0] * span[1]
    return areas


def oks_matrix(
    instances_a: Sequence[dict], instances_b: Sequence[dict], sigmas: Sequence[float]
) -> np.ndarray:
    """Return the COCO object keypoint similarity of every instance of a to every one of b.

    As pycocotools' COCOeval.computeOks: with d the distance of a keypoint to the reference's,
    s² the reference's area and k = 2 sigma, OKS = mean over the reference's labelled keypoints of
    exp(-d² / (2 s² k²)). Keypoints of a are used whatever their visibility, as COCO uses
    detections'. Validation guarantees every reference has a labelled keypoint.
    """
    if not instances_a or not instances_b:
        return np.zeros((len(instances_a), len(instances_b)))
    a = np.array([x["keypoints"] for x in instances_a], dtype=float)
    b = np.array([x["keypoints"] for x in instances_b], dtype=float)
    variances = (np.asarray(sigmas, dtype=float) * 2) ** 2
    area = reference_areas(instances_b, b)
    dx = a[:, None, :, 0] - b[None, :, :, 0]
    dy = a[:, None, :, 1] - b[None, :, :, 1]
    # Same operation order as pycocotools, so results agree to the last bits.
    e = (dx**2 + dy**2) / variances / (area[None, :, None] + _EPS) / 2
    labelled = b[:, :, 2] > 0
    return (np.exp(-e) * labelled[None]).sum(axis=2) / labelled.sum(axis=1)[None, :]


def _average_instance(members: list[dict], weights: np.ndarray) -> dict | None:
    points = np.array([m["keypoints"] for m in members], dtype=float)
    keypoints = []
    for k in range(points.shape[1]):
        votes = ((int(v), float(wi)) for v, wi in zip(points[:, k, 2], weights, strict=True))
        visibility, _, _ = weighted_vote(votes, order=lambda v: -v)
        voters = points[:, k, 2] > 0 if visibility > 0 else np.ones(len(members), dtype=bool)
        x, y = weighted_mean(points[voters, k, :2], weights[voters]).tolist()
        keypoints.append([x, y, visibility])
    if not any(v > 0 for _, _, v in keypoints):
        return None
    instance: dict[str, Any] = {"label": members[0]["label"], "keypoints": keypoints}
    boxed = np.array(["bbox" in m for m in members])
    if weights[boxed].sum() > weights.sum() / 2:
        boxes = np.array([m["bbox"] for m, has in zip(members, boxed, strict=True) if has])
        instance["bbox"] = weighted_mean(boxes, weights[boxed]).tolist()
    return instance


def _check_keypoints(
    value: Any, path: str, expected: int, width: int, height: int, issues: list[ValidationIssue]
) -> None:
    if not check_array(value, path, issues, limit=expected, noun="keypoints"):
        if is_array(value):  # too long: say what the schema wants rather than the hard limit
            issues[-1] = ValidationIssue(
                path, f"has {len(value)} keypoints; the schema defines {expected}"
            )
        return
    if len(value) != expected:
        issues.append(
            ValidationIssue(path, f"has {len(value)} keypoints; the schema defines {expected}")
        )
        return
    labelled = 0
    for index, point in enumerate(value):
        point_path = index_path(path, index)
        if not is_array(point) or len(point) != 3:
            issues.append(ValidationIssue(point_path, f"expected [x, y, v], got {describe(point)}"))
            continue
        x, y, v = point
        well_typed = is_number(x) and is_number(y) and type(v) is int and v in VISIBILITIES
        if well_typed and _inside(x, width) and _inside(y, height):
            labelled += v > 0
            continue
        for axis, limit, dimension in ((0, width, "width"), (1, height, "height")):
            axis_path = index_path(point_path, axis)
            if check_number(point[axis], axis_path, issues):
                check_within(point[axis], axis_path, limit, dimension, issues)
        v_path = index_path(point_path, 2)
        if check_integer(v, v_path, issues):
            if v not in VISIBILITIES:
                issues.append(ValidationIssue(v_path, f"visibility {v} is not 0, 1 or 2"))
            else:
                labelled += v > 0
    if labelled == 0:
        issues.append(ValidationIssue(path, "at least one keypoint must be labelled (v = 1 or 2)"))


def _inside(value: float, limit: int) -> bool:
    return -BOUNDS_TOLERANCE <= value <= limit + BOUNDS_TOLERANCE


def _check_bbox(value: Any, path: str, width: int, height: int, issues: list) -> None:
    if not is_array(value) or len(value) != 4:
        issues.append(ValidationIssue(path, f"expected [x, y, w, h], got {describe(value)}"))
        return
    paths = [index_path(path, index) for index in range(4)]
    numbers = [check_number(v, p, issues) for v, p in zip(value, paths, strict=True)]
    if all(numbers):
        check_box_bounds(value, paths, width, height, issues)


# --- schema fields -----------------------------------------------------------------------------


def _check_names(schema: Schema, value: Any, path: str, issues: list) -> None:
    check_unique_names(value, path, issues, noun="keypoints", min_items=1)


def _check_sigmas(schema: Schema, value: Any, path: str, issues: list) -> None:
    names = schema.get("keypoints")
    if not check_array(value, path, issues, limit=len(names) if is_array(names) else 0):
        if is_array(value) and is_array(names):
            issues[-1] = ValidationIssue(
                path, f"has {len(value)} values; the schema defines {len(names)} keypoints"
            )
        return
    if is_array(names) and len(value) != len(names):
        issues.append(
            ValidationIssue(
                path, f"has {len(value)} values; the schema defines {len(names)} keypoints"
            )
        )
    for index, sigma in enumerate(value):
        check_positive_number(sigma, index_path(path, index), issues)


def _check_skeleton(schema: Schema, value: Any, path: str, issues: list) -> None:
    names = schema.get("keypoints")
    count = len(names) if is_array(names) else 0
    if not check_array(value, path, issues, limit=count * count, noun="edges"):
        return
    for index, edge in enumerate(value):
        edge_path = index_path(path, index)
        if not is_array(edge) or len(edge) != 2:
            issues.append(ValidationIssue(edge_path, f"expected [i, j], got {describe(edge)}"))
            continue
        ends_ok = True
        for end, node in enumerate(edge):
            node_path = index_path(edge_path, end)
            if not check_integer(node, node_path, issues):
                ends_ok = False
            elif not 0 <= node < count:
                issues.append(
                    ValidationIssue(
                        node_path, f"keypoint index {node} is out of range ({count} keypoints)"
                    )
                )
                ends_ok = False
        if ends_ok and edge[0] == edge[1]:
            issues.append(ValidationIssue(edge_path, "an edge must join two different keypoints"))
