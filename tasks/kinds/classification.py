"""classification: one label per task, e.g. {"label": "dog"}.

A schema may say what its labels measure with ``scale``: ``nominal`` (the default: categories
with no order), ``ordinal`` (ranked in the schema's order, e.g. "bad", "fair", "good") or
``interval`` (each label name is a number, e.g. "1" to "5", and distances between them mean
something). Agreement reads it: Krippendorff's alpha is reported at every level the scale
allows, since a disagreement between "4" and "5" is a smaller one than between "1" and "5"
(``qa.agreement_report``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tasks.kinds.base import (
    DEFAULT_QUORUM,
    Comparison,
    Kind,
    Merged,
    Payload,
    Schema,
    TaskData,
    ValidationIssue,
)
from tasks.kinds.consensus import annotator_weights, weighted_vote
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import LABEL, obj
from tasks.kinds.validation import check_label, check_object, object_data_issues, quote

SCALES = ("nominal", "ordinal", "interval")


def scale_of(schema: Schema) -> str:
    """What the schema's labels measure (``SCALES``); ``nominal`` unless the schema says."""
    return schema.get("scale", "nominal")


def _check_scale(schema: Schema, value: object, path: str, issues: list[ValidationIssue]) -> None:
    if value not in SCALES:
        issues.append(ValidationIssue(path, f"must be one of {', '.join(SCALES)}"))
        return
    if value != "interval":
        return
    labels = schema.get("labels")
    # Labels that are not a list of named objects are told about by their own check.
    for index, label in enumerate(labels if isinstance(labels, list) else ()):
        name = label.get("name") if isinstance(label, dict) else None
        if isinstance(name, str) and not _is_number(name):
            issues.append(
                ValidationIssue(
                    f"labels[{index}].name", f"{quote(name)} is not a number, as interval needs"
                )
            )


def _is_number(name: str) -> bool:
    try:
        return math.isfinite(float(name))
    except ValueError:
        return False


class Classification(Kind):
    key = "classification"
    title = "Classification"
    label_schema_shape = schema_shape(
        extra_optional={
            "scale": {
                "type": "string",
                # A pattern, not an enum: the schema's enum post-processing would hoist an enum
                # out of the kinds' shapes.
                "pattern": f"^({'|'.join(SCALES)})$",
                "description": "What the labels measure: nominal (default), ordinal (ranked in "
                "schema order) or interval (label names are numbers).",
            }
        }
    )
    payload_shape = obj({"label": LABEL}, required=("label",), description="The task's one label.")
    label_paths = {"labels": "$.label"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema, extra_optional={"scale": _check_scale})

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return object_data_issues(data)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        if check_object(payload, "", issues, required=("label",)) and "label" in payload:
            check_label(payload["label"], "label", label_order(schema), issues)
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score 1 when the labels are equal, else 0."""
        equal = a["label"] == b["label"]
        return Comparison(1.0 if equal else 0.0, {"label_a": a["label"], "label_b": b["label"]})

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Take the (weighted) plurality label; confidence is its share of the total weight.

        The plurality always answers, even without a majority: a low confidence flags the task
        rather than leaving it without a label. Ties go to the label listed first in the schema.
        """
        w = annotator_weights(weights, len(payloads))
        order = label_order(schema)
        label, support, tally = weighted_vote(
            ((p["label"], float(wi)) for p, wi in zip(payloads, w, strict=True)),
            order=lambda name: (order.get(name, len(order)), name),
        )
        total = float(w.sum())
        shares = {name: weight / total for name, weight in tally.items()}
        return Merged({"label": label}, support / total, {"votes": shares})

    def canonical(self, payload: Payload) -> Payload:
        return {"label": payload["label"]}
