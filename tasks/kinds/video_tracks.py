"""video_tracks: objects followed over frames, one box per frame they appear in.

{"tracks": [{"id", "label", "frames": [{"frame", "x", "y", "w", "h"}]}]} with 0-based frames and
boxes in the video's pixels (data.width, data.height). A track may skip frames (occlusion).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

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
    has_quorum,
    quorum_clusters,
    support_confidence,
    unique_id,
    weighted_mean,
)
from tasks.kinds.geometry import paired_box_iou
from tasks.kinds.matching import label_codes, match, ratio
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import COORDINATE, FRAME, IDENTIFIER, LABEL, POSITIVE, array, obj
from tasks.kinds.validation import (
    BOUNDS_TOLERANCE,
    MAX_ITEMS,
    MAX_TRACK_FRAMES,
    check_array,
    check_box_bounds,
    check_frame,
    check_identifier,
    check_label,
    check_numbers,
    check_object,
    field_path,
    index_path,
    payload_arrays,
    quote,
    video_data_issues,
)

# A box of one track "is" a box of another on a frame when their IoU is >= 0.5 (the usual
# MOTChallenge criterion, py-motmetrics' iou distance 0.5). Merging clusters tracks whose
# single-pair IDF1 (shared frames over their mean length) reaches the same 0.5.
IOU_THRESHOLD = 0.5
TRACK_CLUSTER_THRESHOLD = 0.5
_TRACK_FIELDS = ("id", "label", "frames")
_FRAME_FIELDS = ("frame", "x", "y", "w", "h")
_FRAME_KEYS = frozenset(_FRAME_FIELDS)
_BOX_FIELDS = ("x", "y", "w", "h")
_NUMBER_TYPES = frozenset({int, float})


@dataclass(frozen=True, slots=True)
class FlatTracks:
    """All boxes of a payload's tracks in flat arrays, for vectorised matching."""

    labels: list[str]  # per track
    lengths: np.ndarray  # frames per track
    track: np.ndarray  # per box: index of its track
    frame: np.ndarray  # per box
    boxes: np.ndarray  # per box: x, y, w, h

    @classmethod
    def of(cls, tracks: Sequence[dict]) -> FlatTracks:
        lengths = np.fromiter((len(t["frames"]) for t in tracks), np.int64, len(tracks))
        frames = [f for t in tracks for f in t["frames"]]
        return cls(
            labels=[t["label"] for t in tracks],
            lengths=lengths,
            track=np.repeat(np.arange(len(tracks)), lengths),
            frame=np.fromiter((f["frame"] for f in frames), np.int64, len(frames)),
            boxes=np.array([[f["x"], f["y"], f["w"], f["h"]] for f in frames], dtype=float).reshape(
                -1, 4
            ),
        )


def shared_frames(a: FlatTracks, b: FlatTracks) -> np.ndarray:
    """Count, for every pair of same-label tracks, the frames where their boxes have IoU >= 0.5.

    Boxes are joined on (label, frame) with a sort and binary search rather than a loop over
    frames, so the cost follows the number of co-occurring box pairs.
    """
    overlap = np.zeros((len(a.lengths), len(b.lengths)), dtype=np.int64)
    if not len(a.frame) or not len(b.frame):
        return overlap
    codes_a, codes_b = label_codes(a.labels, b.labels)
    stride = int(max(a.frame.max(), b.frame.max())) + 1
    key_a = codes_a[a.track] * stride + a.frame
    key_b = codes_b[b.track] * stride + b.frame
    order = np.argsort(key_b, kind="stable")
    sorted_b = key_b[order]
    low = np.searchsorted(sorted_b, key_a, side="left")
    counts = np.searchsorted(sorted_b, key_a, side="right") - low
    total = int(counts.sum())
    if not total:
        return overlap
    index_a = np.repeat(np.arange(len(key_a)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    index_b = order[np.repeat(low, counts) + offsets]
    hit = paired_box_iou(a.boxes[index_a], b.boxes[index_b]) >= IOU_THRESHOLD
    pairs = a.track[index_a[hit]] * len(b.lengths) + b.track[index_b[hit]]
    return np.bincount(pairs, minlength=overlap.size).reshape(overlap.shape)


class VideoTracks(Kind):
    key = "video_tracks"
    title = "Video object tracks"
    label_schema_shape = schema_shape()
    payload_shape = obj(
        {
            "tracks": array(
                obj(
                    {
                        "id": IDENTIFIER,
                        "label": LABEL,
                        "frames": array(
                            obj(
                                {
                                    "frame": FRAME,
                                    "x": COORDINATE,
                                    "y": COORDINATE,
                                    "w": POSITIVE,
                                    "h": POSITIVE,
                                },
                                required=_FRAME_FIELDS,
                                description="The object's box in one frame, inside the frame.",
                            ),
                            min_items=1,
                            max_items=MAX_TRACK_FRAMES,
                            description=f"Each frame once; at most {MAX_TRACK_FRAMES} boxes in "
                            "all tracks.",
                        ),
                    },
                    required=_TRACK_FIELDS,
                    description="One object over frames; ids are unique.",
                ),
                max_items=MAX_ITEMS,
            )
        },
        required=("tracks",),
    )
    label_paths = {"labels": "$.tracks[*].label"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema)

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return video_data_issues(data, needs_size=True)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        known = label_order(schema)
        tracks = payload_arrays(payload, {"tracks": MAX_ITEMS}, issues).get("tracks", ())
        first_with_id: dict[Hashable, int] = {}
        total_frames = 0
        for index, track in enumerate(tracks):
            path = index_path("tracks", index)
            if not check_object(track, path, issues, required=_TRACK_FIELDS):
                continue
            if "id" in track and check_identifier(track["id"], field_path(path, "id"), issues):
                track_id = track["id"]
                if track_id in first_with_id:
                    shown = quote(track_id) if isinstance(track_id, str) else str(track_id)
                    first = index_path("tracks", first_with_id[track_id])
                    issues.append(
                        ValidationIssue(
                            field_path(path, "id"), f"duplicate id {shown} (also {first})"
                        )
                    )
                else:
                    first_with_id[track_id] = index
            if "label" in track:
                check_label(track["label"], field_path(path, "label"), known, issues)
            if "frames" not in track:
                continue
            frames_path = field_path(path, "frames")
            frames = track["frames"]
            if not check_array(frames, frames_path, issues, limit=MAX_TRACK_FRAMES, noun="frames"):
                continue
            total_frames += len(frames)
            if total_frames > MAX_TRACK_FRAMES:
                issues.append(
                    ValidationIssue(
                        "tracks", f"has more than {MAX_TRACK_FRAMES} boxes in all tracks"
                    )
                )
                break
            if not frames:
                issues.append(ValidationIssue(frames_path, "a track needs at least one frame"))
                continue
            _check_frames(frames, frames_path, data, issues)
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score IDF1 (Ristani et al., 2016) with boxes matching at IoU >= 0.5.

        Tracks are matched one-to-one over the whole clip to maximise IDTP, the number of
        frames where matched tracks' boxes overlap; only tracks of the same label may match.
        IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) = 2 IDTP / (boxes in a + boxes in b), which is
        symmetric. b plays the ground truth for IDFN and IDR.
        """
        flat_a, flat_b = FlatTracks.of(a["tracks"]), FlatTracks.of(b["tracks"])
        overlap = shared_frames(flat_a, flat_b)
        matching = match(overlap.astype(float), overlap > 0)
        idtp = int(matching.values.sum())
        boxes_a, boxes_b = len(flat_a.frame), len(flat_b.frame)
        both_empty = boxes_a == 0 and boxes_b == 0
        ids_a = [t["id"] for t in a["tracks"]]
        ids_b = [t["id"] for t in b["tracks"]]
        details: dict[str, Any] = {
            "idtp": idtp,
            "idfp": boxes_a - idtp,
            "idfn": boxes_b - idtp,
            "idp": ratio(idtp, boxes_a, both_empty=both_empty),
            "idr": ratio(idtp, boxes_b, both_empty=both_empty),
            "pairs": [
                [ids_a[i], ids_b[j], int(v)]
                for i, j, v in zip(matching.rows, matching.cols, matching.values, strict=True)
            ],
        }
        score = ratio(2 * idtp, boxes_a + boxes_b, both_empty=both_empty)
        details["idf1"] = score
        return Comparison(score, details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Cluster tracks across annotators and rebuild each kept cluster frame by frame.

        Tracks cluster when their pairwise IDF1 is >= 0.5 (same label, one per annotator). A
        cluster is kept when a quorum of the annotators' weight is in it; in it, a frame is kept
        when the members that have a box there are a quorum, and its box is their weighted mean.
        The merged track keeps the id of its heaviest member.
        """
        w = annotator_weights(weights, len(payloads))
        # Canonical frame order, so that equal tracks compare equal when clustering.
        tracks = [self.canonical(p)["tracks"] for p in payloads]
        flats = [FlatTracks.of(t) for t in tracks]

        def similarity(p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
            overlap = shared_frames(flats[p], flats[q])
            mean_length = (flats[p].lengths[:, None] + flats[q].lengths[None, :]) / 2
            idf1 = overlap / mean_length
            return idf1, (overlap > 0) & (idf1 >= TRACK_CLUSTER_THRESHOLD)

        clusters, _ = quorum_clusters(tracks, similarity, w, quorum)
        total = float(w.sum())
        used: set[Hashable] = set()
        merged = []
        for cluster in clusters:
            members = [tracks[p][i] for p, i in cluster.nodes]
            member_weights = w[cluster.annotators]
            boxes_by_frame: dict[int, list[tuple[int, list[float]]]] = {}
            for m, track in enumerate(members):
                for f in track["frames"]:
                    box = [f["x"], f["y"], f["w"], f["h"]]
                    boxes_by_frame.setdefault(f["frame"], []).append((m, box))
            frames = []
            for frame, present in sorted(boxes_by_frame.items()):
                who = [m for m, _ in present]
                if not has_quorum(float(member_weights[who].sum()), total, quorum):
                    continue
                mean = weighted_mean(np.array([b for _, b in present]), member_weights[who])
                frames.append(dict(zip(_FRAME_FIELDS, [frame, *mean.tolist()], strict=True)))
            if not frames:
                continue
            heaviest = min(range(len(members)), key=lambda m: (-member_weights[m], m))
            track_id = unique_id(members[heaviest]["id"], used)
            merged.append({"id": track_id, "label": members[0]["label"], "frames": frames})
        consensus = self.canonical({"tracks": merged})
        confidence = support_confidence(self, payloads, w, consensus, schema)
        return Merged(consensus, confidence, {"clusters": len(clusters)})

    def canonical(self, payload: Payload) -> Payload:
        result = []
        for track in payload["tracks"]:
            frames = sorted(track["frames"], key=lambda f: f["frame"])
            result.append(
                {
                    "id": track["id"],
                    "label": track["label"],
                    "frames": [{key: f[key] for key in _FRAME_FIELDS} for f in frames],
                }
            )
        result.sort(
            key=lambda t: (
                t["frames"][0]["frame"],
                t["label"],
                type(t["id"]).__name__,
                str(t["id"]),
            )
        )
        return {"tracks": result}


def _check_frames(frames: Sequence[Any], path: str, data: TaskData, issues: list) -> None:
    """Check a track's boxes: a vectorised pass for the common valid case, then details."""
    frame_count, width, height = data["frame_count"], data["width"], data["height"]
    if all(type(f) is dict and f.keys() == _FRAME_KEYS for f in frames):
        numbers = [f[key] for f in frames for key in _BOX_FIELDS]
        indexes = [f["frame"] for f in frames]
        # Exact type checks (bool is an int subclass, so isinstance would let it through).
        if set(map(type, numbers)) <= _NUMBER_TYPES and set(map(type, indexes)) == {int}:
            boxes = np.array(numbers, dtype=float).reshape(-1, 4)
            index_array = np.array(indexes)
            inside = (
                np.isfinite(boxes).all(axis=1)
                & (boxes[:, 0] >= -BOUNDS_TOLERANCE)
                & (boxes[:, 1] >= -BOUNDS_TOLERANCE)
                & (boxes[:, 2] > 0)
                & (boxes[:, 3] > 0)
                & (boxes[:, 0] + boxes[:, 2] <= width + BOUNDS_TOLERANCE)
                & (boxes[:, 1] + boxes[:, 3] <= height + BOUNDS_TOLERANCE)
                & (index_array >= 0)
                & (index_array < frame_count)
            )
            if inside.all() and len(np.unique(index_array)) == len(index_array):
                return
    seen: dict[int, int] = {}
    for index, entry in enumerate(frames):
        entry_path = index_path(path, index)
        if not check_object(entry, entry_path, issues, required=_FRAME_FIELDS):
            continue
        if "frame" in entry and check_frame(
            entry["frame"], field_path(entry_path, "frame"), frame_count, issues
        ):
            frame = entry["frame"]
            if frame in seen:
                first = index_path("frames", seen[frame])
                issues.append(
                    ValidationIssue(entry_path, f"duplicate frame {frame} (also {first})")
                )
            else:
                seen[frame] = index
        if check_numbers(entry, _BOX_FIELDS, entry_path, issues):
            values = [entry[key] for key in _BOX_FIELDS]
            paths = [field_path(entry_path, key) for key in _BOX_FIELDS]
            check_box_bounds(values, paths, width, height, issues)
