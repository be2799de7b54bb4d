"""Checks for a project's label schema, shared by every kind.

A schema is `{"labels": [{"name": "car", "color": "#ff0000"}, ...], "error_tags": [...]}`; kinds
add their own fields (keypoint names and sigmas, relation types). Label names are unique so that a
payload can refer to a label by name alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tasks.kinds.base import Schema, ValidationIssue
from tasks.kinds.shapes import NAME, Shape, array, names, obj
from tasks.kinds.validation import (
    MAX_LABELS,
    check_array,
    check_object,
    check_string,
    check_unique_names,
    describe,
    field_path,
    index_path,
    quote,
)

_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")

# Check one kind-specific schema field: (schema, value, path, issues).
FieldCheck = Callable[[Schema, Any, str, list[ValidationIssue]], None]


def label_schema_issues(
    schema: Any,
    *,
    labels_required: bool = True,
    extra_required: Mapping[str, FieldCheck] | None = None,
    extra_optional: Mapping[str, FieldCheck] | None = None,
) -> list[ValidationIssue]:
    """Check the common schema fields plus the kind's own ones."""
    issues: list[ValidationIssue] = []
    extra_required = extra_required or {}
    extra_optional = extra_optional or {}
    required = ("labels", *extra_required)
    optional = ("error_tags", *extra_optional)
    if not check_object(schema, "", issues, required=required, optional=optional):
        return issues
    if "labels" in schema:
        _check_labels(schema["labels"], issues, required=labels_required)
    if "error_tags" in schema:
        check_unique_names(schema["error_tags"], "error_tags", issues, noun="error tags")
    for key, check in {**extra_required, **extra_optional}.items():
        if key in schema:
            check(schema, schema[key], key, issues)
    return issues


def schema_shape(
    *,
    labels_required: bool = True,
    extra_required: Mapping[str, Shape] | None = None,
    extra_optional: Mapping[str, Shape] | None = None,
    description: str = "",
) -> Shape:
    """Describe, as JSON Schema, what `label_schema_issues` with the same arguments accepts."""
    extra_required = extra_required or {}
    label = obj(
        {"name": NAME, "color": {"type": "string", "pattern": f"^{_COLOR.pattern}$"}},
        required=("name",),
    )
    labels = array(
        label,
        max_items=MAX_LABELS,
        min_items=1 if labels_required else 0,
        description="Label names are unique; a payload names its labels by them.",
    )
    return obj(
        {
            "labels": labels,
            "error_tags": names(noun="error tags"),
            **extra_required,
            **(extra_optional or {}),
        },
        required=("labels", *extra_required),
        description=description,
    )


def _check_labels(value: Any, issues: list[ValidationIssue], *, required: bool) -> None:
    if not check_array(value, "labels", issues, limit=MAX_LABELS, noun="labels"):
        return
    if required and not value:
        issues.append(ValidationIssue("labels", "needs at least 1 label"))
    seen: dict[str, int] = {}
    for index, label in enumerate(value):
        path = index_path("labels", index)
        if not check_object(label, path, issues, required=("name",), optional=("color",)):
            continue
        name = label.get("name")
        name_path = field_path(path, "name")
        if "name" in label and check_string(name, name_path, issues):
            if name in seen:
                first = index_path("labels", seen[name])
                issues.append(ValidationIssue(name_path, f"duplicate {quote(name)} (also {first})"))
            else:
                seen[name] = index
        if "color" in label:
            color = label["color"]
            color_path = field_path(path, "color")
            if not isinstance(color, str):
                issues.append(
                    ValidationIssue(color_path, f"expected a string, got {describe(color)}")
                )
            elif not _COLOR.fullmatch(color):
                issues.append(
                    ValidationIssue(color_path, f'{quote(color)} is not a colour like "#ff0000"')
                )


def label_order(schema: Schema) -> dict[str, int]:
    """Map each label name to its position in the schema, for stable output order and ids."""
    return {label["name"]: index for index, label in enumerate(schema.get("labels", ()))}


def relation_types_check(schema: Schema, value: Any, path: str, issues: list) -> None:
    check_unique_names(value, path, issues, noun="relation types", min_items=1)
