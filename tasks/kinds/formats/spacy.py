"""spaCy-style JSONL for ner: {"text", "entities": [[start, end, label], ...], "meta"}.

This is the character-offset layout spaCy's training examples are built from
(`Doc.char_span(start, end, label)`); `meta.external_id` is the client's id of the task.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from tasks.kinds.base import ExportFormat, ExportItem, Payload, Schema


def spacy_record(external_id: Any, text: str, payload: Payload) -> dict[str, Any]:
    spans = sorted(payload["spans"], key=lambda s: (s["start"], s["end"], s["label"]))
    return {
        "text": text,
        "entities": [[s["start"], s["end"], s["label"]] for s in spans],
        "meta": {"external_id": external_id},
    }


def write_spacy(items: Iterable[ExportItem], schema: Schema) -> Iterator[str]:
    for external_id, data, payload in items:
        record = spacy_record(external_id, data["text"], payload)
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


SPACY = ExportFormat("spacy", "jsonl", "application/x-ndjson", write_spacy)
