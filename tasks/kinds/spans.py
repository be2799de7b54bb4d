"""Character spans in a task's text, shared by ner, relations and entity_linking.

Offsets are indices into data.text as a Python string (Unicode code points), end exclusive.
A browser counts UTF-16 code units instead; clients convert before submitting.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any

import numpy as np

from tasks.kinds.base import ValidationIssue
from tasks.kinds.matching import label_codes, ratio
from tasks.kinds.shapes import IDENTIFIER, LABEL, OFFSET, Shape, array, obj
from tasks.kinds.validation import (
    MAX_ID_LENGTH,
    MAX_ITEMS,
    check_identifier,
    check_integer,
    check_label,
    check_object,
    check_string,
    field_path,
    index_path,
)

# The identity of a span for comparison and merging, e.g. (start, end, label).
SpanKey = Callable[[dict], Hashable]

# What `check_spans` accepts of each field, as JSON Schema (tasks/kinds/shapes.py).
_FIELD_SHAPES: dict[str, Shape] = {
    "id": IDENTIFIER,
    "start": {**OFFSET, "description": "Character offset into data.text."},
    # An empty span is refused, so the end of a valid one is past its start, hence past 0.
    "end": {"type": "integer", "minimum": 1, "description": "Exclusive; at most len(text)."},
    "label": LABEL,
    "kb_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
}


def spans_shape(required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Shape:
    """Describe the ``spans`` array `check_spans` accepts with these fields."""
    span = obj({key: _FIELD_SHAPES[key] for key in (*required, *optional)}, required=required)
    return array(span, max_items=MAX_ITEMS, description="Spans in data.text, none twice.")


def ner_key(span: dict) -> tuple[int, int, str]:
    return (span["start"], span["end"], span["label"])


def check_spans(
    spans: Sequence[Any],
    text_length: int,
    labels: Collection[str],
    issues: list[ValidationIssue],
    *,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    key: SpanKey,
) -> list[dict | None]:
    """Check each span's fields, offsets and label, and reject two spans with the same key.

    Return the spans in order, None for each invalid one, so callers can resolve references.
    """
    result: list[dict | None] = []
    seen: dict[Hashable, int] = {}
    for index, span in enumerate(spans):
        path = index_path("spans", index)
        result.append(None)
        if not check_object(span, path, issues, required=required, optional=optional):
            continue
        ok = all(field in span for field in required)
        ok = _check_offsets(span, path, text_length, issues) and ok
        if "label" in span:
            ok = check_label(span["label"], field_path(path, "label"), labels, issues) and ok
        if "kb_id" in span:
            kb_path = field_path(path, "kb_id")
            ok = check_string(span["kb_id"], kb_path, issues, max_length=MAX_ID_LENGTH) and ok
        if "id" in span:
            ok = check_identifier(span["id"], field_path(path, "id"), issues) and ok
        if not ok:
            continue
        identity = key(span)
        if identity in seen:
            issues.append(
                ValidationIssue(path, f"duplicate of {index_path('spans', seen[identity])}")
            )
            continue
        seen[identity] = index
        result[index] = span
    return result


def _check_offsets(span: dict, path: str, text_length: int, issues: list) -> bool:
    start, end = span.get("start"), span.get("end")
    typed = [
        check_integer(span[field], field_path(path, field), issues)
        for field in ("start", "end")
        if field in span
    ]
    if len(typed) < 2 or not all(typed):
        return False
    if start < 0:
        issues.append(ValidationIssue(path, f"start {start} is before the start of the text"))
    elif end > text_length:
        issues.append(ValidationIssue(path, f"end {end} is beyond the text length {text_length}"))
    elif end < start:
        issues.append(ValidationIssue(path, f"end {end} is before start {start}"))
    elif end == start:
        issues.append(ValidationIssue(path, f"the span is empty (start = end = {start})"))
    else:
        return True
    return False


def overlap_scores(a: Sequence[dict], b: Sequence[dict]) -> dict[str, float]:
    """Score partial matches: a span counts when it overlaps a same-label span of the other side.

    Precision is the share of a's spans that overlap one of b's, recall the share of b's that
    overlap one of a's, and F1 their harmonic mean. Two empty payloads score 1.
    """
    both_empty = not a and not b
    if not a or not b:
        value = 1.0 if both_empty else 0.0
        return {"partial_precision": value, "partial_recall": value, "partial_f1": value}
    codes_a, codes_b = label_codes([s["label"] for s in a], [s["label"] for s in b])
    ra = np.array([(s["start"], s["end"]) for s in a])
    rb = np.array([(s["start"], s["end"]) for s in b])
    overlap = (
        (ra[:, None, 0] < rb[None, :, 1])
        & (rb[None, :, 0] < ra[:, None, 1])
        & (codes_a[:, None] == codes_b[None, :])
    )
    precision = float(overlap.any(axis=1).mean())
    recall = float(overlap.any(axis=0).mean())
    f1 = ratio(2 * precision * recall, precision + recall, both_empty=False)
    return {"partial_precision": precision, "partial_recall": recall, "partial_f1": f1}


def span_sort_key(span: dict) -> tuple:
    """Order spans by position, then by label and kb id, for canonical payloads."""
    return (span["start"], span["end"], span.get("label") or "", span.get("kb_id") or "")
