"""The parsers of every API request body: JSON, URL-encoded forms and multipart forms.

DRF's own parsers read a body whole whatever its size, crash on JSON nested about a thousand deep
(``RecursionError``, which their ``except ValueError`` lets through) and hand on values that
PostgreSQL refuses later, halfway through a request. These read at most
``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413 beyond it), and answer 400 naming each field whose
value ``config.storable`` says the database would not store: a NUL character or a lone surrogate
in any key or value, a non-finite number, nesting deeper than ``MAX_JSON_DEPTH``, or an integer
outside ``bigint``. Nothing after the parser sees such a value.
"""

import codecs
import json
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from config.errors import PayloadTooLarge, ValidationFailed
from config.storable import MAX_JSON_DEPTH, bigint_problem, json_problems, text_problem

# Where a problem in the body as a whole is reported, as DRF names errors of no single field.
BODY_FIELD = "non_field_errors"
# A JSON string, escapes and all (the unrolled form: no backtracking on long strings).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# What is left of a body once strings are gone, for the nesting check: brackets only.
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
# Numbers as shapes: digits read "0", exponent marks "e", signs "+", anything else " ".
_NUMBER_SHAPES = bytes.maketrans(
    bytes(range(256)),
    bytes(
        ord("0") if chr(c).isdigit() and c < 128 else ord("e") if c in b"eE"
        else ord("+") if c in b"+-" else ord(" ")
        for c in range(256)
    ),
)  # fmt: skip
# Escapes that may spell a NUL or a UTF-16 surrogate.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def body_limit() -> int:
    """The most bytes a request body may have outside its uploaded files."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes.",
        fields={BODY_FIELD: [f"At most {limit} bytes."]},
    )


def read_limited(stream) -> bytes:
    """Read the body, refusing it as soon as it is known to be over the limit.

    The middleware refuses a declared ``Content-Length`` over the limit before anything is read;
    this bounds a body whose length was not declared.
    """
    limit = body_limit()
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise too_large(limit)
    return body


def _fields(problems: list[tuple[str, str]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for path, reason in problems:
        # A path runs through the client's keys, which may hold the very surrogate refused:
        # written as its escape, the answer can still be encoded.
        shown = path.encode("utf-8", "backslashreplace").decode() if path else BODY_FIELD
        fields.setdefault(shown, []).append(reason)
    return fields


def refuse(problems: list[tuple[str, str]]) -> None:
    """Raise a 400 naming each path of ``problems``, when there are any."""
    if problems:
        fields = _fields(problems)
        summary = "; ".join(f"{path}: {' '.join(reasons)}" for path, reasons in fields.items())
        raise ValidationFailed(f"Invalid input. {summary}", fields=fields)


def _integer_problems(value: Any, limit: int = 20) -> list[tuple[str, str]]:
    """Integers anywhere in ``value`` that no ``bigint`` column or parameter can hold."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack and len(problems) < limit:
        item, path = stack.pop()
        if type(item) is int:
            if reason := bigint_problem(item):
                problems.append((path, f"{reason} (a 64-bit integer)"))
        elif isinstance(item, dict):
            stack.extend((child, f"{path}.{key}" if path else key) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return problems


def plainly_storable(raw: bytes, encoding: str) -> bool:
    """Tell, from the text alone and at the speed of bytes operations, that a well-formed body
    holds nothing ``json_problems`` or a bigint would refuse. False means "look closer", not
    "refused": the parsed value is then walked.

    Walking a 7 MB polygon payload value by value costs twice what parsing it does; these
    checks cost a tenth of it.
    """
    if codecs.lookup(encoding).name != "utf-8":
        return False  # UTF-7 and the like spell surrogates without escapes
    if b"\\u" in raw and _SUSPECT_ESCAPE.search(raw):
        return False
    shapes = raw.translate(_NUMBER_SHAPES)
    # 19 digits in a row may be an integer beyond bigint; a 3-digit exponent may overflow a
    # float to infinity. Either may be harmless; the walk decides.
    if b"0" * 19 in shapes or b"e000" in shapes or b"e+000" in shapes:
        return False
    # Peel the innermost empty pairs off the bracket skeleton once per level allowed.
    skeleton = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        if not skeleton:
            break
        # One scan per level: "[{}]" loses its "{}" now and its "[]" on the next pass.
        skeleton = _EMPTY_PAIR.sub(b"", skeleton)
    return not skeleton


def storable_json(raw: bytes, encoding: str) -> Any:
    """Parse ``raw`` as JSON and return it, or raise a 400 saying what PostgreSQL would refuse."""
    try:
        text = raw.decode(encoding)
        # Strict: NaN and the infinities are not JSON, and jsonb refuses them.
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        # The C decoder gives up at the interpreter's recursion limit (about a thousand levels)
        # at once, whatever the body's size: nesting of any depth costs no more than that.
        refuse([("", f"nests deeper than {MAX_JSON_DEPTH} levels")])
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError among them
        raise ParseError(f"JSON parse error - {exc}") from exc
    if plainly_storable(raw, encoding):
        return value
    refuse(json_problems(value) or _integer_problems(value))
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(parsers.JSONParser):
    """JSON bodies within the size limit, holding only what PostgreSQL stores."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        return storable_json(read_limited(stream), encoding)


def _form_problems(data: QueryDict, files=None) -> list[tuple[str, str]]:
    problems = []
    for key, values in data.lists():
        shown = key.replace("\x00", "\\x00")
        if reason := text_problem(key):
            problems.append((shown, f"the field's name {reason}"))
        problems.extend((shown, reason) for v in values if (reason := text_problem(v)))
    for key, uploads in files.lists() if files is not None else ():
        shown = key.replace("\x00", "\\x00")
        problems.extend(
            (shown, f"the file name {reason}")
            for upload in uploads
            if (reason := text_problem(upload.name or ""))
        )
    return problems


class FormParser(parsers.FormParser):
    """URL-encoded forms within the size limit, holding no NUL character."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            data = QueryDict(read_limited(stream), encoding=encoding)
        except TooManyFieldsSent as exc:
            raise ParseError(str(exc)) from exc
        refuse(_form_problems(data))
        return data


class MultiPartParser(parsers.MultiPartParser):
    """Multipart forms: files stream to disk as Django's upload handlers write them; the other
    fields count against the size limit and hold no NUL character."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            result = super().parse(stream, media_type, parser_context)
        except RequestDataTooBig as exc:
            raise too_large(body_limit()) from exc
        except (TooManyFieldsSent, TooManyFilesSent) as exc:
            raise ParseError(str(exc)) from exc
        refuse(_form_problems(result.data, result.files))
        return result
