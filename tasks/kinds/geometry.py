"""Vectorised overlap measures: box IoU, polygon IoU and temporal IoU of frame ranges.

Similarity matrices are computed for all pairs at once with numpy (and shapely 2's vectorised
functions for polygons); the hot comparison paths contain no Python loop over pairs.
"""

from __future__ import annotations

import numpy as np
import shapely


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of every pair of boxes given as (x, y, w, h) rows.

    Continuous coordinates, no "+1 pixel" convention: the same definition as pycocotools' bbox IoU
    (with iscrowd=0) and py-motmetrics'.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax1, ay1 = a[:, 0:1], a[:, 1:2]
    ax2, ay2 = ax1 + a[:, 2:3], ay1 + a[:, 3:4]
    bx1, by1 = b[:, 0], b[:, 1]
    bx2, by2 = bx1 + b[:, 2], by1 + b[:, 3]
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def paired_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of the boxes a[k] and b[k] for every k (rows of x, y, w, h)."""
    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def make_polygons(rings: list[list]) -> np.ndarray:
    """Build shapely polygons from lists (or arrays) of [x, y] points in one vectorised call."""
    if not len(rings):
        return np.empty(0, dtype=object)
    counts = np.fromiter((len(r) for r in rings), np.int64, len(rings))
    coords = np.array([point for ring in rings for point in ring], dtype=float).reshape(-1, 2)
    ring_index = np.repeat(np.arange(len(rings)), counts)
    return shapely.polygons(shapely.linearrings(coords, indices=ring_index))


def polygon_iou_matrix(
    a: np.ndarray, b: np.ndarray, admissible: np.ndarray, *, min_iou: float = 0.0
) -> np.ndarray:
    """Return the IoU of every admissible pair of shapely polygons; other pairs get 0.

    Exact intersections are costly, so pairs are first bounded from above without them: the
    intersection is at most the intersection of the bounding boxes and the union at least the
    larger area. Pairs whose bound is below `min_iou` cannot be a match and are left at 0.
    """
    iou = np.zeros((len(a), len(b)))
    if len(a) == 0 or len(b) == 0 or not admissible.any():
        return iou
    area_a, area_b = shapely.area(a), shapely.area(b)
    box_a, box_b = shapely.bounds(a), shapely.bounds(b)
    iw = np.minimum(box_a[:, None, 2], box_b[None, :, 2]) - np.maximum(
        box_a[:, None, 0], box_b[None, :, 0]
    )
    ih = np.minimum(box_a[:, None, 3], box_b[None, :, 3]) - np.maximum(
        box_a[:, None, 1], box_b[None, :, 1]
    )
    box_inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    larger = np.maximum(area_a[:, None], area_b[None, :])
    candidate = admissible & (box_inter > 0) & (box_inter >= min_iou * larger)
    rows, cols = np.nonzero(candidate)
    if len(rows):
        inter = shapely.area(shapely.intersection(a[rows], b[cols]))
        union = area_a[rows] + area_b[cols] - inter
        iou[rows, cols] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def frame_range_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the temporal IoU of every pair of inclusive frame ranges (start, end) rows.

    Frames are discrete, so a range [s, e] covers e - s + 1 frames and [5, 5] is one frame long.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    inter = np.clip(inter, 0, None)
    length_a = a[:, 1] - a[:, 0] + 1
    length_b = b[:, 1] - b[:, 0] + 1
    union = length_a[:, None] + length_b[None, :] - inter
    return inter / union


def keypoint_box(keypoints: list) -> list[float]:
    """Return the (x, y, w, h) box around the labelled (v > 0) keypoints of one instance."""
    xs = [x for x, _, v in keypoints if v > 0]
    ys = [y for _, y, v in keypoints if v > 0]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
