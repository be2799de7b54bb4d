"""polygon: labelled simple polygons in image pixels, {"polygons": [{"label", "points"}]}."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

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
from tasks.kinds.consensus import annotator_weights, medoid, quorum_clusters, support_confidence
from tasks.kinds.formats.coco import COCO_POLYGON
from tasks.kinds.geometry import make_polygons, polygon_iou_matrix
from tasks.kinds.matching import detection_comparison, same_label
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import COORDINATE, LABEL, array, numbers, obj
from tasks.kinds.validation import (
    BOUNDS_TOLERANCE,
    MAX_ITEMS,
    MAX_POLYGON_POINTS,
    MAX_TOTAL_POLYGON_POINTS,
    check_array,
    check_label,
    check_number,
    check_object,
    check_within,
    describe,
    field_path,
    image_data_issues,
    index_path,
    is_array,
    is_number,
    payload_arrays,
)

# Same criterion as bbox: a polygon matches another of the same label at IoU >= 0.5.
IOU_THRESHOLD = 0.5
MIN_POINTS = 3
_FIELDS = ("label", "points")


def polygon_shapes(polygons: Sequence[dict]) -> np.ndarray:
    """Return the payload's polygons as an array of shapely polygons."""
    return make_polygons([p["points"] for p in polygons])


class Polygons(Kind):
    key = "polygon"
    title = "Polygons"
    label_schema_shape = schema_shape()
    payload_shape = obj(
        {
            "polygons": array(
                obj(
                    {
                        "label": LABEL,
                        "points": array(
                            numbers(2, COORDINATE, "[x, y] in pixels, inside the image."),
                            min_items=MIN_POINTS,
                            max_items=MAX_POLYGON_POINTS,
                            description="A simple ring (no self-intersection), not closed: "
                            f"at most {MAX_TOTAL_POLYGON_POINTS} points in all polygons.",
                        ),
                    },
                    required=_FIELDS,
                ),
                max_items=MAX_ITEMS,
            )
        },
        required=("polygons",),
    )
    label_paths = {"labels": "$.polygons[*].label"}
    export_formats = (COCO_POLYGON, JSONL)

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema)

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return image_data_issues(data)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        width, height = data["width"], data["height"]
        known = label_order(schema)
        polygons = payload_arrays(payload, {"polygons": MAX_ITEMS}, issues).get("polygons", ())
        total_points = 0
        rings: list[tuple[str, np.ndarray]] = []
        for index, polygon in enumerate(polygons):
            path = index_path("polygons", index)
            if not check_object(polygon, path, issues, required=_FIELDS):
                continue
            if "label" in polygon:
                check_label(polygon["label"], field_path(path, "label"), known, issues)
            if "points" not in polygon:
                continue
            points_path = field_path(path, "points")
            points = polygon["points"]
            if not check_array(
                points, points_path, issues, limit=MAX_POLYGON_POINTS, noun="points"
            ):
                continue
            total_points += len(points)
            if total_points > MAX_TOTAL_POLYGON_POINTS:
                issues.append(
                    ValidationIssue(
                        "polygons",
                        f"has more than {MAX_TOTAL_POLYGON_POINTS} points in all; "
                        "simplify the polygons",
                    )
                )
                break
            if len(points) < MIN_POINTS:
                issues.append(
                    ValidationIssue(
                        points_path, f"has {len(points)} points; a polygon needs at least 3"
                    )
                )
                continue
            ring = _points(points, points_path, width, height, issues)
            if ring is not None:
                rings.append((points_path, ring))
        _check_shapes(rings, issues)
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score as bbox does, with the exact polygon IoU (shapely) in place of the box IoU."""
        polygons_a, polygons_b = a["polygons"], b["polygons"]
        admissible = same_label([p["label"] for p in polygons_a], [p["label"] for p in polygons_b])
        iou = polygon_iou_matrix(
            polygon_shapes(polygons_a),
            polygon_shapes(polygons_b),
            admissible,
            min_iou=IOU_THRESHOLD,
        )
        details = detection_comparison(iou, admissible & (iou >= IOU_THRESHOLD))
        return Comparison(details["f1"], details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep the polygon clusters a quorum agrees on, each as its medoid polygon.

        Averaging vertices is only meaningful when polygons have matching vertices, which
        annotators' polygons do not. The medoid (the member with the highest weighted IoU to the
        other members) is an actual annotator's polygon, so it is always valid and simple.
        """
        w = annotator_weights(weights, len(payloads))
        polygons = [p["polygons"] for p in payloads]
        shapes = [polygon_shapes(p) for p in polygons]
        labels = [[x["label"] for x in p] for p in polygons]

        def similarity(p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
            admissible = same_label(labels[p], labels[q])
            iou = polygon_iou_matrix(shapes[p], shapes[q], admissible, min_iou=IOU_THRESHOLD)
            return iou, admissible & (iou >= IOU_THRESHOLD)

        clusters, linked = quorum_clusters(polygons, similarity, w, quorum)
        merged = []
        for cluster in clusters:
            p, i = medoid(cluster, linked, w)
            merged.append(polygons[p][i])
        consensus = self.canonical({"polygons": merged})
        confidence = support_confidence(self, payloads, w, consensus, schema)
        return Merged(consensus, confidence, {"clusters": len(clusters)})

    def canonical(self, payload: Payload) -> Payload:
        polygons = sorted(payload["polygons"], key=lambda p: (p["label"], p["points"]))
        return {
            "polygons": [
                {"label": p["label"], "points": [list(point) for point in p["points"]]}
                for p in polygons
            ]
        }


def _points(
    points: list, path: str, width: int, height: int, issues: list[ValidationIssue]
) -> np.ndarray | None:
    """Return the points as an (n, 2) array, or report each bad point and return None."""
    if all(is_array(p) and len(p) == 2 and is_number(p[0]) and is_number(p[1]) for p in points):
        ring = np.array(points, dtype=float)
        lo, hi = -BOUNDS_TOLERANCE, np.array([width, height]) + BOUNDS_TOLERANCE
        if np.all((ring >= lo) & (ring <= hi)):
            return ring
    for index, point in enumerate(points):
        point_path = index_path(path, index)
        if not is_array(point) or len(point) != 2:
            issues.append(ValidationIssue(point_path, f"expected [x, y], got {describe(point)}"))
            continue
        for axis, limit, dimension in ((0, width, "width"), (1, height, "height")):
            value: Any = point[axis]
            value_path = index_path(point_path, axis)
            if check_number(value, value_path, issues):
                check_within(value, value_path, limit, dimension, issues)
    return None


def _check_shapes(rings: list[tuple[str, np.ndarray]], issues: list[ValidationIssue]) -> None:
    """Reject degenerate and self-intersecting polygons, checked all at once by shapely."""
    if not rings:
        return
    shapes = make_polygons([ring for _, ring in rings])
    valid = shapely.is_valid(shapes)
    if valid.all():
        return
    # A flat polygon (all points on one line) has no area even around its hull; any other
    # invalid one crosses or touches itself (a bow tie, a ring that doubles back).
    flat = shapely.area(shapely.convex_hull(shapes)) <= 0
    for (path, _), is_valid, is_flat in zip(rings, valid, flat, strict=True):
        if is_flat:
            issues.append(ValidationIssue(path, "the polygon has no area"))
        elif not is_valid:
            issues.append(ValidationIssue(path, "the polygon intersects itself"))
