"""The interface every annotation kind implements.

A kind knows how to check a project's label schema, a task's data and an annotator's payload, how
to score one payload against another, how to merge several payloads into a consensus, and which
export formats it offers. Kinds are pure Python (no Django) so that the quality math can be tested
and benchmarked on its own and reused by jobs, views and management commands alike.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

Payload = Any
Schema = dict[str, Any]
TaskData = dict[str, Any]
# One exported task: (the client's external id, task data, annotation payload).
ExportItem = tuple[Any, TaskData, Payload]

# A geometric or span cluster is kept when its supporters weigh more than this share of the total
# annotator weight (DESIGN.md section 5: "keep the clusters a quorum agrees on").
DEFAULT_QUORUM = 0.5


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem in a schema, task data or payload, located by its JSON path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def under(self, prefix: str) -> ValidationIssue:
        """The same issue, located inside the document at `prefix` (e.g. a request's payload)."""
        return ValidationIssue(f"{prefix}.{self.path}" if self.path else prefix, self.message)


def issues_by_path(issues: Iterable[ValidationIssue]) -> dict[str, list[str]]:
    """Group issues' messages by path, as an API error names its fields."""
    fields: dict[str, list[str]] = {}
    for issue in issues:
        fields.setdefault(issue.path, []).append(issue.message)
    return fields


class PayloadInvalid(Exception):
    """Raise with every issue found, so that a client can fix them all in one round trip."""

    def __init__(self, issues: Sequence[ValidationIssue]):
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


@dataclass(frozen=True, slots=True)
class Comparison:
    """The agreement of payload `a` with the reference payload `b`.

    `score` is in [0, 1]; `details` holds JSON-serialisable figures such as precision, recall and
    the matched pairs, for review screens and audits.
    """

    score: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Merged:
    """A consensus payload and how strongly the annotators support it.

    `confidence` is the weighted mean of `compare(payload_i, consensus)` over annotators, so it is 1
    exactly when every annotator agrees with the consensus; for classification it equals the
    winning weight share.
    """

    payload: Payload
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """A named export that writes text chunks, so callers can stream it to a file or response."""

    name: str
    extension: str
    media_type: str
    write: Callable[[Iterable[ExportItem], Schema], Iterator[str]]


class UnknownExportFormat(KeyError):
    """Raised when a kind does not offer the requested export format."""


def write_jsonl(items: Iterable[ExportItem], schema: Schema) -> Iterator[str]:
    """Yield one JSON line per task: {"external_id", "data", "annotation"}.

    An item may carry a fourth element, a dict of facts about the task added to its line (the
    project export adds ``complete`` and ``annotators``).
    """
    for external_id, data, payload, *facts in items:
        record = {"external_id": external_id, "data": data, "annotation": payload}
        if facts:
            record.update(facts[0])
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


JSONL = ExportFormat("jsonl", "jsonl", "application/x-ndjson", write_jsonl)


class Kind(ABC):
    """One annotation kind. Subclasses are stateless singletons held by the registry."""

    key: ClassVar[str]
    title: ClassVar[str]
    export_formats: ClassVar[tuple[ExportFormat, ...]] = (JSONL,)
    # What `validate_schema` and `payload_issues` accept, as far as JSON Schema can say it
    # without the project and the task (tasks/kinds/shapes.py); the API's schema shows them.
    label_schema_shape: ClassVar[dict[str, Any]]
    payload_shape: ClassVar[dict[str, Any]]
    # Where a payload names an entry of one of the schema's lists, by list: SQL/JSON paths (lax
    # mode, so a payload without the field yields nothing). PostgreSQL reads the names stored
    # work uses through them, so that a schema change cannot orphan it and an export can check
    # its names before its first byte; a million annotations never come to Python for it.
    label_paths: ClassVar[dict[str, str]]

    @abstractmethod
    def validate_schema(self, schema: Schema) -> list[ValidationIssue]:
        """Return every problem in a project's label schema for this kind."""

    @abstractmethod
    def validate_task_data(self, data: TaskData) -> list[ValidationIssue]:
        """Return every problem with what a task's data must contain for this kind."""

    def validate_payload(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        """Return every problem in a payload; the schema is assumed valid.

        Task data that fails `validate_task_data` is reported with paths under `data.` instead of
        checking the payload against it.
        """
        issues = self.validate_task_data(data)
        if issues:
            return [issue.under("data") for issue in issues]
        return self.payload_issues(payload, schema, data)

    @abstractmethod
    def payload_issues(
        self, payload: Payload, schema: Schema, data: TaskData
    ) -> list[ValidationIssue]:
        """Return every problem in a payload for valid task data (see `validate_payload`)."""

    @abstractmethod
    def compare(self, a: Payload, b: Payload, schema: Schema) -> Comparison:
        """Score valid payload `a` against the valid reference payload `b`."""

    @abstractmethod
    def merge(
        self,
        payloads: Sequence[Payload],
        weights: Sequence[float] | None,
        schema: Schema,
        *,
        quorum: float = DEFAULT_QUORUM,
    ) -> Merged:
        """Merge valid payloads from several annotators into one consensus payload."""

    @abstractmethod
    def canonical(self, payload: Payload) -> Payload:
        """Return the payload with its items in a deterministic order (merge output order)."""

    def schema_names(self, schema: Schema) -> dict[str, set[str]]:
        """Return the names a payload may use, by schema list (those of ``label_paths``)."""
        return {
            key: {
                entry["name"] if isinstance(entry, dict) else entry for entry in schema.get(key, ())
            }
            for key in self.label_paths
        }

    def frozen_schema_fields(self, before: Schema, after: Schema) -> list[str]:
        """Return the schema fields whose change would invalidate any stored payload.

        Names are checked against stored work through ``label_paths``; this is for the rest
        (the number of keypoints, which payloads follow by position).
        """
        return []

    def check_payload(self, payload: Payload, schema: Schema, data: TaskData) -> None:
        """Raise PayloadInvalid carrying every issue when the payload is not valid."""
        issues = self.validate_payload(payload, schema, data)
        if issues:
            raise PayloadInvalid(issues)

    def export(self, fmt: str, items: Iterable[ExportItem], schema: Schema) -> Iterator[str]:
        """Stream the export `fmt` of (external_id, data, payload) items as text chunks."""
        for export_format in self.export_formats:
            if export_format.name == fmt:
                return export_format.write(items, schema)
        offered = ", ".join(f.name for f in self.export_formats)
        raise UnknownExportFormat(f"{self.key} exports {offered}, not {fmt!r}")

    def __repr__(self) -> str:
        return f"<Kind {self.key}>"
