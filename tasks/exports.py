"""Exporting a project's annotated tasks through its kind's exporters, streamed.

Each task goes out once with its **final answer**, and is known in every format by the client's
id, ``external_id`` (the id it was imported with), never by Assay's own task id. The final
answer is, in this order: what review made final (the last version a reviewer accepted or
corrected, while it is still the annotation's current version; of a task with several
annotators, the one of the most recent such verdict), else the task's stored consensus, else
its annotators' payloads merged by the kind
(``merge_rules`` says how, per kind), else its one annotation; JSON Lines rows name that
``source`` (``review``, ``consensus``, ``merge`` or ``annotation``). The first two are ``qa``'s
to know: it registers a reader in ``QaConfig.ready()`` (``answers_reader_set``).

Only submitted work counts: an annotation sent back for rework, or lost to another annotator
when its rework lapsed, does not. What goes out: the tasks whose every seat is submitted, and
with ``include_incomplete`` every task with submitted work; gold tasks aside unless
``include_gold`` (they are the vendor's checks, not the client's data, and have no seats to
fill). A cancelled task's
submitted work goes out with the incomplete ones. JSON Lines rows also say whether the task is
``complete`` and which ``annotators`` (ids, in submission order) worked on it.
"""

import inspect
from collections.abc import Callable, Iterator
from itertools import groupby, islice

from django.db.models import Q

from config.errors import Conflict, ValidationFailed
from tasks import selectors
from tasks.kinds import KINDS, get_kind
from tasks.kinds.base import JSONL
from tasks.models import Annotation, AssignmentStatus, Project

CHUNK = 2_000
# Tasks whose final answers are asked of ``qa`` at once.
ANSWER_BATCH = 500

# Set by ``qa`` in ``QaConfig.ready()``: given task ids, the final answer of each task that has
# one from review or consensus, as (payload, source).
AnswersReader = Callable[[list[int]], dict[int, tuple[object, str]]]
_answers_reader: AnswersReader | None = None


def answers_reader_set(reader: AnswersReader) -> None:
    global _answers_reader
    _answers_reader = reader


# The text goes out in pieces of about this many characters: a kind's writer yields one line or
# one image at a time, and a WSGI server makes a system call for every piece it is given.
PIECE = 1 << 16


def export_formats(project: Project) -> list[str]:
    return [f.name for f in get_kind(project.kind).export_formats]


def merge_rules() -> dict[str, str]:
    """How each kind merges several annotators' payloads into the one exported, by kind key.

    Read from the kinds' own ``merge`` docstrings, so that the API's description and the code
    never disagree. The export merges with equal weights and the default quorum.
    """
    return {key: " ".join(inspect.getdoc(type(kind).merge).split()) for key, kind in KINDS.items()}


def _items(
    project: Project, *, include_incomplete: bool, include_gold: bool
) -> Iterator[tuple[str, dict, object, dict]]:
    """Yield (external id, data, final answer, facts) per task with submitted work. ``facts`` is
    what JSON Lines adds to a row: ``complete``, ``annotators`` and ``source``."""
    kind = get_kind(project.kind)
    annotations = Annotation.objects.filter(
        project=project, assignment__status=AssignmentStatus.SUBMITTED
    )
    if not include_incomplete:
        # Gold tasks have no seats to fill: ``include_gold`` alone brings them.
        annotations = annotations.filter(
            Q(task__completed_at__isnull=False) | Q(task__is_gold=True)
        )
    if not include_gold:
        annotations = annotations.filter(task__is_gold=False)
    rows = (
        annotations.order_by("task_id", "id")
        .values_list(
            "task_id",
            "task__external_id",
            "task__data",
            "payload",
            "annotator_id",
            "task__completed_at",
        )
        .iterator(chunk_size=CHUNK)
    )
    tasks = (list(group) for _, group in groupby(rows, key=lambda row: row[0]))
    while batch := list(islice(tasks, ANSWER_BATCH)):
        answers = _answers_reader([group[0][0] for group in batch]) if _answers_reader else {}
        for group in batch:
            task_id, external_id, data, payload, _, completed_at = group[0]
            if task_id in answers:
                payload, source = answers[task_id]
            elif len(group) > 1:
                payload = kind.merge([row[3] for row in group], None, project.label_schema).payload
                source = "merge"
            else:
                source = "annotation"
            facts = {
                "complete": completed_at is not None,
                "annotators": [row[4] for row in group],
                "source": source,
            }
            yield external_id, data, payload, facts


def _pieces(chunks: Iterator[str]) -> Iterator[str]:
    buffered: list[str] = []
    size = 0
    for chunk in chunks:
        buffered.append(chunk)
        size += len(chunk)
        if size >= PIECE:
            yield "".join(buffered)
            buffered, size = [], 0
    if buffered:
        yield "".join(buffered)


def export_check(project: Project) -> None:
    """Refuse an export its writers could not finish, before anything is sent.

    A writer meets an annotation only after the answer's status and first bytes went out: a
    label the schema lacks (a COCO category id, say) would end the stream halfway, as a 200
    with a truncated body. The names every annotation uses are checked first, in one query.
    """
    outside = selectors.names_outside_schema(
        project=project, schema=project.label_schema, gold=False
    )
    if outside:
        names = ", ".join(repr(name) for key in sorted(outside) for name in outside[key])
        raise Conflict(
            f"Annotations use {names}, which the label schema lacks; nothing was exported.",
            fields={
                f"label_schema.{key}": [f"Used by annotations, missing here: {', '.join(used)}."]
                for key, used in outside.items()
            },
        )


def export_project(
    project: Project, fmt: str, *, include_incomplete: bool = False, include_gold: bool = False
) -> tuple[Iterator[str], str, str]:
    """Return (text chunks, media type, file name) for ``fmt``, one of the kind's formats.

    The project is checked first (``export_check``): an export that starts also ends. What
    goes out is this module's docstring's to say.
    """
    kind = get_kind(project.kind)
    for export_format in kind.export_formats:
        if export_format.name == fmt:
            export_check(project)
            items = _items(
                project, include_incomplete=include_incomplete, include_gold=include_gold
            )
            if export_format is not JSONL:
                # The other formats have no place for the per-row facts.
                items = (item[:3] for item in items)
            chunks = _pieces(export_format.write(items, project.label_schema))
            name = f"project-{project.pk}.{export_format.extension}"
            return chunks, export_format.media_type, name
    raise ValidationFailed(
        f"{project.kind} projects export as {', '.join(export_formats(project))}.",
        fields={
            "format": [f"Unknown format {fmt!r}; one of {', '.join(export_formats(project))}."]
        },
    )
