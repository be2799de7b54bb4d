"""Reading task files row by row: JSON arrays, JSON Lines and CSV, never loaded whole.

A row is either ``{"external_id", "data": {...}, "priority", "gold_answer"}`` or, without a
``data`` key, an object whose other keys are the data (the shape most tools export). A row
without ``external_id`` gets one from a hash of its data, so importing the same file twice
changes nothing either way. In CSV, a ``data`` column holds JSON; otherwise every column but
the reserved ones is a data field, and a cell of ASCII digits with an optional sign that fits a
``bigint`` is read as a number (any other cell, ``²``, Arabic-Indic digits or ``--1`` among them, is text).

An external id is text. An integer id is its decimal text, so ``77`` and ``"77"`` are the same
id; a CSV cell is the id as written (``007`` stays ``007``). An id that appears twice in one file
makes the second row invalid (field ``external_id``, naming the first row), whatever else the
rows hold; rows without an id that have the same data are duplicates in the same way.

Nothing a file holds reaches an exception that is not a row error. A row that PostgreSQL would
refuse (NUL characters, lone surrogates, non-finite numbers, in values and keys alike), that
nests deeper than ``MAX_JSON_DEPTH`` or that is not valid UTF-8 is a row error with its number,
and reading goes on with the next row. Two faults end the file instead, with a row error naming
where: a row larger than ``MAX_ROW_BYTES`` in a JSON array or CSV file (a JSON Lines file skips
to the next line), and a JSON array or CSV file that stops being well-formed, after which no
later row can be told apart.
"""

import csv
import hashlib
import io
import json
import multiprocessing
import os
import queue
import re
import threading
from array import array
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import ijson
import orjson
from ijson.backends import python as ijson_python

from config.storable import MAX_JSON_DEPTH, bigint_problem, json_problems, text_problem
from tasks.kinds import Kind
from tasks.kinds.base import ValidationIssue

FORMATS = ("json", "jsonl", "csv")
RESERVED = {"external_id", "data", "priority", "gold_answer"}
MAX_EXTERNAL_ID = 200
# Task priority is stored as a smallint.
PRIORITY_RANGE = (-32768, 32767)
# The largest row a file may hold: a gold answer at the kinds' limits fits (the largest, 200,000
# video-track boxes, is 23 MB), as it fits a request body. A row is parsed whole and its Python
# objects take several times its size, so this bounds a reader's memory whatever the file holds.
MAX_ROW_BYTES = 32 * 2**20
# A CSV cell can be as large as a row (a ``data`` column holding JSON); the module's default
# limit (128 KiB) would end the file at a legitimate large cell. The limit is process-wide and
# only ever raised here.
csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_BYTES))
# The longest field path or message a row error keeps.
MAX_ERROR_TEXT = 300
# A row is an object holding data, so it may nest one level deeper than its data.
MAX_ROW_DEPTH = MAX_JSON_DEPTH + 1
_BOM = b"\xef\xbb\xbf"
# Whole numbers in CSV cells: ASCII digits only (``str.isdigit`` accepts ``²``
# and Arabic-Indic digits, which ``int`` then refuses or reads as another number).
_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """A valid row, with its data and gold answer serialised as the database will take them."""

    number: int
    external_id: str
    priority: int
    data_json: str
    gold_json: str | None


def row_bytes(row: "Row | list[RowError]") -> int:
    """What a row weighs in memory, near enough: the JSON it will be written as."""
    if isinstance(row, Row):
        return len(row.data_json) + len(row.gold_json or "")
    return 100 * len(row)


@dataclass(frozen=True, slots=True)
class RowError:
    """What is wrong with a row. Field and message are storable text: they name keys a file
    chose, which may hold a NUL or a lone surrogate, and the report is kept in a ``jsonb``."""

    row: int
    field: str
    message: str

    def __post_init__(self) -> None:
        # Cut short too: a key can be megabytes long, and a report lists a thousand errors.
        object.__setattr__(self, "field", _storable(self.field)[:MAX_ERROR_TEXT])
        object.__setattr__(self, "message", _storable(self.message)[:MAX_ERROR_TEXT])

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


def _storable(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as escapes."""
    if text_problem(text) is None:
        return text
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


class _FieldError(ValueError):
    """What is wrong with one field of a raw row, found while reading it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class _RowTooLarge(Exception):
    pass


def guess_format(filename: str) -> str | None:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}.get(suffix)


def file_problem(stream: BinaryIO, fmt: str) -> str | None:
    """Why a file cannot be read as ``fmt`` at all (empty, or JSON that is not an array), or
    None. Reads up to its first byte that is not white space; leaves the stream where it was."""
    start = stream.tell()
    _skip_bom(stream)
    first = b""
    while not first and (chunk := stream.read(2**16)):
        first = chunk.lstrip()[:1]
    stream.seek(start)
    if not first:
        return "The file is empty."
    if fmt == "json" and first != b"[":
        return "The file must be a JSON array of objects."
    return None


def _skip_bom(stream: BinaryIO) -> None:
    start = stream.tell()
    if stream.read(len(_BOM)) != _BOM:
        stream.seek(start)


def _too_large(limit: int | None = None) -> str:
    return f"the row is larger than {(limit or MAX_ROW_BYTES) // 2**20} MB"


def _raw_rows(stream: BinaryIO, fmt: str) -> Iterator[tuple[int, Any]]:
    """Yield (row number, parsed object or an exception) from a JSON array or CSV stream."""
    if fmt == "json":
        yield from _json_rows(stream)
    elif fmt == "csv":
        yield from _csv_rows(stream)
    else:
        raise ValueError(f"Unknown format {fmt!r}")


# A run of 19 digits may be an integer beyond 64 bits, which orjson reads as a float (losing
# digits) where json keeps it whole. Digits inside a string count too: that only costs json's
# slower parse for the row. Found by turning every digit into 0, then looking for 19 of them.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def _loads(text: str | bytes) -> Any:
    """``json.loads``, with a nesting too deep for its recursion as a ValueError.

    A line of bytes is parsed by orjson, four times faster, which reads what it accepts as json
    does; what it refuses (NaN, lone surrogate escapes, numbers out of a double's range, invalid
    UTF-8, deep nesting) json parses, so that a row has the same value or error either way.
    """
    if isinstance(text, bytes) and _LONG_NUMBER not in text.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels") from exc


class _LoneSurrogateEscape(Exception):
    pass


# A \uXXXX escape of a lone surrogate: a high one not followed by a low one, or a low one not
# preceded by a high one. yajl (ijson's C parser) turns the first into "?", silently, and fails
# on the second, where Python's json keeps both (and the row is then refused). An escaped
# backslash before ``u`` matches too: that only costs the slower parser, never a wrong row.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class _BoundedReader:
    """A binary stream that refuses to read more than ``MAX_ROW_BYTES`` past a row's start.

    ijson reads 64 KB at a time and holds a token being parsed whole (a string of hundreds of
    MB, say), so the bound is kept here, where the bytes come in. The count starts when the
    parser reports the row, so a row is refused only once it is larger than the bound (one
    up to 64 KB larger may pass). With ``surrogates`` set, a chunk that holds a lone surrogate
    escape raises before the parser sees it.
    """

    def __init__(self, stream: BinaryIO, *, surrogates: bool):
        self.stream = stream
        self.surrogates = surrogates
        self.read_so_far = 0
        self.row_start = 0
        self.tail = b""

    def row_started(self) -> None:
        self.row_start = self.read_so_far

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size if size >= 0 else 2**16)
        self.read_so_far += len(chunk)
        if self.read_so_far - self.row_start > MAX_ROW_BYTES:
            raise _RowTooLarge
        if self.surrogates and chunk:
            # The end of the previous chunk is searched again: an escape may straddle the two.
            if _LONE_SURROGATE.search(self.tail + chunk):
                raise _LoneSurrogateEscape
            self.tail = chunk[-12:]
        return chunk


_OPEN = {"start_map", "start_array"}
_CLOSE = {"end_map", "end_array"}
_SCALARS = {"string", "number", "boolean", "null", "integer", "double"}


def _json_rows(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Rows of a JSON array, read by ijson's C parser or, when the file holds a lone surrogate
    escape the C parser would alter, read again by its Python parser (13 times slower), the
    rows already yielded skipped."""
    _skip_bom(stream)
    start, yielded = stream.tell(), 0
    try:
        for number, row in _json_rows_parsed(stream, ijson.basic_parse, surrogates=True):
            yielded = number
            yield number, row
        return
    except _LoneSurrogateEscape:
        pass
    stream.seek(start)
    for number, row in _json_rows_parsed(stream, ijson_python.basic_parse, surrogates=False):
        if number > yielded:
            yield number, row


def _json_rows_parsed(
    stream: BinaryIO, basic_parse: Callable, *, surrogates: bool
) -> Iterator[tuple[int, Any]]:
    """Rows of a JSON array, built from the parser's events.

    ``ijson.items`` builds a prefix string per nesting level, which costs time and memory
    quadratic in the depth (100,000 nested ``[`` took 20 GB); events cost nothing per level,
    and a row deeper than ``MAX_ROW_DEPTH`` is skipped by counting its brackets.
    """
    reader = _BoundedReader(stream, surrogates=surrogates)
    events = basic_parse(reader, use_float=True)
    number, in_row = 0, False
    try:
        first = next(events, None)
        if first is None or first[0] != "start_array":
            yield 1, ValueError("the file must be a JSON array of objects")
            return
        for event, value in events:
            if event == "end_array":  # the end of the file's array
                break
            number += 1
            reader.row_started()
            in_row = True
            row = _build(event, value, events)
            in_row = False
            yield number, row
        for _ in events:  # anything after the array is an error of the parser
            pass
    except _RowTooLarge:
        yield (
            number + (not in_row),
            ValueError(_too_large() + "; the rest of the file was not read"),
        )
    except (ijson.JSONError, ValueError) as exc:
        reason = _reason(exc)
        yield (
            number + (not in_row),
            ValueError(f"the file is not a JSON array of objects ({reason})"),
        )


def _reason(exc: Exception) -> str:
    """The first line of a parser's error (yajl's quote the input on the lines after it)."""
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return (str(text).splitlines() or [type(exc).__name__])[0]


def _build(event: str, value: Any, events: Iterator[tuple[str, Any]]) -> Any:
    """Build one value from its first event and the events after it, without recursion.

    The hot loop of reading a JSON array: scalars, the most common events, are tested first.
    """
    if event not in _OPEN:
        return value
    root: Any = {} if event == "start_map" else []
    stack: list[Any] = [root]
    parent, in_map, key = root, event == "start_map", None
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event in _SCALARS:
            if in_map:
                parent[key] = value
            else:
                parent.append(value)
            continue
        if event in _CLOSE:
            stack.pop()
            if not stack:
                return root
            parent = stack[-1]
            in_map = type(parent) is dict
            continue
        child: Any = {} if event == "start_map" else []
        if in_map:
            parent[key] = child
        else:
            parent.append(child)
        if len(stack) >= MAX_ROW_DEPTH:
            _skip(events, open_levels=len(stack) + 1)
            return ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
        stack.append(child)
        parent, in_map = child, event == "start_map"
    raise ValueError("the file ends inside a row")


def _skip(events: Iterator[tuple[str, Any]], *, open_levels: int) -> None:
    """Read past the rest of a value that ``open_levels`` containers are still open in."""
    for event, _ in events:
        if event in _OPEN:
            open_levels += 1
        elif event in _CLOSE:
            open_levels -= 1
            if not open_levels:
                return
    raise ValueError("the file ends inside a row")


class _CsvLines:
    """The lines of a CSV text, each read with a bound, counting the characters of a record."""

    def __init__(self, text: io.TextIOBase):
        self.text = text
        self.record = 0

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        line = self.text.readline(MAX_ROW_BYTES + 1)
        if not line:
            raise StopIteration
        self.record += len(line)
        if self.record > MAX_ROW_BYTES:
            raise _RowTooLarge
        return line


def _csv_rows(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    # Bytes that are not UTF-8 become lone surrogates (U+DC80-U+DCFF), which no UTF-8 text
    # decodes to: the row that holds them is then a row error, and reading goes on.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _CsvLines(text)
    # Row 1 is the header, so data rows are numbered as a spreadsheet shows them.
    number = 1
    try:
        reader = csv.DictReader(lines, restval="")
        header = reader.fieldnames or []
        for problem in filter(None, map(text_problem, header)):
            yield 1, ValueError(f"the header {_csv_problem(problem)}")
            return
        for number, record in enumerate(reader, start=2):
            lines.record = 0
            yield number, _csv_record(record)
    except _RowTooLarge:
        yield number + 1, ValueError(_too_large() + "; the rest of the file was not read")
    except csv.Error as exc:
        yield number + 1, ValueError(f"the file is not valid CSV ({exc})")
    finally:
        text.detach()


def _csv_problem(problem: str) -> str:
    # The only lone surrogates decoding can produce stand for bytes that are not UTF-8.
    return "is not valid UTF-8 text" if "surrogate" in problem else problem


def _csv_value(value: str) -> Any:
    stripped = value.strip()
    if _WHOLE.fullmatch(stripped) and len(stripped) <= 20:
        number = int(stripped)
        if not bigint_problem(number):
            return number
    return value


def _csv_record(record: dict) -> Any:
    if None in record:  # more cells than header columns
        return ValueError("the row has more cells than the header")
    for column, value in record.items():
        if value is not None and (problem := text_problem(value)):
            field = column if column in RESERVED or "data" in record else f"data.{column}"
            return _FieldError(field, _csv_problem(problem))
    if "data" in record:
        try:
            data = _loads(record["data"] or "")
        except ValueError as exc:
            return _FieldError("data", f"not valid JSON ({exc})")
        out = {"data": data}
    else:
        out = {"data": {k: _csv_value(v) for k, v in record.items() if k not in RESERVED}}
    if record.get("external_id") not in (None, ""):
        out["external_id"] = record["external_id"]
    if record.get("priority") not in (None, ""):
        cell = record["priority"].strip()
        if not _WHOLE.fullmatch(cell):
            return _FieldError("priority", "must be a whole number")
        if len(cell) > 10:  # far out of range: never hand int() thousands of digits
            return _FieldError("priority", f"must be within {PRIORITY_RANGE}")
        out["priority"] = int(cell)
    if record.get("gold_answer"):
        try:
            out["gold_answer"] = _loads(record["gold_answer"])
        except ValueError as exc:
            return _FieldError("gold_answer", f"not valid JSON ({exc})")
    return out


def _hash_id(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha1:" + hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()


class SeenIds:
    """The external ids one file has had so far, each with the first row that had it.

    An open-addressing table of 64-bit hashes and row numbers in two arrays: 12 bytes a slot,
    at most half full: 24 MB for a million ids (36 MB while it grows), and 0.9 s to add them,
    where a ``dict`` of their hashes takes 117 MB. Python's string hash is keyed per process, so
    a file cannot be made to collide; the chance that two different ids of a million-row file
    share a hash is about 3 in 10^8.
    """

    def __init__(self, capacity: int = 2**16):
        self._hashes = array("Q", bytes(8 * capacity))
        self._rows = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._used = 0

    @property
    def nbytes(self) -> int:
        """The memory its table takes."""
        return len(self._hashes) * self._hashes.itemsize + len(self._rows) * self._rows.itemsize

    def add(self, external_id: str, row: int) -> int | None:
        """Remember ``external_id`` at ``row``; return the earlier row that had it, if any."""
        key = (hash(external_id) & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks a free slot
        hashes, mask = self._hashes, self._mask
        slot = key & mask
        while found := hashes[slot]:
            if found == key:
                return self._rows[slot]
            slot = (slot + 1) & mask
        # Row numbers past 2^32 (a file of billions of blank lines) are kept as the largest.
        hashes[slot], self._rows[slot] = key, min(row, 0xFFFF_FFFF)
        self._used += 1
        if self._used * 2 > mask:
            self._grow()
        return None

    def _grow(self) -> None:
        hashes, rows = self._hashes, self._rows
        capacity = 2 * len(hashes)
        self._hashes = array("Q", bytes(8 * capacity))
        self._rows = array("I", bytes(4 * capacity))
        self._mask = mask = capacity - 1
        for index, key in enumerate(hashes):
            if key:
                slot = key & mask
                while self._hashes[slot]:
                    slot = (slot + 1) & mask
                self._hashes[slot], self._rows[slot] = key, rows[index]


def read_rows(
    stream: BinaryIO, fmt: str, *, kind: Kind, schema: dict, processes: int = 1
) -> Iterator[Row | list[RowError]]:
    """Yield each row as a ``Row`` or as the list of everything wrong with it.

    With ``processes`` above 1, a JSON Lines file larger than ``PARALLEL_MIN_BYTES`` is checked
    by that many processes (``check_rows`` says how).
    """
    for line, errors in check_rows(stream, fmt, kind=kind, schema=schema, processes=processes):
        yield errors if errors is not None else _decoded_row(line)


def check_rows(
    stream: BinaryIO, fmt: str, *, kind: Kind, schema: dict, processes: int = 1
) -> Iterator[tuple[str, list[RowError] | None]]:
    """Check each row of the file; yield it as a checked line and its errors (None if valid).

    A checked line (``read_checked`` reads them back) holds what the database needs of a valid
    row, or the errors of an invalid one, so that a file checked once need not be read again.

    Most of a row's cost is Python's: parsing, serialising, the kind's validation. A JSON Lines
    file is cut into chunks of whole lines, which ``processes`` processes check at once, at most
    two chunks each ahead of the caller, so memory stays a few chunks whatever the file's size.
    Only the check of duplicate ids needs every row, in order: it is done here, as the chunks'
    rows come back. JSON arrays and CSV files cannot be cut without parsing them (a quoted cell
    may span lines), so one process reads them.
    """
    seen = SeenIds()
    if fmt == "jsonl":
        checked = _checked_jsonl(stream, kind, schema, processes)
    else:
        checked = (_checked(number, raw, kind, schema) for number, raw in _raw_rows(stream, fmt))
    for number, external_id, named, line, errors in checked:
        if external_id is not None and (first := seen.add(external_id, number)) is not None:
            message = f"duplicates row {first}"
            if not named:
                message = f"has the same data as row {first}, and neither has an external_id"
            errors = [*(errors or []), RowError(number, "external_id", message)]
            line = _errors_line(errors)
        yield line, errors


def read_checked(lines: Iterable[str]) -> Iterator[Row | list[RowError]]:
    """The rows of checked lines (``check_rows``), as ``read_rows`` yielded them."""
    for line in lines:
        if line.startswith("!"):
            yield [RowError(*error) for error in json.loads(line[1:])]
        else:
            yield _decoded_row(line)


# A checked line is a valid row, ``number TAB external id as JSON TAB priority TAB data TAB gold
# answer``, or ``!`` and its errors as JSON. JSON text holds no raw tab or line break, so
# neither does a line but at its end; a line break is ``\n`` alone (never ``str.splitlines``,
# which breaks at U+2028 too).


def _row_line(row: Row) -> str:
    external_id = orjson.dumps(row.external_id).decode()
    return f"{row.number}\t{external_id}\t{row.priority}\t{row.data_json}\t{row.gold_json or ''}\n"


def _errors_line(errors: list[RowError]) -> str:
    return "!" + json.dumps([[e.row, e.field, e.message] for e in errors]) + "\n"


def _decoded_row(line: str) -> Row:
    number, external_id, priority, data_json, gold_json = line.rstrip("\n").split("\t")
    return Row(
        int(number),
        json.loads(external_id) if "\\" in external_id else external_id[1:-1],
        int(priority),
        data_json,
        gold_json or None,
    )


# What one row's check returns: its number, its external id (None when it has none that could be
# told), whether the file named the id, its checked line, and its errors (None if valid).
Checked = tuple[int, str | None, bool, str, list[RowError] | None]


def _checked(number: int, raw: Any, kind: Kind, schema: dict) -> Checked:
    if isinstance(raw, _FieldError):
        errors = [RowError(number, raw.field, str(raw))]
    elif isinstance(raw, Exception):
        errors = [RowError(number, "", str(raw))]
    elif not isinstance(raw, dict):
        errors = [RowError(number, "", "a row must be a JSON object")]
    else:
        external_id, checked = _row(number, raw, kind=kind, schema=schema)
        named = "external_id" in raw
        if isinstance(checked, Row):
            return number, external_id, named, _row_line(checked), None
        return number, external_id, named, _errors_line(checked), checked
    return number, None, False, _errors_line(errors), errors


# JSON Lines files are checked in chunks of whole lines of about this size...
CHUNK_BYTES = 2**20
# ...by several processes when the file is at least this large (starting them costs more than
# checking a smaller file).
PARALLEL_MIN_BYTES = 8 * 2**20
# How much less of the CPU those processes claim than others (nice(1)'s increment).
CHECK_NICENESS = 10


def _checked_jsonl(stream: BinaryIO, kind: Kind, schema: dict, processes: int) -> Iterator[Checked]:
    chunks = _line_chunks(stream, CHUNK_BYTES, MAX_ROW_BYTES)
    if processes < 2 or _remaining_bytes(stream) < PARALLEL_MIN_BYTES:
        for first, chunk in chunks:
            yield from _checked_lines(first, chunk, kind, schema, MAX_ROW_BYTES)
        return
    # forkserver: each process starts from a clean process that imported this module, never a
    # copy of the caller's threads and database connections.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    # The checking processes yield the cores to everything else: annotators' requests, and the
    # job of an all-or-nothing import, which writes the rows as they are checked and is the
    # longer of the two (bench/import.py).
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=os.nice, initargs=(CHECK_NICENESS,)
    ) as pool:
        ahead: deque[Future] = deque()
        try:
            for first, chunk in chunks:
                ahead.append(pool.submit(_checked_lines, first, chunk, kind, schema, MAX_ROW_BYTES))
                if len(ahead) >= 2 * processes:
                    yield from ahead.popleft().result()
            while ahead:
                yield from ahead.popleft().result()
        finally:
            for future in ahead:  # a caller that stops early leaves no work behind
                future.cancel()


def _remaining_bytes(stream: BinaryIO) -> int:
    """How much of a seekable stream is left to read (0 when it cannot tell)."""
    try:
        here = stream.tell()
        size = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return 0
    return size - here


def _line_chunks(
    stream: BinaryIO, size: int, max_row_bytes: int
) -> Iterator[tuple[int, bytes | None]]:
    """Yield (number of its first line, chunk of whole lines) from a JSON Lines stream.

    A line longer than ``max_row_bytes`` is yielded as None and read past, so that memory stays
    bounded by the limit and one chunk.
    """
    _skip_bom(stream)
    first, parts, held = 1, [], 0  # parts: the start of a line not ended yet
    while block := stream.read(size):
        end = block.rfind(b"\n")
        if end < 0:
            parts.append(block)
            held += len(block)
            if held <= max_row_bytes:
                continue
            yield first, None
            first, parts, held = first + 1, [], 0
            while (block := stream.read(size)) and (end := block.find(b"\n")) < 0:
                pass
            if not block:
                return
            block = block[end + 1 :]
            end = block.rfind(b"\n")
            if end < 0:
                parts, held = [block], len(block)
                continue
        chunk = b"".join([*parts, block[: end + 1]])
        yield first, chunk
        first += chunk.count(b"\n")
        parts, held = [block[end + 1 :]], len(block) - end - 1
    if held:
        yield first, b"".join(parts)


def _checked_lines(
    first: int, chunk: bytes | None, kind: Kind, schema: dict, max_row_bytes: int
) -> list[Checked]:
    """Check a chunk of JSON Lines whose first line is number ``first`` (in any process)."""
    if chunk is None:
        return [_checked(first, ValueError(_too_large(max_row_bytes)), kind, schema)]
    lines = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        lines.pop()
    checked = []
    for number, line in enumerate(lines, start=first):
        if len(line) > max_row_bytes:
            checked.append(_checked(number, ValueError(_too_large(max_row_bytes)), kind, schema))
        elif line.strip():
            try:
                raw = _loads(line)
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError among them
                raw = exc
            checked.append(_checked(number, raw, kind, schema))
    return checked


def _row(
    number: int, raw: dict, *, kind: Kind, schema: dict
) -> tuple[str | None, Row | list[RowError]]:
    """The row's external id (None when it has none that could be told) and the row checked,
    or what is wrong with it; a duplicate id is for ``check_rows`` to find."""
    errors: list[RowError] = []
    data = raw["data"] if "data" in raw else {k: v for k, v in raw.items() if k not in RESERVED}
    if not isinstance(data, dict):
        return None, [RowError(number, "data", "must be a JSON object")]
    external_id, id_problem = _external_id(raw.get("external_id"))
    if id_problem:
        errors.append(RowError(number, "external_id", id_problem))
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        errors.append(RowError(number, "priority", "must be a whole number"))
    elif not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        errors.append(RowError(number, "priority", f"must be within {PRIORITY_RANGE}"))
    # What the database would refuse is checked first: the kind's validation and hashing then
    # only ever see values of bounded depth.
    data_json, data_problems = _serialised(data, number, "data")
    errors.extend(data_problems)
    gold = raw.get("gold_answer")
    gold_json, gold_problems = None, []
    if gold is not None:
        gold_json, gold_problems = _serialised(gold, number, "gold_answer")
        errors.extend(gold_problems)
    if not data_problems:
        data_issues = kind.validate_task_data(data)
        errors.extend(_row_errors(number, "data", data_issues))
        if gold is not None and not data_issues and not gold_problems:
            errors.extend(
                _row_errors(number, "gold_answer", kind.validate_payload(gold, schema, data))
            )
        if external_id is None and not id_problem:
            external_id = _hash_id(data)
    if errors:
        return external_id, errors
    return external_id, Row(number, external_id, priority, data_json, gold_json)


def _external_id(value: Any) -> tuple[str | None, str | None]:
    """The external id as text and None, or None and why it is not one; (None, None) if absent."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None, "must be a string or an integer"
    if isinstance(value, int):
        # More than 200 digits for certain; never turned into text.
        if value.bit_length() > 700:
            return None, f"must be 1 to {MAX_EXTERNAL_ID} characters long"
        value = str(value)
    if not 0 < len(value) <= MAX_EXTERNAL_ID:
        return None, f"must be 1 to {MAX_EXTERNAL_ID} characters long"
    # ASCII text (isascii is O(1)) holds no lone surrogate; only a NUL is left to look for.
    if "\x00" in value or (not value.isascii() and text_problem(value)):
        return None, text_problem(value)
    return value, None


def _row_errors(number: int, prefix: str, issues: Iterable[ValidationIssue]) -> list[RowError]:
    return [RowError(number, issue.under(prefix).path, issue.message) for issue in issues]


def _serialised(value: Any, number: int, field: str) -> tuple[str, list[RowError]]:
    """``value`` as PostgreSQL's jsonb will take it, or what it would refuse.

    The common case is decided by C code: serialising refuses non-finite numbers, encoding
    refuses lone surrogates, a NUL is written as an escape, and a count of brackets bounds the
    nesting (only a row with more brackets than the limit is walked). Any doubt (an escaped
    backslash before ``u0000`` looks like a NUL) is settled by ``json_problems``, which also
    names the path.
    """
    text = _json_text(value)
    # Fewer brackets than the limit cannot nest deeper than it: no walk for most rows.
    if (
        text is not None
        and "\\u0000" not in text
        and (
            text.count("[") + text.count("{") <= MAX_JSON_DEPTH
            or not _deeper_than(value, MAX_JSON_DEPTH)
        )
    ):
        return text, []
    if problems := json_problems(value, path=field):
        return "", [RowError(number, path, reason) for path, reason in problems]
    if text is not None:  # the NUL was an escaped backslash followed by "u0000"
        return text, []
    # Past those checks, only an integer too long to write out is left to refuse.
    return "", [RowError(number, field, "cannot be stored as JSON")]


def _json_text(value: Any) -> str | None:
    """``value`` as compact JSON text, or None when it holds a non-finite number or a lone
    surrogate, or nests deeper than ``json`` can write.

    orjson writes most rows five times faster than json. It refuses lone surrogates, integers
    beyond 64 bits and nesting past 255 levels, and writes NaN and infinities as ``null``; json
    decides those rows (a row holding ``null`` is written again, rather than trust the null).
    """
    try:
        text = orjson.dumps(value).decode()
        if "null" not in text:
            return text
    except orjson.JSONEncodeError:
        pass
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if not text.isascii():  # isascii is O(1); encoding finds lone surrogates
            text.encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError):
        return None
    return text


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest in ``value`` deeper than ``limit`` levels (``value`` is one)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


_END = object()


def read_ahead(
    items: Iterable[T],
    *,
    chunk: int,
    depth: int = 2,
    weight: Callable[[T], int] | None = None,
    max_weight: int = 0,
) -> Generator[T, None, None]:
    """Yield ``items`` while a background thread reads up to ``depth`` chunks of them ahead.

    Parsing and validating rows is Python work that can go on while the caller waits for the
    database to write the previous batch. Memory stays bounded by ``depth * chunk`` items, and,
    with ``weight``, a chunk ends once its items weigh ``max_weight`` (rows of megabytes each
    would otherwise be held by the thousand). An error raised while reading is raised here, at
    the point the caller reaches it; a caller that stops early stops the reader too.
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
            load = 0
            for item in items:
                buffer.append(item)
                if weight is not None:
                    load += weight(item)
                if len(buffer) >= chunk or (weight is not None and load >= max_weight):
                    if not put(buffer):
                        return
                    buffer, load = [], 0
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
