"""Benchmark the annotation kinds: compare() and validate() speed on realistic payloads.

Run with `.venv/bin/python bench/kinds.py`. Prints calls per second and the median (p50) time per
call for every kind, the ratio against a reference implementation measured in the same run where
one exists, and whether each performance target is met. Not part of the test suite.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

from tasks.kinds import KINDS
from tasks.kinds.bbox import box_array
from tasks.kinds.formats.conll import bio_tags, tokenize
from tasks.kinds.geometry import box_iou_matrix
from tasks.kinds.keypoints import oks_matrix

WIDTH, HEIGHT = 1920, 1080
LABELS = ["car", "person", "bicycle", "truck", "dog"]
SCHEMA = {"labels": [{"name": name} for name in LABELS]}
# COCO's 17 person keypoints and their sigmas.
COCO_SIGMAS = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
]  # fmt: skip
KEYPOINT_SCHEMA = {
    **SCHEMA,
    "keypoints": [f"k{n}" for n in range(17)],
    "sigmas": COCO_SIGMAS,
}
RELATION_SCHEMA = {**SCHEMA, "relation_types": ["works_for", "owns", "near"]}
IMAGE = {"width": WIDTH, "height": HEIGHT}
VIDEO = {"width": WIDTH, "height": HEIGHT, "frame_count": 300}
# Performance targets from the issue: (kind, operation) -> p50 limit in seconds.
TARGETS = {("bbox", "compare"): 1e-3, ("polygon", "compare"): 5e-3, ("ner", "compare"): 0.2e-3}

rng = random.Random(7)


def jitter(value: float, spread: float, low: float, high: float) -> float:
    return min(high, max(low, value + rng.uniform(-spread, spread)))


# --- payloads ----------------------------------------------------------------------------------


def bbox_pair(count: int = 50) -> tuple[dict, dict]:
    a = []
    for _ in range(count):
        w, h = rng.uniform(30, 200), rng.uniform(30, 200)
        a.append(
            {
                "label": rng.choice(LABELS),
                "x": rng.uniform(0, WIDTH - w),
                "y": rng.uniform(0, HEIGHT - h),
                "w": w,
                "h": h,
            }
        )
    b = []
    for box in a:
        x = jitter(box["x"], 8, 0, WIDTH - box["w"])
        y = jitter(box["y"], 8, 0, HEIGHT - box["h"])
        b.append({**box, "x": x, "y": y})
    rng.shuffle(b)
    return {"boxes": a}, {"boxes": b}


def outline(cx: float, cy: float, radius: float, phase: float, points: int = 50) -> list:
    """Trace a smooth blob as an annotator would: 50 vertices, 2 px of hand jitter.

    Vertices go round the centre at increasing angles, so the polygon is always simple.
    """
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(points))
    result = []
    for t in angles:
        r = radius * (1 + 0.15 * math.sin(3 * t + phase) + 0.08 * math.cos(5 * t + 2 * phase))
        r += rng.uniform(-2, 2)
        result.append([cx + r * math.cos(t), cy + r * math.sin(t)])
    return result


def polygon_pair(count: int = 20) -> tuple[dict, dict]:
    """Two annotators tracing the same 20 objects independently (different vertices)."""
    a, b = [], []
    for _ in range(count):
        radius, phase = rng.uniform(40, 110), rng.uniform(0, 2 * math.pi)
        cx, cy = rng.uniform(150, WIDTH - 150), rng.uniform(150, HEIGHT - 150)
        label = rng.choice(LABELS)
        a.append({"label": label, "points": outline(cx, cy, radius, phase)})
        shift = rng.uniform(-3, 3)
        b.append({"label": label, "points": outline(cx + shift, cy - shift, radius, phase)})
    return {"polygons": a}, {"polygons": b}


def keypoint_pair(count: int = 10) -> tuple[dict, dict]:
    a, b = [], []
    for _ in range(count):
        x0, y0 = rng.uniform(0, WIDTH - 300), rng.uniform(0, HEIGHT - 400)
        points = [
            [x0 + rng.uniform(0, 300), y0 + rng.uniform(0, 400), rng.choice([0, 1, 2, 2])]
            for _ in range(17)
        ]
        points[0][2] = 2
        moved = [[jitter(x, 6, 0, WIDTH), jitter(y, 6, 0, HEIGHT), v] for x, y, v in points]
        a.append({"label": "person", "keypoints": points})
        b.append({"label": "person", "keypoints": moved, "bbox": [x0, y0, 300, 400]})
    schema_labels = {"labels": [{"name": "person"}]}
    KEYPOINT_SCHEMA.update(schema_labels)
    return {"instances": a}, {"instances": b}


TEXT = " ".join(f"word{n % 97}" for n in range(900))  # ~6,000 characters
TOKENS = tokenize(TEXT)


def span_pair(count: int = 100) -> tuple[dict, dict]:
    """100 two-token spans; the other annotator relabels 10 % and shortens 10 % by a token."""
    chosen = sorted(rng.sample(range(0, len(TOKENS) - 2, 3), count))
    a, b = [], []
    for i in chosen:
        span = {"start": TOKENS[i][0], "end": TOKENS[i + 1][1], "label": rng.choice(LABELS)}
        a.append(span)
        roll = rng.random()
        if roll < 0.1:
            b.append({**span, "label": rng.choice(LABELS)})
        elif roll < 0.2:
            b.append({**span, "end": TOKENS[i][1]})
        else:
            b.append(dict(span))
    rng.shuffle(b)
    return {"spans": a}, {"spans": b}


def relation_pair() -> tuple[dict, dict]:
    a, b = span_pair()
    for payload in (a, b):
        payload["spans"] = [{"id": f"T{n}", **s} for n, s in enumerate(payload["spans"])]
    ids_a = [s["id"] for s in a["spans"]]
    relations = []
    for _ in range(50):
        head, tail = rng.sample(range(len(ids_a)), 2)
        relations.append(
            {
                "from": ids_a[head],
                "to": ids_a[tail],
                "label": rng.choice(RELATION_SCHEMA["relation_types"]),
            }
        )
    unique = {(r["from"], r["to"], r["label"]): r for r in relations}
    a["relations"] = list(unique.values())
    by_key_b = {(s["start"], s["end"], s["label"]): s["id"] for s in b["spans"]}
    key_a = {s["id"]: (s["start"], s["end"], s["label"]) for s in a["spans"]}
    b["relations"] = [
        {**r, "from": by_key_b[key_a[r["from"]]], "to": by_key_b[key_a[r["to"]]]}
        for r in a["relations"]
        if key_a[r["from"]] in by_key_b and key_a[r["to"]] in by_key_b
    ]
    return a, b


def link_pair() -> tuple[dict, dict]:
    a, b = span_pair()
    for payload in (a, b):
        payload["spans"] = [
            {"start": s["start"], "end": s["end"], "kb_id": f"Q{s['start'] % 50}"}
            for s in payload["spans"]
        ]
    return a, b


def track_pair(count: int = 20, frames: int = 300) -> tuple[dict, dict]:
    a, b = [], []
    for n in range(count):
        x, y = rng.uniform(0, WIDTH - 400), rng.uniform(0, HEIGHT - 300)
        dx, dy = rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3)
        label = rng.choice(LABELS)
        boxes = [
            {"frame": f, "x": x + 100 + dx * f, "y": y + 100 + dy * f, "w": 120, "h": 90}
            for f in range(frames)
        ]
        a.append({"id": n, "label": label, "frames": boxes})
        switch = rng.randrange(frames)
        moved = [{**box, "x": jitter(box["x"], 6, 0, WIDTH - 120)} for box in boxes]
        b.append({"id": f"t{n}", "label": label, "frames": moved[:switch] + moved[switch + 5 :]})
    return {"tracks": a}, {"tracks": b}


def event_pair(count: int = 50) -> tuple[dict, dict]:
    a = []
    for _ in range(count):
        start = rng.randrange(0, 280)
        a.append(
            {
                "label": rng.choice(LABELS),
                "start_frame": start,
                "end_frame": start + rng.randrange(0, 20),
            }
        )
    b = [{**e, "end_frame": min(299, e["end_frame"] + rng.randrange(0, 3))} for e in a]
    return {"events": a}, {"events": b}


CASES: dict[str, tuple[str, tuple[dict, dict], dict, dict]] = {
    "classification": ("1 label", ({"label": "car"}, {"label": "dog"}), SCHEMA, IMAGE),
    "multilabel": (
        "3 vs 3 labels",
        ({"labels": LABELS[:3]}, {"labels": LABELS[1:4]}),
        SCHEMA,
        IMAGE,
    ),
    "bbox": ("50 vs 50 boxes", bbox_pair(), SCHEMA, IMAGE),
    "polygon": ("20 x 50-pt polygons", polygon_pair(), SCHEMA, IMAGE),
    "keypoints": ("10 x 17-kp instances", keypoint_pair(), KEYPOINT_SCHEMA, IMAGE),
    "ner": ("100 spans", span_pair(), SCHEMA, {"text": TEXT}),
    "relations": ("100 spans, 50 rels", relation_pair(), RELATION_SCHEMA, {"text": TEXT}),
    "entity_linking": ("100 linked spans", link_pair(), SCHEMA, {"text": TEXT}),
    "video_tracks": ("20 tracks x 300 fr", track_pair(), SCHEMA, VIDEO),
    "video_events": ("50 events", event_pair(), SCHEMA, VIDEO),
}


# --- timing --------------------------------------------------------------------------------------


def measure(call: Callable[[], object], budget: float = 0.4) -> tuple[float, float]:
    """Return (calls per second, p50 seconds per call) over about `budget` seconds."""
    call()  # warm up caches and lazy imports
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < budget or len(times) < 5:
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return len(times) / sum(times), statistics.median(times)


def ours_box_iou(a: dict, b: dict) -> Callable[[], object]:
    boxes_a, boxes_b = box_array(a["boxes"]), box_array(b["boxes"])
    return lambda: box_iou_matrix(boxes_a, boxes_b)


def reference_box_iou(a: dict, b: dict) -> Callable[[], object]:
    from pycocotools import mask as mask_utils

    boxes_a, boxes_b = box_array(a["boxes"]).tolist(), box_array(b["boxes"]).tolist()
    crowd = [0] * len(boxes_b)
    return lambda: mask_utils.iou(boxes_a, boxes_b, crowd)


def reference_oks(a: dict, b: dict) -> Callable[[], object]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_annotations = []
    for n, instance in enumerate(b["instances"], start=1):
        bbox = instance["bbox"]
        gt_annotations.append(
            {
                "id": n, "image_id": 1, "category_id": 1, "iscrowd": 0,
                "keypoints": np.ravel(instance["keypoints"]).tolist(),
                "num_keypoints": 17, "bbox": bbox, "area": bbox[2] * bbox[3],
            }
        )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": 1}],
            "annotations": gt_annotations,
            "categories": [{"id": 1, "name": "person"}],
        }
        gt.createIndex()
        dt = gt.loadRes(
            [
                {
                    "image_id": 1,
                    "category_id": 1,
                    "keypoints": np.ravel(i["keypoints"]).tolist(),
                    "score": 1.0,
                }
                for i in a["instances"]
            ]
        )
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.array(COCO_SIGMAS)
        evaluator._prepare()
    return lambda: evaluator.computeOks(1, 1)


def reference_idf1(a: dict, b: dict) -> Callable[[], object]:
    import motmetrics as mm

    def run() -> float:
        accumulator = mm.MOTAccumulator(auto_id=False)
        by_frame_a: dict[int, list] = {}
        by_frame_b: dict[int, list] = {}
        for payload, by_frame in ((a, by_frame_a), (b, by_frame_b)):
            for index, track in enumerate(payload["tracks"]):
                for f in track["frames"]:
                    by_frame.setdefault(f["frame"], []).append(
                        (index, [f["x"], f["y"], f["w"], f["h"]])
                    )
        for frame in sorted(set(by_frame_a) | set(by_frame_b)):
            gt, hyp = by_frame_b.get(frame, []), by_frame_a.get(frame, [])
            if gt and hyp:
                iou = mm.distances.boxiou(
                    np.array([x for _, x in gt])[:, None], np.array([x for _, x in hyp])[None, :]
                )
                distances = np.where(1 - iou > 0.5, np.nan, 1 - iou)
            else:
                distances = np.empty((len(gt), len(hyp)))
            accumulator.update([i for i, _ in gt], [i for i, _ in hyp], distances, frameid=frame)
        summary = mm.metrics.create().compute(accumulator, metrics=["idf1"], name="x")
        return float(summary["idf1"].iloc[0])

    return run


def reference_seqeval(a: dict, b: dict) -> Callable[[], object]:
    from seqeval.metrics import f1_score

    predicted, truth = [bio_tags(TOKENS, a["spans"])], [bio_tags(TOKENS, b["spans"])]
    return lambda: f1_score(truth, predicted)


# kind -> (what is compared, our callable factory, reference callable factory)
REFERENCES = {
    "bbox": (
        "IoU matrix vs pycocotools.mask.iou",
        lambda a, b: ours_box_iou(a, b),
        reference_box_iou,
    ),
    "keypoints": (
        "OKS matrix vs COCOeval.computeOks",
        lambda a, b: lambda: oks_matrix(a["instances"], b["instances"], COCO_SIGMAS),
        reference_oks,
    ),
    "video_tracks": (
        "compare() vs motmetrics IDF1",
        lambda a, b: lambda: KINDS["video_tracks"].compare(a, b, SCHEMA),
        reference_idf1,
    ),
    "ner": (
        "compare() vs seqeval f1_score",
        lambda a, b: lambda: KINDS["ner"].compare(a, b, SCHEMA),
        reference_seqeval,
    ),
}


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    return f"{seconds * 1e3:8.2f} ms"


def main() -> None:
    warnings.filterwarnings("ignore")
    print(
        f"{'kind':15} {'payload':22} {'compare/s':>10} {'p50':>12} {'validate/s':>11} {'p50':>12}  target"
    )
    print("-" * 100)
    verdicts = []
    for key, (description, (a, b), schema, data) in CASES.items():
        kind = KINDS[key]
        assert kind.validate_payload(a, schema, data) == [], (
            key,
            kind.validate_payload(a, schema, data)[:3],
        )
        assert kind.validate_payload(b, schema, data) == [], key
        compare_rate, compare_p50 = measure(lambda k=kind, a=a, b=b, s=schema: k.compare(a, b, s))
        validate_rate, validate_p50 = measure(
            lambda k=kind, a=a, s=schema, d=data: k.validate_payload(a, s, d)
        )
        target = TARGETS.get((key, "compare"))
        verdict = ""
        if target is not None:
            met = compare_p50 < target
            verdict = f"compare p50 < {fmt_time(target).strip()}: {'MET' if met else 'MISSED'}"
            verdicts.append(met)
        print(
            f"{key:15} {description:22} {compare_rate:10.0f} {fmt_time(compare_p50):>12} "
            f"{validate_rate:11.0f} {fmt_time(validate_p50):>12}  {verdict}"
        )
    print()
    print(
        f"{'reference':15} {'measured':38} {'ours p50':>12} {'reference p50':>14} {'speed-up':>9}  agree"
    )
    print("-" * 100)
    for key, (what, ours_factory, reference_factory) in REFERENCES.items():
        _, (a, b), _, _ = CASES[key]
        ours, reference = ours_factory(a, b), reference_factory(a, b)
        _, ours_p50 = measure(ours)
        _, reference_p50 = measure(reference, budget=1.0)
        agree = _agreement(key, ours(), reference())
        print(
            f"{key:15} {what:38} {fmt_time(ours_p50):>12} {fmt_time(reference_p50):>14} "
            f"{reference_p50 / ours_p50:8.1f}x  {agree}"
        )
    print()
    print("all targets met" if all(verdicts) else "SOME TARGETS MISSED")


def _agreement(key: str, ours: object, reference: object) -> str:
    if key in ("bbox", "keypoints"):
        difference = float(np.max(np.abs(np.asarray(ours) - np.asarray(reference))))
    else:
        difference = abs(ours.score - float(reference))  # type: ignore[attr-defined]
    return f"max |diff| = {difference:.1e}"


if __name__ == "__main__":
    main()
