"""Hypothesis strategies for valid payloads of every kind, plus the schemas and task data.

Coordinates come from coarse grids so that independently drawn payloads overlap often enough for
comparisons to be interesting (matches, near misses and ties), not just empty.
"""

import math

from hypothesis import assume
from hypothesis import strategies as st

LABELS = ["car", "person", "dog"]
KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_hand", "right_hand"]
SIGMAS = [0.026, 0.025, 0.025, 0.062, 0.062]

SCHEMA = {
    "labels": [{"name": name} for name in LABELS],
    "error_tags": ["wrong_label", "loose_box"],
}
KEYPOINT_SCHEMA = {
    **SCHEMA,
    "keypoints": KEYPOINT_NAMES,
    "sigmas": SIGMAS,
    "skeleton": [[0, 1], [0, 2], [1, 3], [2, 4]],
}
RELATION_SCHEMA = {**SCHEMA, "relation_types": ["works_for", "owns"]}

IMAGE = {"width": 640, "height": 480, "file_name": "street.jpg"}
TEXT = {"text": "Alice works for Acme Corp in Paris; Bob owns a dog named Rex and a red car."}
VIDEO = {"frame_count": 40, "width": 320, "height": 240}

labels = st.sampled_from(LABELS)


@st.composite
def boxes(draw, width=IMAGE["width"], height=IMAGE["height"], step=20):
    x = draw(st.integers(0, width // step - 1)) * step
    y = draw(st.integers(0, height // step - 1)) * step
    w = draw(st.integers(1, min(6, (width - x) // step))) * step
    h = draw(st.integers(1, min(6, (height - y) // step))) * step
    jitter = draw(st.sampled_from([0, 0, 0.5, 3]))
    return {"x": x, "y": y, "w": max(1, w - jitter), "h": h}


def bbox_payloads(max_size=6):
    box = st.builds(lambda label, b: {"label": label, **b}, labels, boxes())
    return st.builds(lambda items: {"boxes": items}, st.lists(box, max_size=max_size))


@st.composite
def polygon_points(draw):
    """A star-shaped polygon around a centre: angles strictly increase, so it is simple."""
    cx = draw(st.integers(4, 12)) * 40
    cy = draw(st.integers(3, 9)) * 40
    count = draw(st.integers(3, 10))
    angles = sorted(draw(st.lists(st.integers(0, 35), min_size=count, max_size=count, unique=True)))
    radius = draw(st.sampled_from([40, 60, 100]))
    radii = draw(st.lists(st.integers(radius // 2, radius), min_size=count, max_size=count))
    points = [
        [cx + r * math.cos(a * math.pi / 18), cy + r * math.sin(a * math.pi / 18)]
        for a, r in zip(angles, radii, strict=True)
    ]
    # Star polygons whose angles all fit in a half-turn can fold onto the centre; require a
    # positive area so the generator only yields what validation must accept.
    area = 0.5 * sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)
    )
    max_gap = max((b - a) % 36 for a, b in zip(angles, angles[1:] + angles[:1], strict=True))
    assume(abs(area) > 50 and max_gap < 18)
    return points


def polygon_payloads(max_size=4):
    polygon = st.builds(
        lambda label, pts: {"label": label, "points": pts}, labels, polygon_points()
    )
    return st.builds(lambda items: {"polygons": items}, st.lists(polygon, max_size=max_size))


@st.composite
def keypoint_instance(draw, with_bbox=None):
    x0 = draw(st.integers(0, 10)) * 40
    y0 = draw(st.integers(0, 7)) * 40
    size = draw(st.sampled_from([40, 80, 120]))
    points = []
    for _ in KEYPOINT_NAMES:
        v = draw(st.sampled_from([0, 1, 2, 2]))
        x = x0 + draw(st.integers(0, size // 4)) * 4
        y = y0 + draw(st.integers(0, size // 4)) * 4
        points.append([x, y, v] if v else [0, 0, 0])
    if all(v == 0 for _, _, v in points):
        points[0] = [x0 + size / 2, y0 + size / 2, 2]
    instance = {"label": draw(labels), "keypoints": points}
    if with_bbox if with_bbox is not None else draw(st.booleans()):
        instance["bbox"] = [x0, y0, size, size]
    return instance


def keypoint_payloads(max_size=4, with_bbox=None):
    return st.builds(
        lambda items: {"instances": items},
        st.lists(keypoint_instance(with_bbox=with_bbox), max_size=max_size),
    )


text_length = len(TEXT["text"])


@st.composite
def span_offsets(draw):
    start = draw(st.integers(0, text_length - 1))
    end = draw(st.integers(start + 1, min(text_length, start + 12)))
    return start, end


def _unique_spans(spans, key):
    seen, result = set(), []
    for span in spans:
        if key(span) not in seen:
            seen.add(key(span))
            result.append(span)
    return result


def ner_payloads(max_size=8):
    span = st.builds(
        lambda se, label: {"start": se[0], "end": se[1], "label": label}, span_offsets(), labels
    )
    return st.lists(span, max_size=max_size).map(
        lambda spans: {"spans": _unique_spans(spans, lambda s: (s["start"], s["end"], s["label"]))}
    )


KB_IDS = ["Q1", "Q2", "Q90", "Q312"]


def entity_linking_payloads(max_size=8):
    @st.composite
    def span(draw):
        start, end = draw(span_offsets())
        result = {"start": start, "end": end, "kb_id": draw(st.sampled_from(KB_IDS))}
        if draw(st.booleans()):
            result["label"] = draw(labels)
        return result

    return st.lists(span(), max_size=max_size).map(
        lambda spans: {"spans": _unique_spans(spans, lambda s: (s["start"], s["end"], s["kb_id"]))}
    )


@st.composite
def relation_payloads(draw, max_size=6):
    spans = draw(ner_payloads(max_size=max_size))["spans"]
    id_style = draw(st.sampled_from(["T", "int", "uuid"]))
    ids = [
        f"T{n + 1}" if id_style == "T" else n + 7 if id_style == "int" else f"span-{n * 13 % 97}"
        for n in range(len(spans))
    ]
    spans = [{"id": span_id, **span} for span_id, span in zip(ids, spans, strict=True)]
    relations = []
    if len(spans) >= 2:
        pairs = draw(
            st.lists(
                st.tuples(
                    st.integers(0, len(spans) - 1),
                    st.integers(0, len(spans) - 1),
                    st.sampled_from(RELATION_SCHEMA["relation_types"]),
                ),
                max_size=6,
                unique=True,
            )
        )
        relations = [
            {"from": spans[i]["id"], "to": spans[j]["id"], "label": label}
            for i, j, label in pairs
            if i != j
        ]
    return {"spans": spans, "relations": relations}


@st.composite
def track(draw, track_id):
    frame_count, width, height = VIDEO["frame_count"], VIDEO["width"], VIDEO["height"]
    start = draw(st.integers(0, frame_count - 1))
    length = draw(st.integers(1, min(12, frame_count - start)))
    frames = sorted(draw(st.sets(st.integers(start, start + length - 1), min_size=1)))
    x = draw(st.integers(0, 10)) * 20
    y = draw(st.integers(0, 7)) * 20
    dx, dy = draw(st.sampled_from([0, 2, 5])), draw(st.sampled_from([0, 3]))
    w, h = 60, 50
    entries = []
    for f in frames:
        bx = min(width - w, x + dx * (f - start))
        by = min(height - h, y + dy * (f - start))
        entries.append({"frame": f, "x": bx, "y": by, "w": w, "h": h})
    return {"id": track_id, "label": draw(labels), "frames": entries}


@st.composite
def video_track_payloads(draw, max_size=4):
    count = draw(st.integers(0, max_size))
    style = draw(st.sampled_from(["int", "str"]))
    ids = [n + 1 if style == "int" else f"track-{n}" for n in range(count)]
    return {"tracks": [draw(track(track_id)) for track_id in ids]}


@st.composite
def event(draw):
    start = draw(st.integers(0, VIDEO["frame_count"] - 1))
    end = draw(st.integers(start, min(VIDEO["frame_count"] - 1, start + 10)))
    return {"label": draw(labels), "start_frame": start, "end_frame": end}


def video_event_payloads(max_size=6):
    return st.builds(lambda items: {"events": items}, st.lists(event(), max_size=max_size))


def classification_payloads():
    return st.builds(lambda label: {"label": label}, labels)


def multilabel_payloads():
    return st.builds(lambda items: {"labels": items}, st.lists(labels, unique=True))


# kind key -> (payload strategy, schema, task data)
CASES = {
    "classification": (classification_payloads(), SCHEMA, IMAGE),
    "multilabel": (multilabel_payloads(), SCHEMA, IMAGE),
    "bbox": (bbox_payloads(), SCHEMA, IMAGE),
    "polygon": (polygon_payloads(), SCHEMA, IMAGE),
    "keypoints": (keypoint_payloads(), KEYPOINT_SCHEMA, IMAGE),
    "ner": (ner_payloads(), SCHEMA, TEXT),
    "relations": (relation_payloads(), RELATION_SCHEMA, TEXT),
    "entity_linking": (entity_linking_payloads(), SCHEMA, TEXT),
    "video_tracks": (video_track_payloads(), SCHEMA, VIDEO),
    "video_events": (video_event_payloads(), SCHEMA, VIDEO),
}
