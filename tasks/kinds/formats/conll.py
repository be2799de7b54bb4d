"""CoNLL-style BIO token tags for ner, streamed one line at a time.

Each task becomes a block: a `# external_id = ...` comment line (the client's id), one `token TAG` line per token
(tags B-label, I-label, O) and a blank line. Tokens are runs of word characters or single
punctuation marks. BIO cannot express overlapping spans: the earliest span wins (the longest on a
tie) and spans overlapping a kept one are left out. A span that cuts a token tags the whole token.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence

from tasks.kinds.base import ExportFormat, ExportItem, Schema

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[tuple[int, int]]:
    """Return the (start, end) offsets of the text's tokens."""
    return [match.span() for match in _TOKEN.finditer(text)]


def bio_tags(tokens: Sequence[tuple[int, int]], spans: Iterable[dict]) -> list[str]:
    """Tag the tokens with the spans they fall in, as IOB2 (every entity opens with B-)."""
    tags = ["O"] * len(tokens)
    starts = [start for start, _ in tokens]
    ends = [end for _, end in tokens]
    for span in sorted(spans, key=lambda s: (s["start"], -s["end"], s["label"])):
        first = bisect_right(ends, span["start"])  # first token ending after the span starts
        last = bisect_left(starts, span["end"])  # first token starting at or after its end
        if first >= last or any(tag != "O" for tag in tags[first:last]):
            continue
        tags[first] = f"B-{span['label']}"
        for index in range(first + 1, last):
            tags[index] = f"I-{span['label']}"
    return tags


def write_conll(items: Iterable[ExportItem], schema: Schema) -> Iterator[str]:
    """Yield the BIO lines of every task, one line per chunk."""
    for external_id, data, payload in items:
        text = data["text"]
        tokens = tokenize(text)
        yield f"# external_id = {external_id}\n"
        for (start, end), tag in zip(tokens, bio_tags(tokens, payload["spans"]), strict=True):
            yield f"{text[start:end]} {tag}\n"
        yield "\n"


CONLL = ExportFormat("conll", "conll", "text/plain", write_conll)
