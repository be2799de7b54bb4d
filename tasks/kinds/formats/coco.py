"""COCO JSON (https://cocodataset.org/#format-data) for bbox, polygon and keypoints.

Images are numbered 1..N in export order, because COCO ids must be integers and the client's
ids need not be; each image carries the client's id as `external_id`, and as its `file_name` when
the task's data names no file. Categories are numbered 1..K in schema order. Keypoint
categories carry the keypoint names and the skeleton, converted to COCO's 1-based indices.

A COCO file is one JSON object whose images and annotations are separate arrays. It is written
as it is read: images go out as they come, while annotations wait in a temporary file until the
images are done, so memory stays flat whatever the size of the project.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import shapely

from tasks.kinds.base import ExportFormat, ExportItem, Payload, Schema
from tasks.kinds.geometry import keypoint_box

# Task data fields that name the image file, in order of preference.
_FILE_NAME_FIELDS = ("file_name", "image", "image_url", "url")

# Build the COCO annotations of one payload: (payload, category id by label) -> annotations
# without "id" and "image_id", which the dataset assigns.
AnnotationBuilder = Callable[[Payload, dict[str, int]], Iterable[dict[str, Any]]]


def coco_chunks(
    items: Iterable[ExportItem],
    schema: Schema,
    build: AnnotationBuilder,
    *,
    with_keypoints: bool = False,
) -> Iterator[str]:
    """Yield the COCO dataset {"images", "annotations", "categories"} as JSON text, in pieces."""
    category_ids = {label["name"]: n for n, label in enumerate(schema["labels"], start=1)}
    categories = []
    for name, category_id in category_ids.items():
        category: dict[str, Any] = {"id": category_id, "name": name, "supercategory": ""}
        if with_keypoints:
            category["keypoints"] = list(schema["keypoints"])
            category["skeleton"] = [[i + 1, j + 1] for i, j in schema.get("skeleton", ())]
        categories.append(category)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as annotations:
        yield '{"images":['
        annotation_id = 0
        for image_id, (external_id, data, payload) in enumerate(items, start=1):
            image = {
                "id": image_id,
                "width": data["width"],
                "height": data["height"],
                "file_name": _file_name(external_id, data),
                "external_id": external_id,
            }
            yield ("," if image_id > 1 else "") + _dumps(image)
            for annotation in build(payload, category_ids):
                annotation_id += 1
                annotation.update(id=annotation_id, image_id=image_id, iscrowd=0)
                annotations.write(("," if annotation_id > 1 else "") + _dumps(annotation))
        yield '],"annotations":['
        annotations.seek(0)
        while chunk := annotations.read(1 << 16):
            yield chunk
        yield '],"categories":' + _dumps(categories) + "}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _file_name(external_id: Any, data: dict) -> str:
    for key in _FILE_NAME_FIELDS:
        if isinstance(data.get(key), str):
            return data[key]
    return str(external_id)


def bbox_annotations(payload: Payload, category_ids: dict[str, int]) -> Iterator[dict[str, Any]]:
    for box in payload["boxes"]:
        yield {
            "category_id": category_ids[box["label"]],
            "bbox": [box["x"], box["y"], box["w"], box["h"]],
            "area": box["w"] * box["h"],
        }


def polygon_annotations(payload: Payload, category_ids: dict[str, int]) -> Iterator[dict[str, Any]]:
    for polygon in payload["polygons"]:
        points = polygon["points"]
        shape = shapely.Polygon(points)
        x0, y0, x1, y1 = shape.bounds
        yield {
            "category_id": category_ids[polygon["label"]],
            "segmentation": [[coordinate for point in points for coordinate in point]],
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": shape.area,
        }


def keypoint_annotations(
    payload: Payload, category_ids: dict[str, int]
) -> Iterator[dict[str, Any]]:
    """Yield keypoint annotations whose bbox and area are the OKS scale Assay compares with."""
    for instance in payload["instances"]:
        keypoints = instance["keypoints"]
        bbox = instance.get("bbox") or keypoint_box(keypoints)
        yield {
            "category_id": category_ids[instance["label"]],
            "keypoints": [value for point in keypoints for value in point],
            "num_keypoints": sum(1 for point in keypoints if point[2] > 0),
            "bbox": list(bbox),
            "area": bbox[2] * bbox[3],
        }


def coco_format(build: AnnotationBuilder, *, with_keypoints: bool = False) -> ExportFormat:
    """Wrap an annotation builder as the kind's "coco" export format."""

    def write(items: Iterable[ExportItem], schema: Schema) -> Iterator[str]:
        return coco_chunks(items, schema, build, with_keypoints=with_keypoints)

    return ExportFormat("coco", "json", "application/json", write)


COCO_BBOX = coco_format(bbox_annotations)
COCO_POLYGON = coco_format(polygon_annotations)
COCO_KEYPOINTS = coco_format(keypoint_annotations, with_keypoints=True)
