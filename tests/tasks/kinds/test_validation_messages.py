"""Validation reports every problem with its JSON path and a reason a person can act on."""

import pytest

from tasks.kinds import KINDS, PayloadInvalid, ValidationIssue
from tasks.kinds.validation import MAX_ITEMS, MAX_POLYGON_POINTS
from tests.tasks.kinds.strategies import (
    IMAGE,
    KEYPOINT_SCHEMA,
    RELATION_SCHEMA,
    SCHEMA,
    TEXT,
    VIDEO,
)

SHORT_TEXT = {"text": "Ada Lovel."}  # 10 characters


def messages(key, payload, schema=SCHEMA, data=IMAGE):
    return [str(issue) for issue in KINDS[key].validate_payload(payload, schema, data)]


def box(**fields):
    return {"label": "car", "x": 10, "y": 10, "w": 20, "h": 20, **fields}


def test_an_issue_reads_as_path_then_reason():
    assert str(ValidationIssue("boxes[2].x", "650 is outside the image width 640")) == (
        "boxes[2].x: 650 is outside the image width 640"
    )
    assert str(ValidationIssue("", "expected an object, got array of 0")) == (
        "expected an object, got array of 0"
    )


def test_check_payload_raises_one_exception_with_every_issue():
    payload = {"boxes": [box(x=650), box(label="cat")]}
    with pytest.raises(PayloadInvalid) as raised:
        KINDS["bbox"].check_payload(payload, SCHEMA, IMAGE)
    assert [str(i) for i in raised.value.issues] == [
        "boxes[0].x: 650 is outside the image width 640",
        'boxes[1].label: "cat" is not in the schema',
    ]


def test_a_valid_payload_passes_check_payload():
    KINDS["bbox"].check_payload({"boxes": [box()]}, SCHEMA, IMAGE)


def test_unknown_labels_are_named():
    assert messages("classification", {"label": "cat"}) == ['label: "cat" is not in the schema']
    assert messages("multilabel", {"labels": ["car", "cat", "car"]}) == [
        'labels[1]: "cat" is not in the schema',
        'labels[2]: duplicate "car" (also labels[0])',
    ]
    assert messages("bbox", {"boxes": [box(label="cat")]}) == [
        'boxes[0].label: "cat" is not in the schema'
    ]


def test_missing_and_extra_fields_are_reported_at_their_path():
    assert messages("bbox", {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 2, "colour": 3}]}) == [
        "boxes[0].h: this field is required",
        "boxes[0].colour: unexpected field",
    ]
    assert messages("bbox", {}) == ["boxes: this field is required"]
    assert messages("bbox", {"boxes": [], "extra": 1}) == ["extra: unexpected field"]
    assert messages("bbox", []) == ["expected an object, got array of 0"]


def test_booleans_nan_and_infinity_are_not_numbers():
    payload = {"boxes": [box(x=True, y=float("nan"), w=float("inf"), h="20")]}
    assert messages("bbox", payload) == [
        "boxes[0].x: expected a number, got boolean true",
        "boxes[0].y: expected a finite number, got NaN",
        "boxes[0].w: expected a finite number, got Infinity",
        'boxes[0].h: expected a number, got string "20"',
    ]


def test_boxes_must_lie_inside_the_image_and_have_a_size():
    payload = {"boxes": [box(x=650), box(x=600, w=100), box(y=-1), box(w=0, h=-5)]}
    assert messages("bbox", payload) == [
        "boxes[0].x: 650 is outside the image width 640",
        "boxes[1].w: x + w = 700 is outside the image width 640",
        "boxes[2].y: -1 is outside the image height 480",
        "boxes[3].w: 0 is not positive",
        "boxes[3].h: -5 is not positive",
    ]


def test_a_box_ending_exactly_at_the_edge_is_inside():
    assert messages("bbox", {"boxes": [box(x=600, w=40, y=0, h=480)]}) == []


def test_payload_size_is_bounded_before_items_are_read():
    payload = {"boxes": [box()] * (MAX_ITEMS + 1)}
    assert messages("bbox", payload) == ["boxes: has 1001 items; the limit is 1000"]
    points = [[1, 1]] * (MAX_POLYGON_POINTS + 1)
    assert messages("polygon", {"polygons": [{"label": "car", "points": points}]}) == [
        "polygons[0].points: has 10001 points; the limit is 10000"
    ]


def test_polygons_must_be_simple_with_three_points_inside_the_image():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    payload = {
        "polygons": [
            {"label": "car", "points": [[0, 0], [10, 10]]},
            {"label": "car", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]},  # a bow tie
            {"label": "car", "points": [[0, 0], [5, 5], [10, 10]]},
            {"label": "car", "points": [[0, 0], [700, 0], [10, True]]},
            {"label": "car", "points": [[0, 0], [10, 0, 1], [10, 10]]},
            {"label": "car", "points": square},
        ]
    }
    assert messages("polygon", payload) == [
        "polygons[0].points: has 2 points; a polygon needs at least 3",
        "polygons[3].points[1][0]: 700 is outside the image width 640",
        "polygons[3].points[2][1]: expected a number, got boolean true",
        "polygons[4].points[1]: expected [x, y], got array of 3",
        "polygons[1].points: the polygon intersects itself",
        "polygons[2].points: the polygon has no area",
    ]


def keypoints(*points):
    return {"instances": [{"label": "car", "keypoints": list(points)}]}


def test_keypoints_follow_the_schema():
    five = [[10, 10, 2]] * 5
    assert messages("keypoints", keypoints(*five[:4]), KEYPOINT_SCHEMA) == [
        "instances[0].keypoints: has 4 keypoints; the schema defines 5"
    ]
    assert messages("keypoints", keypoints(*five, [1, 1, 2]), KEYPOINT_SCHEMA) == [
        "instances[0].keypoints: has 6 keypoints; the schema defines 5"
    ]
    bad = [[10, 10, 3], [10, 10, 2.0], [700, 10, 2], [10, 10], [10, 10, 2]]
    assert messages("keypoints", keypoints(*bad), KEYPOINT_SCHEMA) == [
        "instances[0].keypoints[0][2]: visibility 3 is not 0, 1 or 2",
        "instances[0].keypoints[1][2]: expected an integer, got 2",
        "instances[0].keypoints[2][0]: 700 is outside the image width 640",
        "instances[0].keypoints[3]: expected [x, y, v], got array of 2",
    ]
    assert messages("keypoints", keypoints(*[[0, 0, 0]] * 5), KEYPOINT_SCHEMA) == [
        "instances[0].keypoints: at least one keypoint must be labelled (v = 1 or 2)"
    ]


def test_a_keypoint_instance_bbox_is_a_box_inside_the_image():
    payload = keypoints(*[[10, 10, 2]] * 5)
    payload["instances"][0]["bbox"] = [600, 10, 50, 0]
    assert messages("keypoints", payload, KEYPOINT_SCHEMA) == [
        "instances[0].bbox[2]: x + w = 650 is outside the image width 640",
        "instances[0].bbox[3]: 0 is not positive",
    ]
    payload["instances"][0]["bbox"] = [1, 2, 3]
    assert messages("keypoints", payload, KEYPOINT_SCHEMA) == [
        "instances[0].bbox: expected [x, y, w, h], got array of 3"
    ]


def span(start, end, label="car"):
    return {"start": start, "end": end, "label": label}


def test_spans_must_be_non_empty_ranges_of_the_text():
    payload = {"spans": [span(5, 12), span(5, 5), span(6, 3), span(-1, 2), span(0, 4), span(0, 4)]}
    assert messages("ner", payload, data=SHORT_TEXT) == [
        "spans[0]: end 12 is beyond the text length 10",
        "spans[1]: the span is empty (start = end = 5)",
        "spans[2]: end 3 is before start 6",
        "spans[3]: start -1 is before the start of the text",
        "spans[5]: duplicate of spans[4]",
    ]


def test_span_offsets_are_integers():
    assert messages("ner", {"spans": [span(1.5, 3), span(False, 2)]}, data=SHORT_TEXT) == [
        "spans[0].start: expected an integer, got 1.5",
        "spans[1].start: expected an integer, got boolean false",
    ]


def test_relations_must_join_existing_distinct_spans():
    payload = {
        "spans": [
            {"id": "T1", **span(0, 5)},
            {"id": "T2", **span(6, 10)},
            {"id": "T1", **span(11, 15)},
            {"id": 3, **span(16, 20)},
        ],
        "relations": [
            {"from": "T2", "to": "T9", "label": "works_for"},
            {"from": "T2", "to": "T2", "label": "owns"},
            {"from": "T2", "to": "T1", "label": "likes"},
            {"from": "T2", "to": 3, "label": "owns"},
            {"from": "T2", "to": 3, "label": "owns"},
            {"from": "T2", "to": "3", "label": "owns"},
            {"from": "T1", "to": 3, "label": "owns"},  # T1 is ambiguous: reported once, above
        ],
    }
    assert messages("relations", payload, RELATION_SCHEMA, TEXT) == [
        'spans[2].id: duplicate id "T1" (also spans[0])',
        'relations[0].to: no span has id "T9"',
        "relations[1]: a relation cannot link a span to itself",
        'relations[2].label: "likes" is not in the schema',
        "relations[4]: duplicate of relations[3]",
        'relations[5].to: no span has id "3"',
    ]


def test_entity_links_need_a_kb_id():
    payload = {"spans": [{"start": 0, "end": 5}, {"start": 0, "end": 5, "kb_id": ""}]}
    assert messages("entity_linking", payload, data=TEXT) == [
        "spans[0].kb_id: this field is required",
        "spans[1].kb_id: must not be empty",
    ]


def frame(n, **fields):
    return {"frame": n, "x": 10, "y": 10, "w": 20, "h": 20, **fields}


def test_tracks_have_unique_ids_and_frames_inside_the_clip():
    payload = {
        "tracks": [
            {"id": 7, "label": "car", "frames": [frame(0), frame(40), frame(3), frame(3)]},
            {"id": 7, "label": "car", "frames": [frame(1, x=310)]},
            {"id": "a", "label": "car", "frames": []},
        ]
    }
    assert messages("video_tracks", payload, data=VIDEO) == [
        "tracks[0].frames[1].frame: frame 40 is outside the clip (frame_count 40)",
        "tracks[0].frames[3]: duplicate frame 3 (also frames[2])",
        "tracks[1].id: duplicate id 7 (also tracks[0])",
        "tracks[1].frames[0].w: x + w = 330 is outside the image width 320",
        "tracks[2].frames: a track needs at least one frame",
    ]


def test_events_end_at_or_after_their_start_inside_the_clip():
    payload = {
        "events": [
            {"label": "car", "start_frame": 5, "end_frame": 3},
            {"label": "car", "start_frame": 0, "end_frame": 40},
            {"label": "car", "start_frame": 39, "end_frame": 39},
        ]
    }
    assert messages("video_events", payload, data=VIDEO) == [
        "events[0]: end_frame 3 is before start_frame 5",
        "events[1].end_frame: frame 40 is outside the clip (frame_count 40)",
    ]


# --- task data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        ("bbox", {"width": 0, "height": True}, ["width: 0 is not positive", "height: expected an integer, got boolean true"]),
        ("polygon", {"width": 640}, ["height: this field is required"]),
        ("keypoints", {"width": 640.0, "height": 480}, ["width: expected an integer, got 640"]),
        ("ner", {"text": None}, ["text: expected a string, got null"]),
        ("relations", {}, ["text: this field is required"]),
        ("entity_linking", [], ["expected an object, got array of 0"]),
        ("video_tracks", {"frame_count": 10}, ["width: this field is required", "height: this field is required"]),
        ("video_events", {"frame_count": 0}, ["frame_count: 0 is not positive"]),
        ("classification", "text", ['expected an object, got string "text"']),
    ],
)  # fmt: skip
def test_task_data_needs_what_the_kind_reads(key, data, expected):
    assert [str(i) for i in KINDS[key].validate_task_data(data)] == expected


@pytest.mark.parametrize(
    ("key", "data"),
    [
        ("classification", {"anything": [1, 2]}),
        ("multilabel", {}),
        ("bbox", IMAGE),
        ("ner", {"text": ""}),
        ("video_events", {"frame_count": 1}),
        ("video_tracks", VIDEO),
    ],
)
def test_task_data_accepts_what_the_kind_needs(key, data):
    assert KINDS[key].validate_task_data(data) == []


def test_a_payload_on_invalid_task_data_reports_the_data():
    assert messages("bbox", {"boxes": [box()]}, data={"width": 640}) == [
        "data.height: this field is required"
    ]


# --- schemas ---------------------------------------------------------------------------------


def schema_messages(key, schema):
    return [str(issue) for issue in KINDS[key].validate_schema(schema)]


def test_label_schema_names_are_unique_and_colours_hex():
    schema = {
        "labels": [
            {"name": "car", "color": "#ff0000"},
            {"name": "car"},
            {"name": ""},
            {"name": "dog", "color": "red"},
            {"name": "bus", "colour": "#fff"},
        ],
        "error_tags": ["loose", "loose"],
    }
    assert schema_messages("bbox", schema) == [
        'labels[1].name: duplicate "car" (also labels[0])',
        "labels[2].name: must not be empty",
        'labels[3].color: "red" is not a colour like "#ff0000"',
        "labels[4].colour: unexpected field",
        'error_tags[1]: duplicate "loose" (also error_tags[0])',
    ]
    assert schema_messages("bbox", {"labels": []}) == ["labels: needs at least 1 label"]
    assert schema_messages("entity_linking", {"labels": []}) == []


def test_keypoint_schema_has_sigmas_and_a_valid_skeleton():
    schema = {
        "labels": [{"name": "person"}],
        "keypoints": ["nose", "eye", "ear"],
        "sigmas": [0.1, 0, 0.2, 0.3],
        "skeleton": [[0, 1], [1, 3], [2, 2], [0]],
    }
    assert schema_messages("keypoints", schema) == [
        "sigmas: has 4 values; the schema defines 3 keypoints",
        "skeleton[1][1]: keypoint index 3 is out of range (3 keypoints)",
        "skeleton[2]: an edge must join two different keypoints",
        "skeleton[3]: expected [i, j], got array of 1",
    ]
    assert schema_messages("keypoints", {**schema, "sigmas": [0.1, 0, 0.2]}) == [
        "sigmas[1]: 0 is not positive",
        "skeleton[1][1]: keypoint index 3 is out of range (3 keypoints)",
        "skeleton[2]: an edge must join two different keypoints",
        "skeleton[3]: expected [i, j], got array of 1",
    ]
    assert schema_messages("keypoints", KEYPOINT_SCHEMA) == []


def test_relation_schema_needs_relation_types():
    assert schema_messages("relations", SCHEMA) == ["relation_types: this field is required"]
    assert schema_messages("relations", RELATION_SCHEMA) == []
