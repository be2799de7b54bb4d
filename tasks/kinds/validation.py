"""Shared checks that turn malformed JSON into precise, path-located issues.

Every checker appends to an `issues` list and returns whether the value was usable, so one pass
reports every problem and callers skip checks that would only repeat an earlier one. Payloads come
from JSON, so the type rules are JSON's: a boolean is not a number, NaN and infinities are refused
(the standard `json` module accepts them, PostgreSQL's jsonb does not).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tasks.kinds.base import ValidationIssue

# Payload size limits, checked before iterating so an oversized payload is a clear 400, not a slow
# request. They are far above what one annotator produces on one task.
MAX_ITEMS = 1_000  # boxes, polygons, instances, spans, tracks, events per payload
MAX_RELATIONS = 5_000  # relations may link many pairs among the MAX_ITEMS spans
MAX_POLYGON_POINTS = 10_000  # points in one polygon
MAX_TOTAL_POLYGON_POINTS = 200_000  # points in one payload, all polygons together
MAX_TRACK_FRAMES = 200_000  # boxes in one payload, all tracks together
# Keypoints in one payload, all instances together (instances x the schema's keypoint names):
# without it, 1,000 instances of a 10,000-name schema made a payload no request body could carry.
MAX_TOTAL_KEYPOINTS = 200_000
MAX_LABELS = 10_000  # labels (or names of any kind) in one schema
MAX_NAME_LENGTH = 200  # label, tag, relation type and keypoint names
MAX_ID_LENGTH = 200  # span and track ids, kb ids
# Coordinates may exceed the image by this much (in pixels): tools that store relative coordinates
# produce values such as 0.1 * 640 + 0.9 * 640 = 640.0000000000001.
BOUNDS_TOLERANCE = 1e-6
_QUOTE_LIMIT = 60  # quoted strings in messages are cut here so messages stay readable


def field_path(parent: str, key: str) -> str:
    """Return the JSON path of `key` inside the object at `parent`."""
    return f"{parent}.{key}" if parent else key


def index_path(parent: str, index: int) -> str:
    """Return the JSON path of item `index` inside the array at `parent`."""
    return f"{parent}[{index}]"


def quote(text: str) -> str:
    """Quote a string as JSON, shortened so a long value cannot flood an error message."""
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "…"
    return json.dumps(text, ensure_ascii=False)


def number_text(value: float) -> str:
    """Render a number the way a person wrote it: 650 and 650.0 both read "650"."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def describe(value: Any) -> str:
    """Name a JSON value for an error message, with the value itself when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return number_text(value)
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, list | tuple):
        return f"array of {len(value)}"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    """Tell whether a value is a finite JSON number (bool excluded)."""
    kind = type(value)
    if kind is int:
        return True
    return kind is float and math.isfinite(value)


def is_array(value: Any) -> bool:
    return isinstance(value, list | tuple)


def check_object(
    value: Any,
    path: str,
    issues: list[ValidationIssue],
    *,
    required: Collection[str],
    optional: Collection[str] = (),
) -> bool:
    """Check that `value` is an object with every required field and no unknown one."""
    if not isinstance(value, dict):
        issues.append(ValidationIssue(path, f"expected an object, got {describe(value)}"))
        return False
    for key in required:
        if key not in value:
            issues.append(ValidationIssue(field_path(path, key), "this field is required"))
    if len(value) > len(required) or any(key not in required for key in value):
        for key in value:
            if key not in required and key not in optional:
                issues.append(ValidationIssue(field_path(path, str(key)), "unexpected field"))
    return True


def check_array(
    value: Any, path: str, issues: list[ValidationIssue], *, limit: int, noun: str = "items"
) -> bool:
    """Check that `value` is an array no longer than `limit`, before anyone iterates over it."""
    if not is_array(value):
        issues.append(ValidationIssue(path, f"expected an array, got {describe(value)}"))
        return False
    if len(value) > limit:
        issues.append(ValidationIssue(path, f"has {len(value)} {noun}; the limit is {limit}"))
        return False
    return True


def check_number(value: Any, path: str, issues: list[ValidationIssue]) -> bool:
    if is_number(value):
        return True
    if type(value) is float:
        issues.append(ValidationIssue(path, f"expected a finite number, got {describe(value)}"))
    else:
        issues.append(ValidationIssue(path, f"expected a number, got {describe(value)}"))
    return False


def check_integer(value: Any, path: str, issues: list[ValidationIssue]) -> bool:
    if type(value) is int:
        return True
    issues.append(ValidationIssue(path, f"expected an integer, got {describe(value)}"))
    return False


def check_positive_integer(value: Any, path: str, issues: list[ValidationIssue]) -> bool:
    if not check_integer(value, path, issues):
        return False
    if value <= 0:
        issues.append(ValidationIssue(path, f"{value} is not positive"))
        return False
    return True


def check_positive_number(value: Any, path: str, issues: list[ValidationIssue]) -> bool:
    if not check_number(value, path, issues):
        return False
    if value <= 0:
        issues.append(ValidationIssue(path, f"{number_text(value)} is not positive"))
        return False
    return True


# A JSON Schema ``pattern`` for a string ``check_string`` does not find blank: one character
# outside the set ``str.isspace`` accepts, written out because a regex's ``\s`` is another set
# (U+001C-U+001F, U+FEFF). ``config.storable`` holds the same for DRF's trimmed fields (the kinds
# import nothing of Django's); a test keeps the two equal and exact over all of Unicode.
NOT_BLANK_PATTERN = (
    "[^\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def check_string(
    value: Any, path: str, issues: list[ValidationIssue], *, max_length: int = MAX_NAME_LENGTH
) -> bool:
    """Check for a non-empty string of bounded length."""
    if not isinstance(value, str):
        issues.append(ValidationIssue(path, f"expected a string, got {describe(value)}"))
        return False
    if not value.strip():
        issues.append(ValidationIssue(path, "must not be empty"))
        return False
    if len(value) > max_length:
        issues.append(ValidationIssue(path, f"is longer than {max_length} characters"))
        return False
    return True


def check_identifier(value: Any, path: str, issues: list[ValidationIssue]) -> bool:
    """Check an id chosen by the annotation tool: a non-empty string or an integer."""
    if type(value) is int:
        return True
    if isinstance(value, str):
        return check_string(value, path, issues, max_length=MAX_ID_LENGTH)
    issues.append(ValidationIssue(path, f"expected a string or an integer, got {describe(value)}"))
    return False


def check_label(
    value: Any, path: str, labels: Mapping[str, int] | Collection[str], issues: list
) -> bool:
    """Check that a label is one the project's schema defines."""
    if not isinstance(value, str):
        issues.append(ValidationIssue(path, f"expected a string, got {describe(value)}"))
        return False
    if value not in labels:
        issues.append(ValidationIssue(path, f"{quote(value)} is not in the schema"))
        return False
    return True


def check_within(
    value: float, path: str, limit: int, dimension: str, issues: list[ValidationIssue]
) -> bool:
    """Check that a coordinate lies in [0, limit] of the image's `dimension` (width/height)."""
    if -BOUNDS_TOLERANCE <= value <= limit + BOUNDS_TOLERANCE:
        return True
    issues.append(
        ValidationIssue(path, f"{number_text(value)} is outside the image {dimension} {limit}")
    )
    return False


def check_numbers(obj: dict, keys: Sequence[str], path: str, issues: list[ValidationIssue]) -> bool:
    """Check the numeric fields of an object; True when all are present and finite numbers.

    Missing fields are left to `check_object`, which has reported them already.
    """
    ok = True
    for key in keys:
        if key not in obj or not check_number(obj[key], field_path(path, key), issues):
            ok = False
    return ok


def check_box_bounds(
    values: Sequence[float],
    paths: Sequence[str],
    width: int,
    height: int,
    issues: list[ValidationIssue],
) -> bool:
    """Check a box of numbers (x, y, w, h): positive size, wholly inside the image."""
    x, y, w, h = values
    x_path, y_path, w_path, h_path = paths
    ok = check_within(x, x_path, width, "width", issues)
    ok = check_within(y, y_path, height, "height", issues) and ok
    for size, size_path, origin, name, limit, dimension, fits in (
        (w, w_path, x, "x + w", width, "width", ok),
        (h, h_path, y, "y + h", height, "height", ok),
    ):
        if size <= 0:
            issues.append(ValidationIssue(size_path, f"{number_text(size)} is not positive"))
            ok = False
        elif fits and origin + size > limit + BOUNDS_TOLERANCE:
            edge = number_text(origin + size)
            issues.append(
                ValidationIssue(
                    size_path, f"{name} = {edge} is outside the image {dimension} {limit}"
                )
            )
            ok = False
    return ok


def check_frame(value: Any, path: str, frame_count: int, issues: list[ValidationIssue]) -> bool:
    """Check a 0-based frame index inside a clip of `frame_count` frames."""
    if not check_integer(value, path, issues):
        return False
    if not 0 <= value < frame_count:
        issues.append(
            ValidationIssue(path, f"frame {value} is outside the clip (frame_count {frame_count})")
        )
        return False
    return True


def check_unique_names(
    value: Any, path: str, issues: list[ValidationIssue], *, noun: str, min_items: int = 0
) -> list[str] | None:
    """Check an array of unique non-empty names (tags, relation types, keypoint names)."""
    if not check_array(value, path, issues, limit=MAX_LABELS):
        return None
    if len(value) < min_items:
        issues.append(ValidationIssue(path, f"needs at least {min_items} {noun}"))
    seen: dict[str, int] = {}
    names = []
    for index, name in enumerate(value):
        item = index_path(path, index)
        if not check_string(name, item, issues):
            continue
        if name in seen:
            first = index_path(path, seen[name])
            issues.append(ValidationIssue(item, f"duplicate {quote(name)} (also {first})"))
            continue
        seen[name] = index
        names.append(name)
    return names


# --- task data ---------------------------------------------------------------------------------


def object_data_issues(data: Any) -> list[ValidationIssue]:
    """Accept any JSON object: classification tasks may show anything."""
    issues: list[ValidationIssue] = []
    if not isinstance(data, dict):
        issues.append(ValidationIssue("", f"expected an object, got {describe(data)}"))
    return issues


def image_data_issues(data: Any) -> list[ValidationIssue]:
    """Require the image size that pixel coordinates are checked against."""
    issues = object_data_issues(data)
    if not issues:
        _require(data, "width", check_positive_integer, issues)
        _require(data, "height", check_positive_integer, issues)
    return issues


def text_data_issues(data: Any) -> list[ValidationIssue]:
    """Require the text that character offsets point into."""
    issues = object_data_issues(data)
    if not issues:
        if "text" not in data:
            issues.append(ValidationIssue("text", "this field is required"))
        elif not isinstance(data["text"], str):
            issues.append(
                ValidationIssue("text", f"expected a string, got {describe(data['text'])}")
            )
    return issues


def video_data_issues(data: Any, *, needs_size: bool) -> list[ValidationIssue]:
    """Require the clip length, and the frame size when the kind draws boxes."""
    issues = object_data_issues(data)
    if not issues:
        _require(data, "frame_count", check_positive_integer, issues)
        for key in ("width", "height"):
            if needs_size or key in data:
                _require(data, key, check_positive_integer, issues)
    return issues


def _require(data: dict, key: str, check, issues: list[ValidationIssue]) -> None:
    if key not in data:
        issues.append(ValidationIssue(key, "this field is required"))
    else:
        check(data[key], key, issues)


# --- payload frame -----------------------------------------------------------------------------


def payload_arrays(
    payload: Any, limits: Mapping[str, int], issues: list[ValidationIssue]
) -> dict[str, list]:
    """Check a payload of the shape {key: [...], ...} with exactly the keys of `limits`.

    Return the arrays that can be iterated; an array over its limit is reported and left out.
    """
    if not check_object(payload, "", issues, required=tuple(limits)):
        return {}
    arrays = {}
    for key, limit in limits.items():
        if key in payload and check_array(payload[key], key, issues, limit=limit, noun="items"):
            arrays[key] = payload[key]
    return arrays
