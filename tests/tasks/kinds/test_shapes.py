"""Each kind's JSON Schema shapes agree with its validator (tasks/kinds/shapes.py).

A shape is what the API's schema tells clients. It must accept every valid payload and label
schema (else a client trusting it could not send valid work), and whatever it refuses the
validator must refuse too (else the schema promises a refusal the server does not make).
"""

import copy
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator

from config import storable
from tasks.kinds import KINDS, validation
from tests.tasks.kinds.strategies import (
    CASES,
    IMAGE,
    KEYPOINT_SCHEMA,
    RELATION_SCHEMA,
    SCHEMA,
    TEXT,
    VIDEO,
)

SCHEMAS = {key: schema for key, (_, schema, _) in CASES.items()}
DATA = {key: data for key, (_, _, data) in CASES.items()}


def shape_valid(shape: dict, value) -> bool:
    # OAS30Validator is jsonschema's validator for the OpenAPI 3.0 dialect the shapes are in.
    return OAS30Validator(shape).is_valid(value)


@pytest.mark.parametrize("key", list(KINDS))
def test_every_kind_declares_well_formed_shapes(key):
    kind = KINDS[key]
    for shape in (kind.label_schema_shape, kind.payload_shape):
        OAS30Validator.check_schema(shape)
        assert shape["type"] == "object" and shape["additionalProperties"] is False


@pytest.mark.parametrize("key", list(KINDS))
def test_the_label_schemas_the_kinds_accept_fit_their_shape(key):
    kind = KINDS[key]
    for schema in (SCHEMA, KEYPOINT_SCHEMA, RELATION_SCHEMA, {"labels": [{"name": "a"}]}):
        if not kind.validate_schema(schema):
            assert shape_valid(kind.label_schema_shape, schema), schema
    assert not kind.validate_schema(SCHEMAS[key])
    assert shape_valid(kind.label_schema_shape, SCHEMAS[key])


@pytest.mark.parametrize("key", list(KINDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_valid_payload_fits_its_kinds_shape(key, data):
    strategy, schema, task_data = CASES[key]
    payload = data.draw(strategy)
    assert not KINDS[key].validate_payload(payload, schema, task_data)
    assert shape_valid(KINDS[key].payload_shape, payload), payload


# Values that break a type or a range somewhere: a mutation puts one where a value was.
_WRONG = [None, True, "x", "", -1, -0.5, 0, 1.5, [], {}, [1, 2], {"x": 1}, 10**6]


def _locations(value, path=()):
    """Every (path, value) inside a JSON value, the root included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _locations(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _locations(item, (*path, index))


def mutate(value, rng: random.Random):
    """Change one place of a JSON value: replace a value, drop a field or add an unknown one."""
    value = copy.deepcopy(value)
    path, target = rng.choice(list(_locations(value)))
    action = rng.choice(["replace", "replace", "drop", "add"])
    if action == "drop" and isinstance(target, dict) and target:
        del target[rng.choice(list(target))]
        return value
    if action == "add" and isinstance(target, dict):
        target["unexpected"] = 1
        return value
    if not path:
        return rng.choice(_WRONG)
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = rng.choice(_WRONG)
    return value


@pytest.mark.parametrize("key", list(KINDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_what_a_payload_shape_refuses_the_validator_refuses(key, data, seed):
    strategy, schema, task_data = CASES[key]
    payload = mutate(data.draw(strategy), random.Random(seed))
    if not shape_valid(KINDS[key].payload_shape, payload):
        assert KINDS[key].validate_payload(payload, schema, task_data), payload


@pytest.mark.parametrize("key", list(KINDS))
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_what_a_label_schema_shape_refuses_the_validator_refuses(key, seed):
    schema = mutate(SCHEMAS[key], random.Random(seed))
    if not shape_valid(KINDS[key].label_schema_shape, schema):
        assert KINDS[key].validate_schema(schema), schema


# A few invalid payloads per kind, each refused by the shape alone: a client can tell.
INVALID = {
    "classification": [{}, {"label": 3}, {"label": "car", "score": 1}],
    "multilabel": [{"labels": "car"}, {"labels": ["car", "car"]}],
    "bbox": [
        {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 0, "h": 5}]},
        {"boxes": [{"label": "car", "x": -3, "y": 1, "w": 2, "h": 5}]},
        {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 2}]},
        {"boxes": [{"label": "car", "x": "1", "y": 1, "w": 2, "h": 5}]},
    ],
    "polygon": [
        {"polygons": [{"label": "car", "points": [[1, 1], [5, 1]]}]},
        {"polygons": [{"label": "car", "points": [[1, 1, 1], [5, 1, 1], [5, 5, 1]]}]},
    ],
    "keypoints": [{"instances": [{"label": "car", "keypoints": [[1, 1]] * 5}]}],
    "ner": [{"spans": [{"start": -1, "end": 3, "label": "car"}]}, {"spans": [{"start": 0}]}],
    "relations": [{"spans": []}, {"spans": [], "relations": [{"from": 1, "to": 2}]}],
    "entity_linking": [{"spans": [{"start": 0, "end": 3, "label": "car"}]}],
    "video_tracks": [
        {"tracks": [{"id": 1, "label": "car", "frames": []}]},
        {"tracks": [{"id": True, "label": "car", "frames": [{"frame": 0}]}]},
    ],
    "video_events": [{"events": [{"label": "car", "start_frame": 0.5, "end_frame": 3}]}],
}


@pytest.mark.parametrize("key", list(KINDS))
def test_invalid_payloads_are_refused_by_the_shape_and_the_validator(key):
    assert INVALID[key]
    for payload in INVALID[key]:
        assert not shape_valid(KINDS[key].payload_shape, payload), payload
        assert KINDS[key].validate_payload(payload, SCHEMAS[key], DATA[key]), payload


def test_the_task_data_of_the_cases_is_what_each_kind_reads():
    # The payload cases above are checked against task data the kinds accept.
    assert {id(data) for data in DATA.values()} == {id(IMAGE), id(TEXT), id(VIDEO)}
    for key, kind in KINDS.items():
        assert not kind.validate_task_data(DATA[key])


def test_the_not_blank_pattern_is_pythons_idea_of_blank_over_all_of_unicode():
    """The schema's patterns refuse exactly the strings the server trims to nothing."""
    assert storable.NOT_BLANK_PATTERN == validation.NOT_BLANK_PATTERN
    pattern = re.compile(validation.NOT_BLANK_PATTERN)
    wrong = [c for c in map(chr, range(0x110000)) if bool(pattern.search(c)) != bool(c.strip())]
    assert not wrong
