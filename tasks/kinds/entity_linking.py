"""entity_linking: spans linked to knowledge-base ids, {"spans": [{"start", "end", "kb_id"}]}.

A span may also carry a schema label (its entity type); the score ignores it, since the kb id
already says which entity is meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    weighted_vote,
)
from tasks.kinds.matching import detection_scores, set_f1
from tasks.kinds.schema import label_order, label_schema_issues, schema_shape
from tasks.kinds.shapes import obj
from tasks.kinds.spans import check_spans, span_sort_key, spans_shape
from tasks.kinds.validation import MAX_ITEMS, payload_arrays, text_data_issues


def link_key(span: dict) -> tuple[int, int, str]:
    return (span["start"], span["end"], span["kb_id"])


class EntityLinking(Kind):
    key = "entity_linking"
    title = "Entity linking"
    label_schema_shape = schema_shape(labels_required=False)
    payload_shape = obj(
        {"spans": spans_shape(("start", "end", "kb_id"), optional=("label",))}, required=("spans",)
    )
    label_paths = {"labels": "$.spans[*].label"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        # Entity types are optional here: a project may link mentions without typing them.
        return label_schema_issues(schema, labels_required=False)

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return text_data_issues(data)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        spans = payload_arrays(payload, {"spans": MAX_ITEMS}, issues).get("spans", ())
        check_spans(
            spans,
            len(data["text"]),
            label_order(schema),
            issues,
            required=("start", "end", "kb_id"),
            optional=("label",),
            key=link_key,
        )
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the F1 over (start, end, kb_id); details add the F1 of the mentions alone."""
        keys_a = {link_key(s) for s in a["spans"]}
        keys_b = {link_key(s) for s in b["spans"]}
        matched = len(keys_a & keys_b)
        details: dict[str, Any] = detection_scores(matched, len(keys_a), len(keys_b))
        details["matched"] = matched
        mentions = set_f1({k[:2] for k in keys_a}, {k[:2] for k in keys_b})
        details["mention_f1"] = mentions["f1"]
        return Comparison(details["f1"], details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep each (start, end, kb_id) a quorum chose; its label is its voters' weighted vote.

        Voters who gave no label vote for none; ties go to a label, first in schema order.
        """
        check_quorum(quorum)
        w = annotator_weights(weights, len(payloads))
        kept = quorum_keys([[link_key(s) for s in p["spans"]] for p in payloads], w, quorum)
        order = label_order(schema)
        by_key = [{link_key(s): s for s in p["spans"]} for p in payloads]
        spans = []
        for key, voters in kept.items():
            span: dict[str, Any] = {"start": key[0], "end": key[1], "kb_id": key[2]}
            label, _, _ = weighted_vote(
                ((by_key[v][key].get("label"), float(w[v])) for v in voters),
                order=lambda name: (name is None, order.get(name, len(order)), name or ""),
            )
            if label is not None:
                span["label"] = label
            spans.append(span)
        consensus = self.canonical({"spans": spans})
        return Merged(consensus, support_confidence(self, payloads, w, consensus, schema))

    def canonical(self, payload: Payload) -> Payload:
        spans = sorted(payload["spans"], key=span_sort_key)
        fields = ("start", "end", "kb_id", "label")
        return {"spans": [{key: s[key] for key in fields if key in s} for s in spans]}
