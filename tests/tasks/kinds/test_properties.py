"""Properties every kind must keep, checked on generated payloads (DESIGN.md section 4)."""

import copy
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.kinds import KINDS
from tests.tasks.kinds.strategies import CASES, KEYPOINT_NAMES, KEYPOINT_SCHEMA, keypoint_instance

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ALL_KINDS = sorted(CASES)
# OKS takes its scale from the reference (b), as COCO takes it from the ground truth, so the
# keypoints comparison is not symmetric by definition; it has its own symmetric-case test below.
SYMMETRIC_KINDS = [key for key in ALL_KINDS if key != "keypoints"]
# Top-level arrays whose order carries no meaning, and arrays nested inside their items.
ITEM_LISTS = ("boxes", "polygons", "instances", "spans", "relations", "tracks", "events", "labels")


def shuffled(payload, rng):
    """Return a deep copy of the payload with every unordered list shuffled."""
    result = copy.deepcopy(payload)
    for key in ITEM_LISTS:
        if key in result:
            rng.shuffle(result[key])
    for track in result.get("tracks", ()):
        rng.shuffle(track["frames"])
    return result


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_generated_payloads_are_valid(key, data):
    strategy, schema, task_data = CASES[key]
    payload = data.draw(strategy)
    assert KINDS[key].validate_payload(payload, schema, task_data) == []


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_payload_agrees_fully_with_itself(key, data):
    strategy, schema, _ = CASES[key]
    payload = data.draw(strategy)
    assert KINDS[key].compare(payload, payload, schema).score == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_scores_stay_within_zero_and_one(key, data):
    strategy, schema, _ = CASES[key]
    a, b = data.draw(strategy), data.draw(strategy)
    score = KINDS[key].compare(a, b, schema).score
    assert 0.0 <= score <= 1.0
    assert math.isfinite(score)


@pytest.mark.parametrize("key", SYMMETRIC_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_comparison_is_symmetric(key, data):
    strategy, schema, _ = CASES[key]
    a, b = data.draw(strategy), data.draw(strategy)
    kind = KINDS[key]
    assert kind.compare(a, b, schema).score == pytest.approx(
        kind.compare(b, a, schema).score, abs=1e-12
    )


@PROPERTY_SETTINGS
@given(
    a=keypoint_instance(with_bbox=True),
    shifts=st.lists(
        st.tuples(st.integers(-40, 40), st.integers(-40, 40)),
        min_size=len(KEYPOINT_NAMES),
        max_size=len(KEYPOINT_NAMES),
    ),
)
def test_keypoints_comparison_is_symmetric_when_both_references_share_a_scale(a, shifts):
    # OKS sums over the reference's labelled keypoints, so it is symmetric only when both
    # instances label the same keypoints: b moves each of a's labelled keypoints, with a's box.
    b = {
        **a,
        "keypoints": [
            [x + dx, y + dy, v] if v else [0, 0, 0]
            for (x, y, v), (dx, dy) in zip(a["keypoints"], shifts, strict=True)
        ],
    }
    kind = KINDS["keypoints"]
    forward = kind.compare({"instances": [a]}, {"instances": [b]}, KEYPOINT_SCHEMA).score
    backward = kind.compare({"instances": [b]}, {"instances": [a]}, KEYPOINT_SCHEMA).score
    assert forward == pytest.approx(backward, abs=1e-12)


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_item_order_does_not_change_the_score(key, data, seed):
    strategy, schema, _ = CASES[key]
    a, b = data.draw(strategy), data.draw(strategy)
    rng = random.Random(seed)
    kind = KINDS[key]
    expected = kind.compare(a, b, schema).score
    assert kind.compare(shuffled(a, rng), shuffled(b, rng), schema).score == pytest.approx(
        expected, abs=1e-12
    )


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(
    data=st.data(),
    weights=st.lists(st.floats(0.1, 10), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
def test_merging_identical_payloads_returns_that_payload(key, data, weights, seed):
    strategy, schema, _ = CASES[key]
    payload = data.draw(strategy)
    kind = KINDS[key]
    rng = random.Random(seed)
    copies = [shuffled(payload, rng) for _ in weights]
    merged = kind.merge(copies, weights, schema)
    assert merged.payload == kind.canonical(payload)
    assert merged.confidence == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_merging_different_payloads_gives_a_valid_payload(key, data):
    strategy, schema, task_data = CASES[key]
    payloads = data.draw(st.lists(strategy, min_size=1, max_size=4))
    weights = data.draw(
        st.none() | st.lists(st.floats(0.1, 5), min_size=len(payloads), max_size=len(payloads))
    )
    kind = KINDS[key]
    merged = kind.merge(payloads, weights, schema)
    assert kind.validate_payload(merged.payload, schema, task_data) == []
    assert 0.0 <= merged.confidence <= 1.0
    assert merged.payload == kind.canonical(merged.payload)


# --- mutations -------------------------------------------------------------------------------

INVALID_LEAVES = [True, None, float("nan"), float("inf"), {}]
# Fields a payload may leave out, by the name of the array holding the object.
OPTIONAL_FIELDS = {"bbox", "label"}


def nodes(value, path=""):
    """Yield (path, container, key) for every value inside a JSON document."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            yield child_path, value, key
            yield from nodes(child, child_path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            child_path = f"{path}[{index}]"
            yield child_path, value, index
            yield from nodes(child, child_path)


def objects(value, path=""):
    """Yield (path, object) for every object in a JSON document, the root included."""
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            yield from objects(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from objects(child, f"{path}[{index}]")


def join(path, key):
    return f"{path}.{key}" if path else key


@pytest.mark.parametrize("key", ALL_KINDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_payloads_are_rejected_at_the_mutated_path(key, data):
    strategy, schema, task_data = CASES[key]
    payload = copy.deepcopy(data.draw(strategy))
    mutation = data.draw(st.sampled_from(["replace", "add", "remove"]))
    if mutation == "replace":
        candidates = list(nodes(payload))
        if not candidates:
            mutation = "add"
        else:
            path, container, slot = data.draw(st.sampled_from(candidates))
            container[slot] = data.draw(st.sampled_from(INVALID_LEAVES))
            expected = path
    if mutation == "remove":
        candidates = [
            (path, obj, field)
            for path, obj in objects(payload)
            for field in obj
            if not (field in OPTIONAL_FIELDS and path)
            and not (key == "entity_linking" and field == "label")
            and not (key == "keypoints" and field == "bbox")
        ]
        if not candidates:
            mutation = "add"
        else:
            path, obj, field = data.draw(st.sampled_from(candidates))
            del obj[field]
            expected = join(path, field)
    if mutation == "add":
        path, obj = data.draw(st.sampled_from(list(objects(payload))))
        obj["unexpected"] = 1
        expected = join(path, "unexpected")
    issues = KINDS[key].validate_payload(payload, schema, task_data)
    # An object replaced by {} is reported at its missing fields, one level down.
    located = [
        issue
        for issue in issues
        if issue.path == expected or issue.path.startswith((f"{expected}.", f"{expected}["))
    ]
    assert located, (expected, [str(i) for i in issues])
