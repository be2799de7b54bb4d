"""relations: labelled spans with ids and directed labelled relations between them.

{"spans": [{"id", "start", "end", "label"}], "relations": [{"from", "to", "label"}]}
Span ids only wire relations within one payload: two annotators' payloads are compared and merged
through the spans' (start, end, label), so their ids need not agree.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
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
    unique_id,
)
from tasks.kinds.matching import detection_scores, set_f1
from tasks.kinds.schema import label_order, label_schema_issues, relation_types_check, schema_shape
from tasks.kinds.shapes import IDENTIFIER, NAME, array, names, obj
from tasks.kinds.spans import check_spans, ner_key, span_sort_key, spans_shape
from tasks.kinds.validation import (
    MAX_ITEMS,
    MAX_RELATIONS,
    check_label,
    check_object,
    field_path,
    index_path,
    payload_arrays,
    quote,
    text_data_issues,
)

_SPAN_FIELDS = ("id", "start", "end", "label")
_RELATION_FIELDS = ("from", "to", "label")


def relation_triples(payload: Payload) -> set[tuple[Hashable, Hashable, str]]:
    """Return the payload's relations as (head span key, tail span key, label) triples."""
    keys = {span["id"]: ner_key(span) for span in payload["spans"]}
    return {(keys[r["from"]], keys[r["to"]], r["label"]) for r in payload["relations"]}


class Relations(Kind):
    key = "relations"
    title = "Entities and relations"
    label_schema_shape = schema_shape(
        extra_required={"relation_types": names(min_items=1, noun="relation types")}
    )
    payload_shape = obj(
        {
            "spans": spans_shape(_SPAN_FIELDS),
            "relations": array(
                obj(
                    {
                        "from": {**IDENTIFIER, "description": "The id of the head span."},
                        "to": {**IDENTIFIER, "description": "The id of the tail span."},
                        "label": {**NAME, "description": "One of the schema's relation_types."},
                    },
                    required=_RELATION_FIELDS,
                ),
                max_items=MAX_RELATIONS,
            ),
        },
        required=("spans", "relations"),
    )
    label_paths = {"labels": "$.spans[*].label", "relation_types": "$.relations[*].label"}

    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        return label_schema_issues(schema, extra_required={"relation_types": relation_types_check})

    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        return text_data_issues(data)

    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        limits = {"spans": MAX_ITEMS, "relations": MAX_RELATIONS}
        arrays = payload_arrays(payload, limits, issues)
        spans = check_spans(
            arrays.get("spans", ()),
            len(data["text"]),
            label_order(schema),
            issues,
            required=_SPAN_FIELDS,
            key=ner_key,
        )
        ids = _span_ids(arrays.get("spans", ()), spans, issues)
        if "spans" in arrays:  # without the spans, references cannot be checked
            _check_relations(arrays.get("relations", ()), ids, schema, issues)
        return issues

    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score the F1 over (head span, tail span, label) triples, spans matched strictly.

        Two payloads without relations score 1 whatever their spans; the span F1 is in details.
        """
        triples_a, triples_b = relation_triples(a), relation_triples(b)
        matched = len(triples_a & triples_b)
        details: dict[str, Any] = detection_scores(matched, len(triples_a), len(triples_b))
        details["matched"] = matched
        spans = set_f1({ner_key(s) for s in a["spans"]}, {ner_key(s) for s in b["spans"]})
        details["span_f1"] = spans["f1"]
        return Comparison(details["f1"], details)

    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Keep the spans and the relations a quorum chose.

        A relation's voters also chose both its spans, so kept relations always join kept
        spans. Each span keeps the id its heaviest voter gave it (renamed on a clash), so
        merging identical payloads returns them unchanged.
        """
        check_quorum(quorum)
        w = annotator_weights(weights, len(payloads))
        kept_spans = quorum_keys([[ner_key(s) for s in p["spans"]] for p in payloads], w, quorum)
        kept_relations = quorum_keys([relation_triples(p) for p in payloads], w, quorum)
        preference = sorted(range(len(payloads)), key=lambda p: (-w[p], p))
        rank = {p: n for n, p in enumerate(preference)}
        ids_by_key = [{ner_key(s): s["id"] for s in p["spans"]} for p in payloads]
        used: set[Hashable] = set()
        span_ids: dict[Hashable, Hashable] = {}
        for key in sorted(kept_spans, key=lambda k: (k[0], k[1], k[2])):
            voter = min(kept_spans[key], key=rank.__getitem__)
            span_ids[key] = unique_id(ids_by_key[voter][key], used)
        spans = [{"id": span_ids[k], "start": k[0], "end": k[1], "label": k[2]} for k in span_ids]
        relations = [
            {"from": span_ids[head], "to": span_ids[tail], "label": label}
            for head, tail, label in kept_relations
        ]
        consensus = self.canonical({"spans": spans, "relations": relations})
        return Merged(consensus, support_confidence(self, payloads, w, consensus, schema))

    def canonical(self, payload: Payload) -> Payload:
        spans = sorted(payload["spans"], key=span_sort_key)
        keys = {s["id"]: span_sort_key(s) for s in spans}
        relations = sorted(
            payload["relations"], key=lambda r: (keys[r["from"]], keys[r["to"]], r["label"])
        )
        return {
            "spans": [{key: s[key] for key in _SPAN_FIELDS} for s in spans],
            "relations": [{key: r[key] for key in _RELATION_FIELDS} for r in relations],
        }


def _span_ids(
    raw: Sequence[Any], spans: list[dict | None], issues: list[ValidationIssue]
) -> dict[Hashable, dict | None]:
    """Map each span id to its span (None when the span is invalid); report duplicate ids."""
    ids: dict[Hashable, dict | None] = {}
    first: dict[Hashable, int] = {}
    for index, span in enumerate(raw):
        if not isinstance(span, dict) or "id" not in span:
            continue
        span_id = span["id"]
        if not isinstance(span_id, Hashable) or isinstance(span_id, bool | float):
            continue
        if span_id in first:
            issues.append(
                ValidationIssue(
                    field_path(index_path("spans", index), "id"),
                    f"duplicate id {_show(span_id)} (also {index_path('spans', first[span_id])})",
                )
            )
            ids[span_id] = None
            continue
        first[span_id] = index
        ids[span_id] = spans[index]
    return ids


def _check_relations(
    relations: Sequence[Any],
    ids: dict[Hashable, dict | None],
    schema: Schema,
    issues: list[ValidationIssue],
) -> None:
    types = set(schema.get("relation_types", ()))
    seen: dict[tuple, int] = {}
    for index, relation in enumerate(relations):
        path = index_path("relations", index)
        if not check_object(relation, path, issues, required=_RELATION_FIELDS):
            continue
        ok = all(key in relation for key in _RELATION_FIELDS)
        if "label" in relation:
            ok = check_label(relation["label"], field_path(path, "label"), types, issues) and ok
        for end in ("from", "to"):
            if end not in relation:
                continue
            target = relation[end]
            if isinstance(target, bool | float) or not isinstance(target, Hashable):
                issues.append(ValidationIssue(field_path(path, end), "expected a span id"))
                ok = False
            elif target not in ids:
                issues.append(
                    ValidationIssue(field_path(path, end), f"no span has id {_show(target)}")
                )
                ok = False
            elif ids[target] is None:  # that span's own problem is reported already
                ok = False
        if not ok:
            continue
        if relation["from"] == relation["to"]:
            issues.append(ValidationIssue(path, "a relation cannot link a span to itself"))
            continue
        identity = (relation["from"], relation["to"], relation["label"])
        if identity in seen:
            issues.append(
                ValidationIssue(path, f"duplicate of {index_path('relations', seen[identity])}")
            )
            continue
        seen[identity] = index


def _show(value: Hashable) -> str:
    return quote(value) if isinstance(value, str) else str(value)
