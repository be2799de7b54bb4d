"""video_events: labelled frame ranges, {"events": [{"label", "start_frame", "end_frame"}]}.

Frames are 0-based and end_frame is inclusive: an event on one frame has start = end, and
[s, e] lasts e - s + 1 frames (what people mean by "from frame 10 to frame 20").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tasks.kinds.base import (
    DEFAULT_QUORUM,
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
from tasks.kinds.geometry import frame_range_iou_matrix
from tasks.kinds.matching import detection_comparison, same_label
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import FRAME, LABEL, array, obj
from tasks.kinds.validation import (
    MAX_ITEMS,
    check_frame,
    check_label,
    check_object,
    field_path,
    index_path,
    payload_arrays,
    video_data_issues,
)

# Two events match (and share a merge cluster) at temporal IoU >= 0.5, as in ActivityNet mAP@0.5.
TIOU_THRESHOLD = 0.5
_FIELDS = ("label", "start_frame", "end_frame")


def event_ranges(events: Sequence[dict]) -> np.ndarray:
    """Return the events as an (n, 2) integer array of inclusive (start, end) frames."""
    return np.array([[e["start_frame"], e["end_frame"]] for e in events], dtype=np.int64).reshape(
        -1, 2
    )


class VideoEvents(Kind):
    key = "video_events"
    title = "Video events"
    label_schema_shape = schema_shape()
    payload_shape = obj(
        {
            "events": array(
                obj(
                    {"label": LABEL, "start_frame": FRAME, "end_frame": FRAME},
                    required=_FIELDS,
                    description="Frames inclusive; end_frame is not before start_frame.",
                ),
                max_items=MAX_ITEMS,
            )
        },
        required=("events",),
    )
    label_paths = {"labels": "$.events[*].label"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema)

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return video_data_issues(data, needs_size=False)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        frame_count = data["frame_count"]
        known = label_order(schema)
        events = payload_arrays(payload, {"events": MAX_ITEMS}, issues).get("events", ())
        for index, event in enumerate(events):
            path = index_path("events", index)
            if not check_object(event, path, issues, required=_FIELDS):
                continue
            if "label" in event:
                check_label(event["label"], field_path(path, "label"), known, issues)
            frames_ok = [
                check_frame(event[key], field_path(path, key), frame_count, issues)
                for key in ("start_frame", "end_frame")
                if key in event
            ]
            if len(frames_ok) == 2 and all(frames_ok):
                start, end = event["start_frame"], event["end_frame"]
                if end < start:
                    issues.append(
                        ValidationIssue(path, f"end_frame {end} is before start_frame {start}")
                    )
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the F1 of one-to-one same-label matches at temporal IoU >= 0.5."""
        events_a, events_b = a["events"], b["events"]
        tiou = frame_range_iou_matrix(event_ranges(events_a), event_ranges(events_b))
        admissible = same_label([e["label"] for e in events_a], [e["label"] for e in events_b])
        details = detection_comparison(tiou, admissible & (tiou >= TIOU_THRESHOLD), measure="tiou")
        return Comparison(details["f1"], details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep the event clusters a quorum agrees on, with weighted mean start and end frames.

        The means are rounded half up to whole frames; start <= end survives rounding since
        every member has start <= end.
        """
        w = annotator_weights(weights, len(payloads))
        events = [p["events"] for p in payloads]
        ranges = [event_ranges(e) for e in events]
        labels = [[e["label"] for e in es] for es in events]

        def similarity(p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
            tiou = frame_range_iou_matrix(ranges[p], ranges[q])
            return tiou, same_label(labels[p], labels[q]) & (tiou >= TIOU_THRESHOLD)

        clusters, _ = quorum_clusters(events, similarity, w, quorum)
        merged = []
        for cluster in clusters:
            members = np.array([ranges[p][i] for p, i in cluster.nodes], dtype=float)
            start, end = np.floor(weighted_mean(members, w[cluster.annotators]) + 0.5)
            p, i = cluster.nodes[0]
            merged.append({"label": labels[p][i], "start_frame": int(start), "end_frame": int(end)})
        consensus = self.canonical({"events": merged})
        confidence = support_confidence(self, payloads, w, consensus, schema)
        return Merged(consensus, confidence, {"clusters": len(clusters)})

    def canonical(self, payload: Payload) -> Payload:
        events = sorted(
            payload["events"], key=lambda e: (e["start_frame"], e["end_frame"], e["label"])
        )
        return {"events": [{key: e[key] for key in _FIELDS} for e in events]}
