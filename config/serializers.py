"""Input serializers that say what they refuse, instead of dropping it."""

import copy
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers
from rest_framework.utils import html

UNKNOWN_FIELD = "Not a field this request can set (unknown or read-only)."


class KnownFieldsOnly(serializers.Serializer):
    """Refuse fields the serializer does not declare as input, naming each one.

    DRF drops them silently, so a client that sends ``id`` or a misspelt ``overlpa`` would get a
    200 that changed nothing it asked for. They are reported with the other invalid fields.
    """

    def to_internal_value(self, data):
        writable = {name for name, field in self.fields.items() if not field.read_only}
        extra = sorted(set(data) - writable) if isinstance(data, Mapping) else []
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not extra or not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError(
                {**exc.detail, **{name: [UNKNOWN_FIELD] for name in extra}}
            ) from exc
        if extra:
            raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in extra})
        return value


class Flat(serializers.Serializer):
    """A request's input of plain fields, on a hot path: each request copies the declared
    fields instead of building them again.

    DRF builds every declared field again for each request (a deep copy runs its ``__init__``,
    validators and messages included): 40-50 µs for the claim's and the submit's input. A plain
    field keeps nothing of a request but what binding sets on its own copy (its name and
    parent), so a shallow copy serves. A field holding another one (a child, a nested
    serializer) would share it between requests, and is refused.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, field in cls._declared_fields.items():
            if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child"):
                raise TypeError(f"{cls.__name__}.{name} holds other fields: not a Flat input.")

    def get_fields(self):
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


def json_time(at: datetime) -> str:
    """A time as every answer and live message writes it: in UTC, ending in ``Z``, as DRF's
    fields render one, so that a client compares the times it is sent as text."""
    return at.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


class Rfc3339DateTimeField(serializers.DateTimeField):
    """A date-time as the schema's ``date-time`` format states it (RFC 3339): a date, a time
    with seconds, and an offset. DRF also reads a date alone, or a time without an offset in
    the server's zone: a client sending those would get an answer about another time than the
    one it meant."""

    _RFC_3339 = re.compile(
        r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
    )

    _FORMAT = "an RFC 3339 date-time, e.g. 2026-03-02T10:00:00Z"

    def get_value(self, dictionary):
        # DRF reads an empty form or query value as none given; the schema's format refuses it.
        if html.is_html_input(dictionary) and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)

    def to_internal_value(self, value):
        if not isinstance(value, str) or not self._RFC_3339.fullmatch(value):
            self.fail("invalid", format=self._FORMAT)
        return super().to_internal_value(value)


class KnownFieldsOnlyExtension(OpenApiSerializerExtension):
    """Say in the schema what ``KnownFieldsOnly`` does: no property beyond those listed."""

    target_class = KnownFieldsOnly
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}


class Direct(serializers.Serializer):
    """An answer on a hot path, written at once by the subclass's ``to_representation``: the
    declared fields describe it for the schema, and are what it must equal.

    For every answer DRF would build each declared field again (a deep copy, with its
    validators and messages), which costs more than writing the answer: 60-120 µs for the
    claim's, the submit's and the review claim's, in every annotator's and reviewer's loop.
    ``tests/test_serializers.py`` holds each subclass to what its fields write.
    """


# Stateless, so one serves every answer and thread.
_DATE_TIME = serializers.DateTimeField()


def date_time_out(value):
    """A date-time as the API's ``DateTimeField`` writes it; None stays None."""
    return None if value is None else _DATE_TIME.to_representation(value)


class Prepared(serializers.Serializer):
    """Rows a selector already shaped as JSON values (numbers, text, null): the fields describe
    them for the schema, and nothing is converted field by field, which would cost a large page
    more than reading it. The schema tests check every answer against the fields."""

    def to_representation(self, instance):
        return instance
