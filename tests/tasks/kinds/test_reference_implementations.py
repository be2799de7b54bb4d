"""Agreement with the reference implementations people trust, on the same inputs.

Exact agreement (abs 1e-9) where the definitions are the same; a stated tolerance where the
reference only estimates the quantity (rasterised polygon IoU).
"""

import contextlib
import io
import math

import motmetrics as mm
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from tasks.kinds import KINDS
from tasks.kinds.formats.conll import bio_tags, tokenize
from tasks.kinds.geometry import box_iou_matrix, make_polygons, polygon_iou_matrix
from tasks.kinds.keypoints import oks_matrix
from tests.tasks.kinds.strategies import (
    KEYPOINT_SCHEMA,
    LABELS,
    SIGMAS,
    keypoint_payloads,
    polygon_points,
    video_track_payloads,
)

REFERENCE_SETTINGS = settings(max_examples=60, deadline=None)

float_boxes = st.lists(
    st.tuples(
        st.floats(0, 500, allow_nan=False),
        st.floats(0, 400, allow_nan=False),
        st.floats(0.5, 140, allow_nan=False),
        st.floats(0.5, 80, allow_nan=False),
    ),
    min_size=1,
    max_size=12,
)


@REFERENCE_SETTINGS
@given(a=float_boxes, b=float_boxes)
def test_box_iou_matches_pycocotools(a, b):
    ours = box_iou_matrix(np.array(a), np.array(b))
    reference = mask_utils.iou(
        np.array(a, dtype=np.float64).tolist(), np.array(b, dtype=np.float64).tolist(), [0] * len(b)
    )
    assert ours == pytest.approx(np.asarray(reference), abs=1e-9)


# --- keypoints: COCOeval.computeOks --------------------------------------------------------------


def coco_oks(dt_instances, gt_instances):
    """Return pycocotools' OKS matrix (detections x ground truths) for one image."""
    gt_annotations = []
    for n, instance in enumerate(gt_instances, start=1):
        points = np.array(instance["keypoints"], dtype=float)
        if "bbox" in instance:
            bbox = list(instance["bbox"])
        else:
            visible = points[points[:, 2] > 0]
            low, high = visible[:, :2].min(axis=0), visible[:, :2].max(axis=0)
            bbox = [*low.tolist(), *(high - low).tolist()]
        gt_annotations.append(
            {
                "id": n,
                "image_id": 1,
                "category_id": 1,
                "keypoints": points.ravel().tolist(),
                "num_keypoints": int((points[:, 2] > 0).sum()),
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": 0,
            }
        )
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "width": 640, "height": 480}],
        "annotations": gt_annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": ["k"] * len(SIGMAS)}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        detections = [
            {
                "image_id": 1,
                "category_id": 1,
                "keypoints": np.array(instance["keypoints"], dtype=float).ravel().tolist(),
                # Descending scores keep the detections in our order (computeOks sorts by score).
                "score": 1.0 - n / 100,
            }
            for n, instance in enumerate(dt_instances)
        ]
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.array(SIGMAS)
        evaluator.params.imgIds = [1]
        evaluator._prepare()
        return np.asarray(evaluator.computeOks(1, 1))


@REFERENCE_SETTINGS
@given(
    a=keypoint_payloads(max_size=4).filter(lambda p: p["instances"]),
    b=keypoint_payloads(max_size=4).filter(lambda p: p["instances"]),
)
def test_oks_matches_pycocotools_compute_oks(a, b):
    ours = oks_matrix(a["instances"], b["instances"], SIGMAS)
    reference = coco_oks(a["instances"], b["instances"])
    assert ours == pytest.approx(reference, abs=1e-9)


@st.composite
def nearby_keypoints(draw):
    """A payload and a copy with keypoints moved a few pixels, so OKS spans (0, 1)."""
    a = draw(keypoint_payloads(max_size=3).filter(lambda p: p["instances"]))
    b = {"instances": []}
    for instance in a["instances"]:
        moved = [
            [x + draw(st.integers(-6, 6)), y + draw(st.integers(-6, 6)), v] if v else [x, y, v]
            for x, y, v in instance["keypoints"]
        ]
        b["instances"].append({**instance, "keypoints": moved})
    return a, b


@REFERENCE_SETTINGS
@given(pair=nearby_keypoints())
def test_oks_of_nearby_instances_matches_pycocotools(pair):
    a, b = pair
    ours = oks_matrix(a["instances"], b["instances"], SIGMAS)
    assert ours == pytest.approx(coco_oks(a["instances"], b["instances"]), abs=1e-9)
    assert ours.diagonal() == pytest.approx(coco_oks(a["instances"], b["instances"]).diagonal())


def test_keypoints_score_is_the_best_assignment_of_coco_oks():
    a = {"instances": [
        {"label": "person", "keypoints": [[10, 10, 2], [20, 12, 2], [30, 10, 1], [0, 0, 0], [40, 40, 2]]},
        {"label": "person", "keypoints": [[110, 110, 2], [120, 112, 2], [130, 110, 2], [0, 0, 0], [140, 140, 2]]},
    ]}  # fmt: skip
    b = {"instances": [
        {"label": "person", "keypoints": [[112, 108, 2], [121, 113, 2], [128, 112, 2], [0, 0, 0], [141, 139, 2]], "bbox": [100, 100, 50, 50]},
        {"label": "person", "keypoints": [[11, 11, 2], [22, 11, 2], [30, 12, 2], [0, 0, 0], [41, 38, 2]]},
    ]}  # fmt: skip
    schema = {**KEYPOINT_SCHEMA, "labels": [{"name": "person"}]}
    reference = coco_oks(a["instances"], b["instances"])
    expected = (reference[0, 1] + reference[1, 0]) / 2
    assert KINDS["keypoints"].compare(a, b, schema).score == pytest.approx(expected, abs=1e-9)


# --- video_tracks: py-motmetrics IDF1 ------------------------------------------------------------


def motmetrics_idf1(hypothesis, truth):
    """Return py-motmetrics' IDF1 with IoU distance at most 0.5, one label only."""
    accumulator = mm.MOTAccumulator(auto_id=False)
    frames = sorted(
        {
            f["frame"]
            for payload in (hypothesis, truth)
            for t in payload["tracks"]
            for f in t["frames"]
        }
    )
    for frame in frames:
        gt = [(t["id"], f) for t in truth["tracks"] for f in t["frames"] if f["frame"] == frame]
        hyp = [
            (t["id"], f) for t in hypothesis["tracks"] for f in t["frames"] if f["frame"] == frame
        ]
        gt_boxes = np.array([[f["x"], f["y"], f["w"], f["h"]] for _, f in gt], dtype=float)
        hyp_boxes = np.array([[f["x"], f["y"], f["w"], f["h"]] for _, f in hyp], dtype=float)
        if len(gt) and len(hyp):
            # mm.distances.iou_matrix minus its np.asfarray call, which numpy 2 removed.
            iou = mm.distances.boxiou(gt_boxes[:, None], hyp_boxes[None, :])
            distances = np.where(1 - iou > 0.5, np.nan, 1 - iou)
        else:
            distances = np.empty((len(gt), len(hyp)))
        accumulator.update([i for i, _ in gt], [i for i, _ in hyp], distances, frameid=frame)
    summary = mm.metrics.create().compute(accumulator, metrics=["idf1"], name="x")
    return float(summary["idf1"].iloc[0])


def single_label(payload):
    """Give every track the same label and an integer id (motmetrics wants numeric ids)."""
    return {
        "tracks": [
            {**t, "id": n, "label": LABELS[0]} for n, t in enumerate(payload["tracks"], start=1)
        ]
    }


@st.composite
def related_tracks(draw):
    """A payload and an edited copy: moved boxes, dropped frames, swapped identities."""
    a = single_label(draw(video_track_payloads(max_size=4)))
    tracks = []
    for track in a["tracks"]:
        frames = [
            {**f, "x": f["x"] + draw(st.sampled_from([0, 0, 4, 12, 30]))}
            for f in track["frames"]
            if draw(st.integers(0, 4))  # drop about one frame in five
            and f["x"] + 30 + f["w"] <= 320
        ]
        if frames:
            tracks.append({**track, "frames": frames})
    if len(tracks) >= 2 and draw(st.booleans()):  # identity switch halfway through
        first, second = tracks[0]["frames"], tracks[1]["frames"]
        cut_a, cut_b = len(first) // 2, len(second) // 2
        mixed_a = first[:cut_a] + [
            f for f in second[cut_b:] if f["frame"] not in {g["frame"] for g in first[:cut_a]}
        ]
        mixed_b = second[:cut_b] + [
            f for f in first[cut_a:] if f["frame"] not in {g["frame"] for g in second[:cut_b]}
        ]
        if mixed_a and mixed_b:
            tracks[0] = {**tracks[0], "frames": mixed_a}
            tracks[1] = {**tracks[1], "frames": mixed_b}
    return a, {"tracks": tracks}


@REFERENCE_SETTINGS
@given(pair=related_tracks())
def test_idf1_of_edited_tracks_matches_py_motmetrics(pair):
    a, b = pair
    assume(a["tracks"] or b["tracks"])
    ours = KINDS["video_tracks"].compare(a, b, {"labels": [{"name": LABELS[0]}]}).score
    assert ours == pytest.approx(motmetrics_idf1(a, b), abs=1e-9)


def test_idf1_of_an_identity_switch_matches_py_motmetrics():
    box = {"y": 10, "w": 40, "h": 40}
    truth = {"tracks": [
        {"id": 1, "label": "car", "frames": [{"frame": f, "x": 10, **box} for f in range(10)]},
        {"id": 2, "label": "car", "frames": [{"frame": f, "x": 200, **box} for f in range(10)]},
    ]}  # fmt: skip
    switched = {"tracks": [
        {"id": 1, "label": "car", "frames": [{"frame": f, "x": 10 if f < 6 else 200, **box} for f in range(10)]},
        {"id": 2, "label": "car", "frames": [{"frame": f, "x": 200 if f < 6 else 10, **box} for f in range(10)]},
    ]}  # fmt: skip
    ours = KINDS["video_tracks"].compare(switched, truth, {"labels": [{"name": "car"}]})
    assert ours.score == pytest.approx(0.6, abs=1e-12)  # IDTP = 6 + 6 of 20 boxes each
    assert ours.details["idtp"] == 12
    assert ours.score == pytest.approx(motmetrics_idf1(switched, truth), abs=1e-9)


@REFERENCE_SETTINGS
@given(a=video_track_payloads(max_size=4), b=video_track_payloads(max_size=4))
def test_idf1_matches_py_motmetrics(a, b):
    a, b = single_label(a), single_label(b)
    # motmetrics reports NaN for an empty clip; Assay scores two empty payloads 1.
    assume(a["tracks"] or b["tracks"])
    ours = KINDS["video_tracks"].compare(a, b, {"labels": [{"name": LABELS[0]}]}).score
    reference = motmetrics_idf1(a, b)
    assert ours == pytest.approx(0.0 if math.isnan(reference) else reference, abs=1e-9)


# --- ner: seqeval --------------------------------------------------------------------------------

TOKENIZED_TEXT = "Alice works for Acme Corp in Paris ; Bob owns a dog named Rex and a red car ."
TOKENS = tokenize(TOKENIZED_TEXT)


@st.composite
def token_aligned_spans(draw):
    """Non-overlapping spans on token boundaries: exactly what BIO tags can express."""
    spans, position = [], 0
    while position < len(TOKENS):
        position += draw(st.integers(0, 3))
        if position >= len(TOKENS):
            break
        length = draw(st.integers(1, 3))
        last = min(len(TOKENS), position + length) - 1
        spans.append(
            {
                "start": TOKENS[position][0],
                "end": TOKENS[last][1],
                "label": draw(st.sampled_from(LABELS)),
            }
        )
        position = last + 1
    return {"spans": spans}


@REFERENCE_SETTINGS
@given(a=token_aligned_spans(), b=token_aligned_spans())
def test_strict_span_f1_matches_seqeval(a, b):
    # seqeval scores "no entities anywhere" 0 (with a warning); Assay scores it 1.
    assume(a["spans"] or b["spans"])
    ours = KINDS["ner"].compare(a, b, {"labels": []}).score
    predicted, truth = [bio_tags(TOKENS, a["spans"])], [bio_tags(TOKENS, b["spans"])]
    assert ours == pytest.approx(f1_score(truth, predicted), abs=1e-9)
    assert ours == pytest.approx(f1_score(truth, predicted, mode="strict", scheme=IOB2), abs=1e-9)


# --- polygon: rasterised IoU ---------------------------------------------------------------------

# pycocotools rasterises polygons onto the pixel grid, so its IoU is an estimate whose error
# grows with perimeter over area. For polygons of 1,000 px² and more the two agree within 0.03;
# smaller ones (a thin 560 px² star differed by 0.032) are left out of the comparison.
RASTER_TOLERANCE = 0.03
RASTER_MIN_AREA = 1_000


@st.composite
def overlapping_polygons(draw):
    """A polygon and either another one or a moved, rescaled copy, so IoU spans (0, 1)."""
    a = draw(polygon_points())
    if draw(st.booleans()):
        return a, draw(polygon_points())
    dx, dy = draw(st.integers(-30, 30)), draw(st.integers(-30, 30))
    scale = draw(st.sampled_from([0.8, 1.0, 1.15]))
    cx, cy = np.mean(a, axis=0)
    b = [[cx + (x - cx) * scale + dx, cy + (y - cy) * scale + dy] for x, y in a]
    assume(all(0 <= x <= 640 and 0 <= y <= 480 for x, y in b))  # the raster clips the rest
    return a, b


@REFERENCE_SETTINGS
@given(pair=overlapping_polygons())
def test_polygon_iou_agrees_with_a_rasterised_estimate(pair):
    a, b = pair
    shapes = make_polygons([np.array(a), np.array(b)])
    assume(min(shapes[0].area, shapes[1].area) >= RASTER_MIN_AREA)
    ours = polygon_iou_matrix(shapes[:1], shapes[1:], np.ones((1, 1), dtype=bool))[0, 0]
    rles = mask_utils.frPyObjects([np.ravel(a).tolist(), np.ravel(b).tolist()], 480, 640)
    reference = mask_utils.iou([rles[0]], [rles[1]], [0])[0, 0]
    assert ours == pytest.approx(reference, abs=RASTER_TOLERANCE)
