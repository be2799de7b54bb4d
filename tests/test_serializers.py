"""Answers written at once (``config.serializers.Direct``) are what their declared fields write:
the same keys in the same order, the same values, the same JSON. Inputs whose fields are copied
(``config.serializers.Flat``) judge each request alone."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model
from rest_framework import serializers

from config.serializers import Direct, Flat
from qa.review_api import ReviewClaimApi, ReviewClaimOut
from qa.reviews import ClaimedReview
from tasks.api.work import AssignmentSubmitApi, ClaimApi
from tasks.models import Annotation
from tasks.serializers import AnnotationOut, ClaimOut
from tasks.services.claims import ClaimedTask
from workforce.models import Annotator, Member

# Microseconds and another zone than the server's: the fields convert both.
LEASED = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
EXPIRES = datetime(2026, 3, 2, 5, 0, 0, tzinfo=UTC)
PAYLOAD = {"boxes": [{"label": "car", "x": 1.5, "y": 2, "w": 30, "h": 40}]}
SCHEMA = {"labels": [{"name": "car"}, {"name": "person"}]}


def annotation(**fields) -> Annotation:
    user = get_user_model()(username="ana")
    author = Annotator(pk=19, member=Member(user=user))
    values = {
        "id": 7,
        "assignment_id": 11,
        "task_id": 13,
        "project_id": 17,
        "payload": PAYLOAD,
        "version": 2,
        "payload_version": 1,
        "active_seconds": 42,
        "duration_seconds": 57.25,
        "submitted_at": LEASED,
    }
    made = Annotation(**(values | fields))
    made.annotator = author
    return made


CLAIMED = {
    "assignment_id": 3,
    "task_id": 5,
    "data": {"image": "https://example.com/1.jpg", "width": 640, "height": 480},
    "project_id": 17,
    "project_name": "Street scenes",
    "kind": "bbox",
    "instructions": "Box every car.",
    "label_schema": SCHEMA,
    "leased_at": LEASED,
    "lease_expires_at": EXPIRES,
}
REVIEWED = {
    "item_id": 23,
    "layer_id": 29,
    "layer_position": 1,
    "layer_name": "Peer review",
    "project_id": 17,
    "project_name": "Street scenes",
    "kind": "bbox",
    "instructions": "",
    "label_schema": SCHEMA,
    "error_tags": [{"code": "loose-box", "description": "A box larger than its object."}],
    "task_id": 5,
    "data": {"image": "https://example.com/1.jpg"},
    "annotation_id": 7,
    "version": 3,
    "payload": PAYLOAD,
    "leased_at": LEASED,
    "lease_expires_at": EXPIRES,
}
CASES = {
    AnnotationOut: [
        annotation(),
        # Nothing told of active time; a whole number of seconds, which the field writes as 60.0.
        annotation(active_seconds=None, duration_seconds=60),
    ],
    ClaimOut: [ClaimedTask(**CLAIMED), ClaimedTask(**CLAIMED | {"instructions": "", "data": {}})],
    ReviewClaimOut: [ClaimedReview(**REVIEWED), ClaimedReview(**REVIEWED | {"error_tags": []})],
}


def test_every_answer_written_at_once_is_held_to_its_fields():
    assert set(Direct.__subclasses__()) == set(CASES)


@pytest.mark.parametrize(
    ("serializer", "instance"),
    [(serializer, instance) for serializer, cases in CASES.items() for instance in cases],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_an_answer_written_at_once_is_what_its_fields_write(serializer, instance):
    written = serializer(instance).data
    by_fields = serializers.Serializer.to_representation(serializer(instance), instance)
    assert json.dumps(written) == json.dumps(by_fields)
    assert serializer([instance], many=True).data == [by_fields]


# Inputs whose fields are copied, not built again, for each request (``config.serializers.Flat``).


def test_a_flat_input_refuses_fields_that_hold_other_fields():
    with pytest.raises(TypeError, match="holds other fields"):

        class Boxes(Flat):
            labels = serializers.ListField(child=serializers.CharField())

    with pytest.raises(TypeError, match="holds other fields"):

        class Nested(Flat):
            inner = ClaimApi.ClaimInput()


@pytest.mark.parametrize(
    "flat",
    [ClaimApi.ClaimInput, AssignmentSubmitApi.SubmitInput, ReviewClaimApi.ReviewClaimInput],
    ids=lambda flat: flat.__name__,
)
def test_each_flat_inputs_requests_have_fields_of_their_own(flat):
    first, second = flat(data={}), flat(data={})
    for name, field in first.fields.items():
        declared = flat._declared_fields[name]
        assert field is not declared and field is not second.fields[name]
        assert field.parent is first and second.fields[name].parent is second


def test_a_flat_input_says_what_it_refuses_as_before():
    bad = AssignmentSubmitApi.SubmitInput(data={"active_seconds": -1})
    assert not bad.is_valid()
    assert bad.errors == {
        "payload": ["This field is required."],
        "active_seconds": ["Ensure this value is greater than or equal to 0."],
    }
    # The refusal did not stay with the declared fields: the next request is judged alone.
    good = AssignmentSubmitApi.SubmitInput(data={"payload": {"boxes": []}, "active_seconds": 3})
    assert good.is_valid(), good.errors
    assert good.validated_data == {"payload": {"boxes": []}, "active_seconds": 3, "next": False}
    claim = ClaimApi.ClaimInput(data={"project": "x"})
    assert not claim.is_valid() and claim.errors == {"project": ["A valid integer is required."]}
