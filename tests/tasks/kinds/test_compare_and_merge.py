"""Hand-worked comparisons and merges, one policy decision per test."""

import math

import pytest

from tasks.kinds import KINDS
from tests.tasks.kinds.strategies import KEYPOINT_SCHEMA, RELATION_SCHEMA, SCHEMA


def compare(key, a, b, schema=SCHEMA):
    return KINDS[key].compare(a, b, schema)


def box(x, y, w=10, h=10, label="car"):
    return {"label": label, "x": x, "y": y, "w": w, "h": h}


def test_bbox_scores_the_f1_of_matches_at_iou_one_half():
    a = {"boxes": [box(0, 0), box(100, 100), box(200, 200)]}
    # IoU with a[0] = 50/150 (no match), a[1] = 64/116 (match), a[2] different label (no match)
    b = {"boxes": [box(5, 0), box(102, 0 + 100, 10, 8), box(200, 200, label="dog")]}
    result = compare("bbox", a, b)
    assert result.details["matched"] == 1
    assert result.details["precision"] == pytest.approx(1 / 3)
    assert result.details["recall"] == pytest.approx(1 / 3)
    assert result.score == pytest.approx(1 / 3)
    assert result.details["mean_iou"] == pytest.approx(64 / 116)


def test_bbox_iou_of_exactly_one_half_counts():
    a = {"boxes": [box(0, 0, 20, 10)]}
    b = {"boxes": [box(0, 0, 10, 10)]}
    assert compare("bbox", a, b).score == 1.0


def test_bbox_matching_maximises_total_iou_not_greedy_order():
    # Greedy would pair a[0] with b[0] (IoU 0.82) and leave a[1] alone; Hungarian pairs both.
    a = {"boxes": [box(0, 0, 100, 100), box(0, 30, 100, 100)]}
    b = {"boxes": [box(0, 10, 100, 100), box(0, -0, 100, 60)]}
    result = compare("bbox", a, b)
    assert result.details["matched"] == 2


def test_empty_payloads_agree_and_one_empty_side_scores_zero():
    assert compare("bbox", {"boxes": []}, {"boxes": []}).score == 1.0
    assert compare("bbox", {"boxes": [box(0, 0)]}, {"boxes": []}).score == 0.0
    assert compare("multilabel", {"labels": []}, {"labels": []}).score == 1.0
    assert (
        compare("ner", {"spans": []}, {"spans": [{"start": 0, "end": 1, "label": "car"}]}).score
        == 0
    )


def test_multilabel_scores_the_jaccard_index():
    assert compare(
        "multilabel", {"labels": ["car", "dog"]}, {"labels": ["dog", "person"]}
    ).score == (pytest.approx(1 / 3))


def square(x, y, size=10, label="car"):
    return {"label": label, "points": [[x, y], [x + size, y], [x + size, y + size], [x, y + size]]}


def test_polygon_compares_by_exact_polygon_iou():
    triangle = {"label": "car", "points": [[0, 0], [10, 0], [0, 10]]}
    result = compare("polygon", {"polygons": [triangle]}, {"polygons": [square(0, 0)]})
    assert result.details["mean_iou"] == pytest.approx(0.5)
    assert result.score == 1.0
    far = compare("polygon", {"polygons": [square(0, 0)]}, {"polygons": [square(6, 0)]})
    assert far.score == 0.0  # IoU 40 / 160


def instance(points, bbox=None, label="person"):
    result = {"label": label, "keypoints": points}
    if bbox:
        result["bbox"] = bbox
    return result


def test_keypoints_use_the_reference_scale_so_the_comparison_is_not_symmetric():
    small = instance([[10, 10, 2], [14, 10, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0]], [5, 5, 10, 10])
    large = instance([[11, 10, 2], [14, 11, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0]], [0, 0, 100, 100])
    a, b = {"instances": [small]}, {"instances": [large]}
    forward = compare("keypoints", a, b, KEYPOINT_SCHEMA).score
    backward = compare("keypoints", b, a, KEYPOINT_SCHEMA).score
    assert forward > backward  # one pixel off matters less on a large reference
    sigma = 0.026
    expected = (math.exp(-1 / (8 * sigma**2 * 10_000)) + math.exp(-1 / (8 * 0.025**2 * 10_000))) / 2
    assert forward == pytest.approx(expected, abs=1e-9)


def test_keypoints_unmatched_instances_count_zero():
    one = instance([[10, 10, 2]] + [[0, 0, 0]] * 4, [0, 0, 20, 20])
    result = compare("keypoints", {"instances": [one]}, {"instances": [one, one]}, KEYPOINT_SCHEMA)
    assert result.score == pytest.approx(0.5)


def test_ner_is_strict_with_partial_overlap_in_details():
    a = {
        "spans": [{"start": 0, "end": 5, "label": "car"}, {"start": 10, "end": 14, "label": "dog"}]
    }
    b = {
        "spans": [{"start": 0, "end": 5, "label": "car"}, {"start": 10, "end": 15, "label": "dog"}]
    }
    result = compare("ner", a, b)
    assert result.score == pytest.approx(0.5)
    assert result.details["partial_f1"] == 1.0


def test_relations_match_spans_by_offsets_and_label_not_by_id():
    a = {
        "spans": [{"id": "T1", "start": 0, "end": 5, "label": "person"}, {"id": "T2", "start": 16, "end": 25, "label": "car"}],
        "relations": [{"from": "T1", "to": "T2", "label": "owns"}],
    }  # fmt: skip
    b = {
        "spans": [{"id": 9, "start": 16, "end": 25, "label": "car"}, {"id": 4, "start": 0, "end": 5, "label": "person"}],
        "relations": [{"from": 4, "to": 9, "label": "owns"}],
    }  # fmt: skip
    assert compare("relations", a, b, RELATION_SCHEMA).score == 1.0
    reversed_b = {**b, "relations": [{"from": 9, "to": 4, "label": "owns"}]}
    assert compare("relations", a, reversed_b, RELATION_SCHEMA).score == 0.0  # direction matters


def test_entity_linking_scores_kb_ids_and_reports_mentions():
    a = {
        "spans": [{"start": 0, "end": 5, "kb_id": "Q7259"}, {"start": 9, "end": 12, "kb_id": "Q1"}]
    }
    b = {
        "spans": [
            {"start": 0, "end": 5, "kb_id": "Q7259", "label": "person"},
            {"start": 9, "end": 12, "kb_id": "Q2"},
        ]
    }
    result = compare("entity_linking", a, b)
    assert result.score == pytest.approx(0.5)
    assert result.details["mention_f1"] == 1.0


def event(start, end, label="car"):
    return {"label": label, "start_frame": start, "end_frame": end}


def test_video_event_end_frames_are_inclusive():
    # [0, 1] and [1, 2] share frame 1 of frames 0..2: tIoU 1/3, no match.
    assert compare("video_events", {"events": [event(0, 1)]}, {"events": [event(1, 2)]}).score == 0
    # [0, 3] and [2, 5] share frames 2..3 of 0..5: tIoU 2/6; [0, 3] and [1, 3]: 3/4, a match.
    result = compare("video_events", {"events": [event(0, 3)]}, {"events": [event(1, 3)]})
    assert result.score == 1.0
    assert result.details["mean_tiou"] == pytest.approx(0.75)
    assert compare("video_events", {"events": [event(5, 5)]}, {"events": [event(5, 5)]}).score == 1


def test_video_tracks_only_match_tracks_of_the_same_label():
    frames = [{"frame": f, "x": 0, "y": 0, "w": 10, "h": 10} for f in range(4)]
    a = {"tracks": [{"id": 1, "label": "car", "frames": frames}]}
    b = {"tracks": [{"id": 1, "label": "dog", "frames": frames}]}
    assert compare("video_tracks", a, b).score == 0.0
    assert compare("video_tracks", a, a).details["idtp"] == 4


# --- merging -------------------------------------------------------------------------------------


def merge(key, payloads, weights=None, schema=SCHEMA, **options):
    return KINDS[key].merge(payloads, weights, schema, **options)


def test_classification_takes_the_weighted_plurality():
    payloads = [{"label": "car"}, {"label": "dog"}, {"label": "dog"}]
    assert merge("classification", payloads).payload == {"label": "dog"}
    assert merge("classification", payloads).confidence == pytest.approx(2 / 3)
    weighted = merge("classification", payloads, [3, 1, 1])
    assert weighted.payload == {"label": "car"}
    assert weighted.confidence == pytest.approx(0.6)


def test_classification_ties_go_to_the_first_label_in_the_schema():
    assert merge("classification", [{"label": "dog"}, {"label": "car"}]).payload == {"label": "car"}


def test_multilabel_keeps_labels_chosen_by_more_than_half_the_weight():
    payloads = [
        {"labels": ["car", "dog"]},
        {"labels": ["car"]},
        {"labels": ["dog", "person"]},
        {"labels": []},
    ]
    assert merge("multilabel", payloads).payload == {"labels": []}  # 2 of 4 is not more than half
    assert merge("multilabel", payloads, [2, 1, 1, 1]).payload == {"labels": ["car", "dog"]}


def test_bbox_merge_averages_a_quorum_cluster_and_drops_a_minority_box():
    payloads = [
        {"boxes": [box(0, 0, 10, 10), box(300, 300)]},
        {"boxes": [box(2, 0, 10, 10)]},
        {"boxes": [box(1, 0, 10, 10, label="dog")]},
    ]
    merged = merge("bbox", payloads, [1, 2, 1])
    assert merged.payload == {"boxes": [box(pytest.approx(4 / 3), 0, 10, 10)]}
    # Annotator scores against the consensus: 2/3 (one extra box), 1, 0; weights 1, 2, 1.
    assert merged.confidence == pytest.approx((2 / 3 + 2) / 4)


def test_merge_clusters_take_one_shape_per_annotator():
    # Annotator 0 drew the same car twice, annotator 1 once: the identical pair forms a cluster
    # of both annotators; the duplicate stays alone, with 1 of 2 annotators: no quorum.
    payloads = [{"boxes": [box(1, 0), box(0, 0)]}, {"boxes": [box(0, 0)]}]
    merged = merge("bbox", payloads)
    assert merged.payload == {"boxes": [box(0, 0)]}
    assert merge("bbox", payloads, quorum=0.4).payload["boxes"] == [box(0, 0), box(1, 0)]


def test_polygon_merge_keeps_the_medoid():
    payloads = [
        {"polygons": [square(0, 0, 10)]},
        {"polygons": [square(1, 0, 10)]},
        {"polygons": [square(2, 0, 10)]},
    ]
    assert merge("polygon", payloads).payload == {"polygons": [square(1, 0, 10)]}


def test_keypoints_merge_votes_visibility_and_averages_labelled_positions():
    base = [[10, 10, 2], [20, 20, 2], [30, 30, 0], [0, 0, 0], [0, 0, 0]]
    other = [[12, 10, 2], [20, 22, 1], [30, 30, 0], [0, 0, 0], [0, 0, 0]]
    third = [[11, 10, 2], [0, 0, 0], [30, 30, 0], [0, 0, 0], [0, 0, 0]]
    payloads = [{"instances": [instance(p, [0, 0, 40, 40])]} for p in (base, other, third)]
    merged = merge(
        "keypoints", payloads, schema={**KEYPOINT_SCHEMA, "labels": [{"name": "person"}]}
    )
    (result,) = merged.payload["instances"]
    assert result["keypoints"][0] == [pytest.approx(11), pytest.approx(10), 2]
    assert result["keypoints"][1] == [pytest.approx(20), pytest.approx(21), 2]  # v: 2, 1, 0 tie
    assert result["keypoints"][2][2] == 0
    assert result["bbox"] == [0, 0, 40, 40]


def test_span_merge_keeps_spans_a_quorum_chose():
    span = {"start": 0, "end": 5, "label": "car"}
    other = {"start": 6, "end": 9, "label": "dog"}
    payloads = [{"spans": [span, other]}, {"spans": [span]}, {"spans": [{**span, "end": 4}]}]
    assert merge("ner", payloads).payload == {"spans": [span]}


def test_relations_merge_renames_clashing_ids():
    payloads = [
        {"spans": [{"id": "T1", "start": 0, "end": 3, "label": "car"}, {"id": "T2", "start": 5, "end": 9, "label": "dog"}],
         "relations": [{"from": "T1", "to": "T2", "label": "owns"}]},
        {"spans": [{"id": "T2", "start": 0, "end": 3, "label": "car"}, {"id": "T1", "start": 5, "end": 9, "label": "dog"}],
         "relations": [{"from": "T2", "to": "T1", "label": "owns"}]},
    ]  # fmt: skip
    merged = merge("relations", payloads, [1, 2], schema=RELATION_SCHEMA)
    assert merged.payload == payloads[1]
    assert merged.confidence == 1.0


def test_video_event_merge_rounds_mean_frames():
    payloads = [
        {"events": [event(10, 20)]},
        {"events": [event(11, 21)]},
        {"events": [event(12, 20)]},
    ]
    assert merge("video_events", payloads).payload == {"events": [event(11, 20)]}


def test_video_track_merge_keeps_frames_a_quorum_annotated():
    def track(track_id, frames, x=0):
        return {
            "id": track_id,
            "label": "car",
            "frames": [{"frame": f, "x": x, "y": 0, "w": 10, "h": 10} for f in frames],
        }

    payloads = [
        {"tracks": [track(1, range(0, 10))]},
        {"tracks": [track(5, range(2, 10), x=2)]},
        {"tracks": [track(9, range(4, 12), x=1)]},
    ]
    merged = merge("video_tracks", payloads)
    (result,) = merged.payload["tracks"]
    assert result["id"] == 1
    assert [f["frame"] for f in result["frames"]] == list(range(2, 10))
    assert result["frames"][0]["x"] == pytest.approx(1)  # frames 2, 3: annotators 0 and 1
    assert result["frames"][-1]["x"] == pytest.approx(1)  # frames 4..9: all three


def test_merge_refuses_bad_weights():
    with pytest.raises(ValueError):
        merge("classification", [{"label": "car"}], [1, 2])
    with pytest.raises(ValueError):
        merge("classification", [{"label": "car"}], [-1])
    with pytest.raises(ValueError):
        merge("classification", [])
