"""ner: labelled character spans, {"spans": [{"start", "end", "label"}]}.

Spans may overlap or nest (two labels on the same text are fine); the same (start, end, label)
twice is refused, because span scores treat a payload as a set.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.kinds.base import (
    DEFAULT_QUORUM,
    JSONL,
    Comparison,
    Kind,
    Merged,
    Payload,
    Schema,
    TaskData,
    ValidationIssue,
)
from tasks.kinds.consensus import annotator_weights, check_quorum, quorum_keys, support_confidence
from tasks.kinds.formats.conll import CONLL
from tasks.kinds.formats.spacy import SPACY
from tasks.kinds.matching import detection_scores
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import obj
from tasks.kinds.spans import check_spans, ner_key, overlap_scores, span_sort_key, spans_shape
from tasks.kinds.validation import MAX_ITEMS, payload_arrays, text_data_issues

_FIELDS = ("start", "end", "label")


class NamedEntities(Kind):
    key = "ner"
    title = "Named entities"
    label_schema_shape = schema_shape()
    payload_shape = obj({"spans": spans_shape(_FIELDS)}, required=("spans",))
    label_paths = {"labels": "$.spans[*].label"}
    export_formats = (CONLL, SPACY, JSONL)

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema)

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return text_data_issues(data)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        spans = payload_arrays(payload, {"spans": MAX_ITEMS}, issues).get("spans", ())
        check_spans(
            spans, len(data["text"]), label_order(schema), issues, required=_FIELDS, key=ner_key
        )
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the strict span F1 (same start, end and label); details add partial overlap."""
        spans_a, spans_b = a["spans"], b["spans"]
        keys_a = {(s["start"], s["end"], s["label"]) for s in spans_a}
        keys_b = {(s["start"], s["end"], s["label"]) for s in spans_b}
        matched = len(keys_a & keys_b)
        details = detection_scores(matched, len(keys_a), len(keys_b))
        details["matched"] = matched
        if matched == len(keys_a) == len(keys_b):  # identical: partial scores are 1 as well
            details.update(partial_precision=1.0, partial_recall=1.0, partial_f1=1.0)
        else:
            details.update(overlap_scores(spans_a, spans_b))
        return Comparison(details["f1"], details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep each (start, end, label) span that a quorum of the annotators' weight chose."""
        check_quorum(quorum)
        w = annotator_weights(weights, len(payloads))
        kept = quorum_keys([[ner_key(s) for s in p["spans"]] for p in payloads], w, quorum)
        spans = [{"start": s, "end": e, "label": label} for s, e, label in kept]
        consensus = self.canonical({"spans": spans})
        return Merged(consensus, support_confidence(self, payloads, w, consensus, schema))

    def canonical(self, payload: Payload) -> Payload:
        spans = sorted(payload["spans"], key=span_sort_key)
        return {"spans": [{key: s[key] for key in _FIELDS} for s in spans]}
