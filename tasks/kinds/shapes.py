"""The shapes of label schemas and payloads as JSON Schema, for the OpenAPI schema and clients.

Each kind declares `label_schema_shape` and `payload_shape` beside the checks they describe,
built from the same field tuples and limits. A shape states what can be said without the
project and the task: field names and types, array limits, number ranges. What needs them (a
label is one of the schema's, a box lies inside the image, an offset inside the text, a polygon
does not cross itself) only the kind's validator knows, and the shape's description says so.

The dialect is the OpenAPI 3.0 schema object (a JSON Schema draft 4 subset: no tuples, no type
lists, boolean `exclusiveMinimum`), so that a shape can be put into the API's schema as it is.
A shape must never refuse what the validator accepts: a client trusts both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tasks.kinds.validation import (
    BOUNDS_TOLERANCE,
    MAX_ID_LENGTH,
    MAX_LABELS,
    MAX_NAME_LENGTH,
    NOT_BLANK_PATTERN,
)

Shape = dict[str, Any]

# Names are not blank (`check_string` strips them): the pattern names every character Python
# counts as a space, since a regex's `\s` is another set.
NAME: Shape = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": NOT_BLANK_PATTERN,
}
LABEL: Shape = {**NAME, "description": "The name of one of the project schema's labels."}
# An id chosen by the annotation tool (`check_identifier`).
IDENTIFIER: Shape = {
    "anyOf": [
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "pattern": NOT_BLANK_PATTERN,
        },
        {"type": "integer"},
    ]
}
NUMBER: Shape = {"type": "number"}
POSITIVE: Shape = {"type": "number", "minimum": 0, "exclusiveMinimum": True}
# A pixel coordinate: inside the image, give or take the validation's rounding tolerance.
COORDINATE: Shape = {
    "type": "number",
    "minimum": -BOUNDS_TOLERANCE,
    "description": "Pixels from the image's left or top edge, at most its width or height.",
}
FRAME: Shape = {"type": "integer", "minimum": 0, "description": "0-based, below frame_count."}
OFFSET: Shape = {"type": "integer", "minimum": 0}


def obj(
    properties: Mapping[str, Shape], *, required: Iterable[str], description: str = ""
) -> Shape:
    """An object with exactly these fields (`check_object` refuses unknown ones)."""
    shape: Shape = {
        "type": "object",
        "required": list(required),
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if description:
        shape["description"] = description
    return shape


def array(
    items: Shape,
    *,
    max_items: int,
    min_items: int = 0,
    unique: bool = False,
    description: str = "",
) -> Shape:
    shape: Shape = {"type": "array", "items": items, "maxItems": max_items}
    if min_items:
        shape["minItems"] = min_items
    if unique:
        shape["uniqueItems"] = True
    if description:
        shape["description"] = description
    return shape


def numbers(count: int, items: Shape = NUMBER, description: str = "") -> Shape:
    """A fixed-length array of numbers, such as [x, y]."""
    return array(items, min_items=count, max_items=count, description=description)


def names(*, min_items: int = 0, noun: str = "names") -> Shape:
    """An array of unique names (`check_unique_names`)."""
    return array(
        NAME, max_items=MAX_LABELS, min_items=min_items, unique=True, description=f"Unique {noun}."
    )
