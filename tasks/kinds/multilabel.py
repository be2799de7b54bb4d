"""multilabel: any subset of the schema's labels, e.g. {"labels": ["indoor", "night"]}."""

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
from tasks.kinds.consensus import (
    annotator_weights,
    check_quorum,
    quorum_keys,
    support_confidence,
)
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import LABEL, array, obj
from tasks.kinds.validation import (
    MAX_LABELS,
    check_label,
    index_path,
    object_data_issues,
    payload_arrays,
    quote,
)


class Multilabel(Kind):
    key = "multilabel"
    title = "Multi-label classification"
    label_schema_shape = schema_shape()
    payload_shape = obj(
        {"labels": array(LABEL, max_items=MAX_LABELS, unique=True)},
        required=("labels",),
        description="Every label that applies, each once.",
    )
    label_paths = {"labels": "$.labels[*]"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema)

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return object_data_issues(data)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        labels = payload_arrays(payload, {"labels": MAX_LABELS}, issues).get("labels", ())
        known = label_order(schema)
        seen: dict[str, int] = {}
        for index, label in enumerate(labels):
            path = index_path("labels", index)
            if not check_label(label, path, known, issues):
                continue
            if label in seen:
                first = index_path("labels", seen[label])
                issues.append(ValidationIssue(path, f"duplicate {quote(label)} (also {first})"))
            else:
                seen[label] = index
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the Jaccard index of the two label sets; two empty sets agree fully."""
        set_a, set_b = set(a["labels"]), set(b["labels"])
        union = len(set_a | set_b)
        common = len(set_a & set_b)
        score = common / union if union else 1.0
        return Comparison(score, {"common": common, "union": union})

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep each label that annotators weighing more than the quorum share chose."""
        check_quorum(quorum)
        w = annotator_weights(weights, len(payloads))
        kept = quorum_keys([p["labels"] for p in payloads], w, quorum)
        consensus = self.canonical({"labels": list(kept)})
        confidence = support_confidence(self, payloads, w, consensus, schema)
        return Merged(consensus, confidence)

    def canonical(self, payload: Payload) -> Payload:
        return {"labels": sorted(payload["labels"])}
