"""classification: one label per task, e.g. {"label": "dog"}."""

from __future__ import annotations

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
from tasks.kinds.validation import check_label, check_object, object_data_issues


class Classification(Kind):
    key = "classification"
    title = "Classification"
    label_schema_shape = schema_shape()
    payload_shape = obj({"label": LABEL}, required=("label",), description="The task's one label.")
    label_paths = {"labels": "$.label"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema)

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
