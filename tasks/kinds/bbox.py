"""bbox: labelled axis-aligned boxes in image pixels, {"boxes": [{"label", "x", "y", "w", "h"}]}."""

from __future__ import annotations

from collections.abc import Sequence

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
)
from tasks.kinds.formats.coco import COCO_BBOX
from tasks.kinds.geometry import box_iou_matrix
from tasks.kinds.matching import detection_comparison, same_label
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import COORDINATE, LABEL, POSITIVE, array, obj
from tasks.kinds.validation import (
    MAX_ITEMS,
    check_box_bounds,
    check_label,
    check_numbers,
    check_object,
    field_path,
    image_data_issues,
    index_path,
    payload_arrays,
)

# A box matches another of the same label at IoU >= 0.5 (the PASCAL VOC / COCO AP50 criterion);
# merging clusters boxes with the same threshold.
IOU_THRESHOLD = 0.5
_FIELDS = ("label", "x", "y", "w", "h")
_GEOMETRY = ("x", "y", "w", "h")


def box_array(boxes: Sequence[dict]) -> np.ndarray:
    """Return the boxes as an (n, 4) float array of x, y, w, h."""
    return np.array([[b["x"], b["y"], b["w"], b["h"]] for b in boxes], dtype=float).reshape(-1, 4)


class BoundingBoxes(Kind):
    key = "bbox"
    title = "Bounding boxes"
    label_schema_shape = schema_shape()
    payload_shape = obj(
        {
            "boxes": array(
                obj(
                    {
                        "label": LABEL,
                        "x": COORDINATE,
                        "y": COORDINATE,
                        "w": POSITIVE,
                        "h": POSITIVE,
                    },
                    required=_FIELDS,
                    description="x, y is the top-left corner; the box lies inside the image.",
                ),
                max_items=MAX_ITEMS,
            )
        },
        required=("boxes",),
    )
    label_paths = {"labels": "$.boxes[*].label"}
    export_formats = (COCO_BBOX, JSONL)

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
        boxes = payload_arrays(payload, {"boxes": MAX_ITEMS}, issues).get("boxes", ())
        for index, box in enumerate(boxes):
            path = index_path("boxes", index)
            if not check_object(box, path, issues, required=_FIELDS):
                continue
            if "label" in box:
                check_label(box["label"], field_path(path, "label"), known, issues)
            if check_numbers(box, _GEOMETRY, path, issues):
                values = [box[key] for key in _GEOMETRY]
                paths = [field_path(path, key) for key in _GEOMETRY]
                check_box_bounds(values, paths, width, height, issues)
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the F1 of one-to-one same-label matches at IoU >= 0.5.

        The matching maximises the total IoU of admissible pairs (Hungarian algorithm), so the
        figure is the same whichever order the boxes come in; it is symmetric in a and b.
        """
        boxes_a, boxes_b = a["boxes"], b["boxes"]
        iou = box_iou_matrix(box_array(boxes_a), box_array(boxes_b))
        admissible = same_label([x["label"] for x in boxes_a], [x["label"] for x in boxes_b])
        admissible &= iou >= IOU_THRESHOLD
        details = detection_comparison(iou, admissible)
        return Comparison(details["f1"], details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep the box clusters a quorum agrees on, each as the weighted mean of its boxes."""
        w = annotator_weights(weights, len(payloads))
        boxes = [p["boxes"] for p in payloads]
        arrays = [box_array(b) for b in boxes]
        labels = [[x["label"] for x in b] for b in boxes]

        def similarity(p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
            iou = box_iou_matrix(arrays[p], arrays[q])
            return iou, same_label(labels[p], labels[q]) & (iou >= IOU_THRESHOLD)

        clusters, _ = quorum_clusters(boxes, similarity, w, quorum)
        merged = []
        for cluster in clusters:
            members = np.array([arrays[p][i] for p, i in cluster.nodes])
            x, y, bw, bh = weighted_mean(members, w[cluster.annotators]).tolist()
            p, i = cluster.nodes[0]
            merged.append({"label": labels[p][i], "x": x, "y": y, "w": bw, "h": bh})
        consensus = self.canonical({"boxes": merged})
        confidence = support_confidence(self, payloads, w, consensus, schema)
        return Merged(consensus, confidence, {"clusters": len(clusters)})

    def canonical(self, payload: Payload) -> Payload:
        boxes = sorted(payload["boxes"], key=lambda b: (b["label"], b["x"], b["y"], b["w"], b["h"]))
        return {"boxes": [{key: b[key] for key in _FIELDS} for b in boxes]}
