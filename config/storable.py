"""What PostgreSQL will store: the checks every value from a client or a file passes first.

PostgreSQL refuses a NUL character in ``text`` and ``jsonb``, and a lone UTF-16 surrogate (which
JSON's ``\\ud800`` escapes can produce) has no UTF-8 encoding; either would fail a write halfway
through a request or an import. JSON nested deeper than any annotation needs costs memory and
recursion in every reader after the parser, so nesting is bounded too. Integers compared with or
written to a ``bigint`` column must fit it.

Paths are written as the validation messages write them: ``objects[0].label``.
"""

import math
from typing import Any

# The deepest annotation payload (video tracks: tracks[].frames[].box[]) nests 5 levels; room to
# spare for task data and label schemas, far below what makes a parser or a reader struggle.
MAX_JSON_DEPTH = 32
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
# A JSON Schema ``pattern`` for text that is not blank once DRF trims it (``str.strip``): one
# character outside the set ``str.isspace`` accepts, written out because a regex's ``\s`` is
# another set (U+001C-U+001F, U+FEFF). ``tasks.kinds.validation`` holds the same for the kinds'
# names; a test keeps the two equal and exact over all of Unicode.
NOT_BLANK_PATTERN = (
    "[^\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def text_problem(text: str) -> str | None:
    """Why PostgreSQL would refuse ``text``, or None."""
    if "\x00" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain a lone surrogate (not valid Unicode)"
    return None


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def json_problems(
    value: Any, *, path: str = "", max_depth: int = MAX_JSON_DEPTH, limit: int = 20
) -> list[tuple[str, str]]:
    """Every reason (up to ``limit``) PostgreSQL's ``jsonb`` or Assay's readers would refuse
    ``value``, as ``(path, reason)`` pairs; an empty list when it can be stored.

    Walks the value without recursion, so a value nested a million deep is refused as cheaply as
    any other.
    """
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack and len(problems) < limit:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if reason := text_problem(item):
                problems.append((where, reason))
        elif isinstance(item, float):
            if not math.isfinite(item):
                problems.append((where, "must be a finite number"))
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                problems.append((where, f"nests deeper than {max_depth} levels"))
                continue
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            children = []
            for key, child in pairs:
                if isinstance(key, str) and (reason := text_problem(key)):
                    problems.append((_join(where, key.encode("utf-8", "replace").decode()), reason))
                children.append((child, _join(where, key), depth + 1))
            stack.extend(reversed(children))
    return problems[:limit]


def bigint_problem(number: int) -> str | None:
    """Why ``number`` cannot be a ``bigint`` (ids, counts), or None."""
    if not BIGINT_MIN <= number <= BIGINT_MAX:
        return "is out of range"
    return None
