"""Reading task files row by row: JSON arrays, JSON Lines and CSV, never loaded whole.

A row is either ``{"external_id", "data": {...}, "priority", "gold_answer"}`` or, without a
``data`` key, an object whose other keys are the data (the shape most tools export). A row
without ``external_id`` gets one from a hash of its data, so importing the same file twice
changes nothing either way. In CSV, a ``data`` column holds JSON; otherwise every column but
the reserved ones is a data field, and whole numbers are read as numbers.
"""

import csv
import hashlib
import io
import json
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import ijson

from tasks.kinds import Kind
from tasks.kinds.base import ValidationIssue

FORMATS = ("json", "jsonl", "csv")
RESERVED = {"external_id", "data", "priority", "gold_answer"}
MAX_EXTERNAL_ID = 200
# Task priority is stored as a smallint.
PRIORITY_RANGE = (-32768, 32767)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """A valid row, with its data and gold answer already serialised for the database."""

    number: int
    external_id: str
    data: dict
    priority: int
    gold_answer: Any
    data_json: str
    gold_json: str | None


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


def guess_format(filename: str) -> str | None:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}.get(suffix)


def _raw_rows(stream: BinaryIO, fmt: str) -> Iterator[tuple[int, Any]]:
    """Yield (row number, parsed object or an exception) from a binary stream."""
    if fmt == "jsonl":
        for number, line in enumerate(stream, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    yield number, exc
    elif fmt == "json":
        number = 0
        if _first_byte(stream) != b"[":
            yield 1, ValueError("the file must be a JSON array of objects")
            return
        try:
            for number, item in enumerate(ijson.items(stream, "item", use_float=True), start=1):
                yield number, item
        except ijson.JSONError as exc:
            yield number + 1, ValueError(f"the file is not a JSON array of objects ({exc})")
    elif fmt == "csv":
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            # Row 1 is the header, so data rows are numbered as a spreadsheet shows them.
            for number, record in enumerate(csv.DictReader(text), start=2):
                yield number, _csv_record(record)
        finally:
            text.detach()
    else:
        raise ValueError(f"Unknown format {fmt!r}")


def _first_byte(stream: BinaryIO) -> bytes:
    """Return the first byte that is not white space, leaving the stream where it was."""
    start = stream.tell()
    chunk = stream.read(4096).lstrip()
    stream.seek(start)
    return chunk[:1]


def _csv_value(value: str) -> Any:
    stripped = value.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    return value


def _csv_record(record: dict) -> Any:
    if None in record:  # more cells than header columns
        return ValueError("the row has more cells than the header")
    if "data" in record:
        try:
            data = json.loads(record["data"])
        except ValueError as exc:
            return ValueError(f"data: not valid JSON ({exc})")
        out = {"data": data}
    else:
        out = {"data": {k: _csv_value(v) for k, v in record.items() if k not in RESERVED}}
    for key in ("external_id", "priority"):
        if record.get(key) not in (None, ""):
            out[key] = _csv_value(record[key])
    if record.get("gold_answer"):
        try:
            out["gold_answer"] = json.loads(record["gold_answer"])
        except ValueError as exc:
            return ValueError(f"gold_answer: not valid JSON ({exc})")
    return out


def _hash_id(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha1:" + hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()


def read_rows(
    stream: BinaryIO, fmt: str, *, kind: Kind, schema: dict
) -> Iterator[Row | list[RowError]]:
    """Yield each row as a ``Row`` or as the list of everything wrong with it."""
    for number, raw in _raw_rows(stream, fmt):
        if isinstance(raw, Exception):
            yield [RowError(number, "", str(raw))]
            continue
        if not isinstance(raw, dict):
            yield [RowError(number, "", "a row must be a JSON object")]
            continue
        errors: list[RowError] = []
        data = raw["data"] if "data" in raw else {k: v for k, v in raw.items() if k not in RESERVED}
        if not isinstance(data, dict):
            yield [RowError(number, "data", "must be a JSON object")]
            continue
        external_id = raw.get("external_id")
        if external_id is None:
            external_id = _hash_id(data)
        elif isinstance(external_id, bool) or not isinstance(external_id, str | int):
            errors.append(RowError(number, "external_id", "must be a string or an integer"))
        elif not 0 < len(str(external_id)) <= MAX_EXTERNAL_ID:
            errors.append(RowError(number, "external_id", f"must be 1 to {MAX_EXTERNAL_ID} long"))
        priority = raw.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            errors.append(RowError(number, "priority", "must be a whole number"))
        elif not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
            errors.append(RowError(number, "priority", f"must be within {PRIORITY_RANGE}"))
        data_issues = kind.validate_task_data(data)
        errors.extend(_row_errors(number, "data", data_issues))
        gold = raw.get("gold_answer")
        if gold is not None and not data_issues:
            errors.extend(
                _row_errors(number, "gold_answer", kind.validate_payload(gold, schema, data))
            )
        data_json, gold_json = _to_json(data, number, "data", errors), None
        if gold is not None:
            gold_json = _to_json(gold, number, "gold_answer", errors)
        if errors:
            yield errors
        else:
            yield Row(number, str(external_id), data, priority, gold, data_json, gold_json)


def _row_errors(number: int, prefix: str, issues: Iterable[ValidationIssue]) -> list[RowError]:
    return [RowError(number, issue.under(prefix).path, issue.message) for issue in issues]


def _to_json(value: Any, number: int, field: str, errors: list[RowError]) -> str:
    """Serialise for PostgreSQL's jsonb, which refuses NaN, infinities and NUL characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        errors.append(RowError(number, field, "NaN and infinite numbers are not valid JSON"))
        return ""
    if "\\u0000" in text:
        errors.append(RowError(number, field, "contains a NUL character"))
    return text


_END = object()


def read_ahead(items: Iterable[T], *, chunk: int, depth: int = 2) -> Iterator[T]:
    """Yield ``items`` while a background thread reads up to ``depth`` chunks of them ahead.

    Parsing and validating rows is Python work that can go on while the caller waits for the
    database to write the previous batch. Memory stays bounded by ``depth * chunk`` items. An
    error raised while reading is raised here, at the point the caller reaches it; a caller that
    stops early stops the reader too.
    """
    chunks: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(value) -> bool:
        while not stopped.is_set():
            try:
                chunks.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            buffer: list = []
            for item in items:
                buffer.append(item)
                if len(buffer) >= chunk:
                    if not put(buffer):
                        return
                    buffer = []
            if put(buffer):
                put(_END)
        except BaseException as exc:  # handed to the caller, which raises it
            put(exc)

    reader = threading.Thread(target=read, name="read-ahead", daemon=True)
    reader.start()
    try:
        while (value := chunks.get()) is not _END:
            if isinstance(value, BaseException):
                raise value
            yield from value
    finally:
        stopped.set()
        reader.join()
