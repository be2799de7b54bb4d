import contextlib
import io
import json
import types

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tasks.kinds import KINDS, UnknownExportFormat
from tasks.kinds.formats.coco import coco_chunks, keypoint_annotations
from tests.tasks.kinds.strategies import IMAGE, KEYPOINT_SCHEMA, SCHEMA


def test_jsonl_streams_one_object_per_task():
    items = iter([(1, {"text": "a"}, {"label": "car"}), ("t-2", {}, {"label": "dog"})])
    chunks = KINDS["classification"].export("jsonl", items, SCHEMA)
    assert isinstance(chunks, types.GeneratorType)
    lines = list(chunks)
    assert [json.loads(line) for line in lines] == [
        {"external_id": 1, "data": {"text": "a"}, "annotation": {"label": "car"}},
        {"external_id": "t-2", "data": {}, "annotation": {"label": "dog"}},
    ]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)


def test_an_unoffered_format_is_refused():
    with pytest.raises(UnknownExportFormat):
        KINDS["classification"].export("coco", [], SCHEMA)


def coco(key, items, schema=SCHEMA):
    return json.loads("".join(KINDS[key].export("coco", items, schema)))


def test_bbox_exports_coco():
    payload = {"boxes": [{"label": "dog", "x": 10, "y": 20, "w": 30, "h": 40}]}
    dataset = coco(
        "bbox", [("task-9", IMAGE, payload), (10, {**IMAGE, "file_name": "b.jpg"}, {"boxes": []})]
    )
    assert dataset["images"] == [
        {"id": 1, "width": 640, "height": 480, "file_name": "street.jpg", "external_id": "task-9"},
        {"id": 2, "width": 640, "height": 480, "file_name": "b.jpg", "external_id": 10},
    ]
    assert dataset["annotations"] == [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 3,
            "bbox": [10, 20, 30, 40],
            "area": 1200,
            "iscrowd": 0,
        }
    ]
    assert [c["name"] for c in dataset["categories"]] == ["car", "person", "dog"]
    assert [c["id"] for c in dataset["categories"]] == [1, 2, 3]


def test_coco_names_an_image_by_the_client_id_when_its_data_names_no_file():
    payload = {"boxes": [{"label": "car", "x": 10, "y": 20, "w": 30, "h": 40}]}
    dataset = coco("bbox", [("scan-1", {"width": 640, "height": 480}, payload)])
    assert dataset["images"] == [
        {"id": 1, "width": 640, "height": 480, "file_name": "scan-1", "external_id": "scan-1"}
    ]


def test_pycocotools_reads_the_coco_export_as_ground_truth():
    boxes = [{"label": "car", "x": 10, "y": 20, "w": 30, "h": 40}]
    items = [("a", IMAGE, {"boxes": boxes}), (2, {**IMAGE, "file_name": "b.jpg"}, {"boxes": []})]
    dataset = coco("bbox", items)
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
        detections = truth.loadRes([{**a, "score": 1.0} for a in dataset["annotations"]])
        evaluator = COCOeval(truth, detections, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert [image["external_id"] for image in truth.loadImgs([1, 2])] == ["a", 2]
    assert evaluator.stats[0] == pytest.approx(1.0)  # the export scored against itself


def test_polygon_exports_coco_segmentation_with_its_area_and_bounds():
    payload = {"polygons": [{"label": "car", "points": [[0, 0], [40, 0], [40, 30]]}]}
    (annotation,) = coco("polygon", [(1, IMAGE, payload)])["annotations"]
    assert annotation["segmentation"] == [[0, 0, 40, 0, 40, 30]]
    assert annotation["area"] == pytest.approx(600)
    assert annotation["bbox"] == [0, 0, 40, 30]


def test_keypoints_export_coco_with_names_and_a_one_based_skeleton():
    points = [[10, 10, 2], [20, 30, 1], [0, 0, 0], [50, 10, 2], [0, 0, 0]]
    payload = {"instances": [{"label": "person", "keypoints": points}]}
    dataset = coco("keypoints", [(1, IMAGE, payload)], KEYPOINT_SCHEMA)
    category = dataset["categories"][1]
    assert category["keypoints"] == KEYPOINT_SCHEMA["keypoints"]
    assert category["skeleton"] == [[1, 2], [1, 3], [2, 4], [3, 5]]
    (annotation,) = dataset["annotations"]
    assert annotation["keypoints"] == [10, 10, 2, 20, 30, 1, 0, 0, 0, 50, 10, 2, 0, 0, 0]
    assert annotation["num_keypoints"] == 3
    assert annotation["bbox"] == [10, 10, 40, 20]  # around the labelled keypoints: the OKS scale
    assert annotation["area"] == 800


def test_coco_numbers_annotations_across_images():
    payload = {"instances": [{"label": "car", "keypoints": [[1, 1, 2]] * 5, "bbox": [0, 0, 4, 4]}]}
    empty = {"instances": []}
    items = [
        (1, IMAGE, payload),
        (2, IMAGE, empty),
        (3, IMAGE, {"instances": [payload["instances"][0]] * 2}),
    ]
    chunks = coco_chunks(items, KEYPOINT_SCHEMA, keypoint_annotations, with_keypoints=True)
    dataset = json.loads("".join(chunks))
    assert [image["id"] for image in dataset["images"]] == [1, 2, 3]
    assert [(a["id"], a["image_id"]) for a in dataset["annotations"]] == [(1, 1), (2, 3), (3, 3)]
    assert list(dataset) == ["images", "annotations", "categories"]


def test_coco_streams_images_before_the_last_task_is_read():
    payload = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 2, "h": 2}]}
    read = []

    def items():
        for n in range(1, 4):
            read.append(n)
            yield n, IMAGE, payload

    chunks = KINDS["bbox"].export("coco", items(), SCHEMA)
    assert next(chunks) == '{"images":['
    assert json.loads(next(chunks))["external_id"] == 1 and read == [1]
    rest = "".join(chunks)
    dataset = json.loads('{"images":[' + json.dumps({"id": 1}) + rest)
    assert len(dataset["images"]) == 3 and len(dataset["annotations"]) == 3


def test_coco_of_no_tasks_is_an_empty_dataset():
    dataset = json.loads("".join(KINDS["bbox"].export("coco", [], SCHEMA)))
    assert dataset["images"] == [] and dataset["annotations"] == []
    assert [c["name"] for c in dataset["categories"]] == [
        label["name"] for label in SCHEMA["labels"]
    ]


TEXT = "Ada Lovelace met Charles Babbage in London."


def test_ner_exports_conll_bio_lines_lazily():
    payload = {
        "spans": [
            {"start": 0, "end": 12, "label": "person"},
            {"start": 17, "end": 32, "label": "person"},
            {"start": 17, "end": 24, "label": "car"},  # overlaps a longer span: left out
            {"start": 36, "end": 42, "label": "dog"},
        ]
    }
    chunks = KINDS["ner"].export("conll", iter([(7, {"text": TEXT}, payload)]), SCHEMA)
    assert isinstance(chunks, types.GeneratorType)
    assert "".join(chunks) == (
        "# external_id = 7\n"
        "Ada B-person\nLovelace I-person\nmet O\nCharles B-person\nBabbage I-person\n"
        "in O\nLondon B-dog\n. O\n\n"
    )


def test_ner_exports_spacy_style_json_lines():
    payload = {
        "spans": [{"start": 36, "end": 42, "label": "dog"}, {"start": 0, "end": 3, "label": "car"}]
    }
    (line,) = KINDS["ner"].export("spacy", [(7, {"text": TEXT}, payload)], SCHEMA)
    assert json.loads(line) == {
        "text": TEXT,
        "entities": [[0, 3, "car"], [36, 42, "dog"]],
        "meta": {"external_id": 7},
    }
