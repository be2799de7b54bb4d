"""A project's agreement report and its Dawid-Skene consensus, built on demand and cached.

**What counts.** The annotations whose assignment is ``submitted``, on regular tasks (gold tasks
have a known answer and are no part of agreement), complete or not: Cohen's kappa and
Krippendorff's alpha take what two or more annotators labelled, Fleiss' kappa only tasks with
exactly the project's overlap of labels (its formula needs the same number per task; tasks
given more seats by dynamic overlap drop out of it).

**Categorical kinds** (``qa.task_agreement.CATEGORICAL``): Cohen's kappa for every annotator pair
sharing at least ``min_shared`` tasks, Fleiss' kappa, Krippendorff's alpha at every level the
schema's ``scale`` allows (nominal always; ordinal for ordinal and interval scales; interval for
an interval scale, whose label names are numbers), each annotator's agreement with the stored
consensus of the tasks they labelled, and the label confusion against that consensus. The math
is ``qa.agreement``'s, on arrays read from PostgreSQL as integers (task, annotator, label's
position in the schema): no annotation becomes a Python object.

**Every kind**: the mean of the tasks' stored pairwise agreement (``TaskAgreement.value``), and
each annotator's mean ``compare`` against the stored consensus (``TaskConsensus.scores``), both
averaged in the database.

**Dawid-Skene** (categorical kinds) runs EM over the same label arrays: each annotator's confusion
matrix, the class priors, the iterations and whether it converged. Its per-task labels are not
stored as the tasks' consensus: a QA lead's read would then rewrite a row per task of the project,
and the stored consensus would change with whoever asked last. The tasks' consensus stays the
vote computed when each task completed; Dawid-Skene is there to inspect annotators.

**Cache.** A report is kept per project and name (``AgreementReport``) with a fingerprint of what
it read: its parameters, the schema's classes and scale, the overlap, and a few aggregates of
the rows it reads, each over one table (``_LABELS_FINGERPRINT``, ``_STORED_FINGERPRINT`` say
why they move with any new work). A request finding the same fingerprint is answered from the
row; another builds the report again and replaces it. A cached read costs those aggregates,
no join and no label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.utils import timezone

from tasks.kinds.classification import scale_of
from tasks.kinds.schema import label_order
from tasks.models import Annotation, Assignment, AssignmentStatus, Project

from . import agreement, voting
from .models import AgreementReport, ReportName, TaskAgreement, TaskConsensus
from .task_agreement import CATEGORICAL

DEFAULT_MIN_SHARED = 10
# Krippendorff's levels a schema's scale allows, in report order.
LEVELS_OF_SCALE = {
    "nominal": ("nominal",),
    "ordinal": ("nominal", "ordinal"),
    "interval": ("nominal", "ordinal", "interval"),
}

_A, _S = Annotation._meta.db_table, Assignment._meta.db_table
_G, _C = TaskAgreement._meta.db_table, TaskConsensus._meta.db_table

# Counted annotations of a project: their assignment submitted and holding a seat. A gold task's
# assignments hold none (marking a task gold takes its seats), so no join with tasks is needed.
_COUNTED = f"""
FROM {_A} a
JOIN {_S} s ON s.id = a.assignment_id
WHERE a.project_id = %(project)s AND s.status = '{AssignmentStatus.SUBMITTED}'
  AND s.slot_id IS NOT NULL
"""

# Each label as (task, annotator, the label's position in the schema's classes, 0-based).
_LABELS = f"""
SELECT a.task_id, a.annotator_id, array_position(%(classes)s::text[], a.payload->>'label') - 1
{_COUNTED}
ORDER BY a.task_id, a.annotator_id
"""

# One annotator's counted labels against their tasks' stored consensus, as class positions
# (consensus, given) with their count.
_ANNOTATOR_VS_CONSENSUS = f"""
SELECT array_position(%(classes)s::text[], c.payload->>'label') - 1,
       array_position(%(classes)s::text[], a.payload->>'label') - 1, count(*)
FROM {_A} a
JOIN {_S} s ON s.id = a.assignment_id
JOIN {_C} c ON c.task_id = a.task_id
WHERE a.project_id = %(project)s AND a.annotator_id = %(annotator)s
  AND s.status = '{AssignmentStatus.SUBMITTED}' AND s.slot_id IS NOT NULL
GROUP BY 1, 2
"""  # noqa: S608

# Stored rows leave with a task made gold (``qa.reactions.on_gold_answer_set``).
_CONSENSUS_LABELS = f"""
SELECT task_id, array_position(%(classes)s::text[], payload->>'label') - 1
FROM {_C} WHERE project_id = %(project)s ORDER BY task_id
"""  # noqa: S608

_MEAN_PAIRWISE = f"""
SELECT count(value), avg(value) FROM {_G} WHERE project_id = %(project)s
"""  # noqa: S608

_SCORES_AGAINST_CONSENSUS = f"""
SELECT s.key::bigint, count(*), avg(s.value::float8)
FROM {_C} c, jsonb_each_text(c.scores) s
WHERE c.project_id = %(project)s
GROUP BY 1 ORDER BY 1
"""  # noqa: S608

# Single-table aggregates, each over one project's rows, so that a cached read stays cheap: no
# join of annotations with their assignments (which costs as much as reading the labels).
# Together they move with every change of the counted labels: a submission adds an annotation
# and a submitted assignment; work sent back for rework, or a task made gold, takes a submitted
# assignment holding a seat away; a correction or a reworked submission raises a version (a
# payload never changes without its version).
_STORED_FINGERPRINT = f"""
SELECT
  (SELECT count(*) FROM {_G} WHERE project_id = %(project)s),
  (SELECT max(computed_at)::text FROM {_G} WHERE project_id = %(project)s),
  (SELECT count(*) FROM {_C} WHERE project_id = %(project)s),
  (SELECT max(computed_at)::text FROM {_C} WHERE project_id = %(project)s)
"""  # noqa: S608

_LABELS_FINGERPRINT = f"""
SELECT
  (SELECT count(*) FROM {_A} WHERE project_id = %(project)s),
  (SELECT coalesce(max(id), 0) FROM {_A} WHERE project_id = %(project)s),
  (SELECT coalesce(sum(version), 0) FROM {_A} WHERE project_id = %(project)s),
  (SELECT count(*) FROM {_S} WHERE project_id = %(project)s
     AND status = '{AssignmentStatus.SUBMITTED}' AND slot_id IS NOT NULL)
"""  # noqa: S608


@dataclass(frozen=True)
class Report:
    """A report's body, when it was built and in how long, and whether the cache answered."""

    body: dict
    computed_at: object
    seconds: float
    cached: bool


def _fetch(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def work_fingerprint(project: Project, *, labels: bool, **parameters) -> dict:
    """What a report of ``project`` read, in a few figures that move with any new work.

    ``labels``: the report reads the annotations' labels too (categorical kinds).
    """
    params = {"project": project.pk}
    stored = list(_fetch(_STORED_FINGERPRINT, params)[0])
    fingerprint = {
        "parameters": parameters,
        "overlap": project.overlap,
        "classes": list(label_order(project.label_schema)),
        "scale": scale_of(project.label_schema),
        "stored": stored,
    }
    if labels:
        fingerprint["labels"] = [int(value) for value in _fetch(_LABELS_FINGERPRINT, params)[0]]
    return fingerprint


def _cached(project: Project, name: str, fingerprint: dict, build) -> Report:
    """The report ``name`` of the project: the stored one if built from the same fingerprint,
    else built now by ``build()`` and stored in its place (concurrent builds: the last one
    written stays, and both were built from the same work)."""
    row = AgreementReport.objects.filter(project=project, name=name).first()
    if row is not None and row.fingerprint == fingerprint:
        return Report(row.body, row.computed_at, row.seconds, cached=True)
    started = time.perf_counter()
    body = build()
    seconds = time.perf_counter() - started
    now = timezone.now()
    AgreementReport.objects.bulk_create(
        [
            AgreementReport(
                project=project,
                name=name,
                fingerprint=fingerprint,
                body=body,
                computed_at=now,
                seconds=seconds,
            )
        ],
        update_conflicts=True,
        unique_fields=["project", "name"],
        update_fields=["fingerprint", "body", "computed_at", "seconds"],
    )
    return Report(body, now, seconds, cached=False)


def label_table(project: Project) -> agreement.LabelTable:
    """The project's counted labels as a ``qa.agreement.LabelTable``, classes in schema order."""
    classes = tuple(label_order(project.label_schema))
    rows = _fetch(_LABELS, {"project": project.pk, "classes": list(classes)})
    columns = np.array(rows, dtype=np.int64).reshape(-1, 3)
    names = np.asarray(classes, dtype=np.str_)
    return agreement.label_table(columns[:, 0], columns[:, 1], names[columns[:, 2]], classes)


def consensus_reference(project: Project, table: agreement.LabelTable) -> np.ndarray:
    """The stored consensus label of each task of ``table`` (class index), -1 where none."""
    classes = list(table.classes)
    rows = _fetch(_CONSENSUS_LABELS, {"project": project.pk, "classes": classes})
    reference = np.full(table.n_tasks, -1, dtype=np.int64)
    if rows and table.n_tasks:
        stored = np.array(rows, dtype=np.int64).reshape(-1, 2)
        at = np.minimum(np.searchsorted(table.tasks, stored[:, 0]), table.n_tasks - 1)
        found = table.tasks[at] == stored[:, 0]
        reference[at[found]] = stored[found, 1]
    return reference


def annotator_confusion(*, project: Project, annotator_id: int) -> dict | None:
    """One annotator's labels against the stored consensus of their tasks in a categorical
    project: ``classes`` in schema order, and ``confusion``, the K x K counts by consensus class
    (rows) and the class they gave (columns), as the project report's ``confusion`` counts
    everyone's. None for other kinds. One query, counted in the database."""
    if project.kind not in CATEGORICAL:
        return None
    classes = list(label_order(project.label_schema))
    params = {"project": project.pk, "annotator": annotator_id, "classes": classes}
    matrix = [[0] * len(classes) for _ in classes]
    for expected, given, count in _fetch(_ANNOTATOR_VS_CONSENSUS, params):
        # A label the schema no longer lists has no place in the matrix.
        if expected is not None and given is not None:
            matrix[expected][given] = count
    return {"classes": classes, "confusion": matrix}


def _stored_figures(project: Project) -> tuple[dict, dict[int, tuple[int, float]]]:
    """The mean of the tasks' pairwise agreement, and each annotator's (tasks, mean score)
    against the stored consensus."""
    params = {"project": project.pk}
    tasks, mean = _fetch(_MEAN_PAIRWISE, params)[0]
    scores = {a: (n, score) for a, n, score in _fetch(_SCORES_AGAINST_CONSENSUS, params)}
    return {"tasks": tasks, "value": mean}, scores


def _agreement_body(project: Project, min_shared: int) -> dict:
    mean_pairwise, scores = _stored_figures(project)
    body = {
        "kind": project.kind,
        "categorical": project.kind in CATEGORICAL,
        "mean_pairwise": mean_pairwise,
        "min_shared": None,
        "cohen": None,
        "fleiss": None,
        "krippendorff": None,
        "classes": None,
        "confusion": None,
    }
    if project.kind not in CATEGORICAL:
        body["tasks"] = mean_pairwise["tasks"]
        body["annotators"] = [
            {"annotator": a, "compared": n, "agreement": score} for a, (n, score) in scores.items()
        ]
        return body
    table = label_table(project)
    reference = consensus_reference(project, table)
    with_consensus = agreement.agreement_with(table, reference)
    levels = LEVELS_OF_SCALE[scale_of(project.label_schema)]
    raters = project.overlap
    counts = agreement.value_counts(table).sum(axis=1)
    body.update(
        tasks=table.n_tasks,
        min_shared=min_shared,
        cohen=[
            {"a": pair.a, "b": pair.b, "shared": pair.shared, "kappa": pair.kappa}
            for pair in agreement.cohen_kappas(table, min_shared)
        ],
        fleiss={
            "raters": raters,
            "tasks": int(np.count_nonzero(counts == raters)),
            "kappa": agreement.fleiss_kappa(table, raters) if raters >= 2 else None,
        },
        krippendorff={level: agreement.krippendorff_alpha(table, level) for level in levels},
        classes=list(table.classes),
        confusion=agreement.confusion(table, reference).tolist(),
        annotators=[
            {
                "annotator": int(a),
                "compared": int(compared),
                "agreement": float(share) if compared else None,
            }
            for a, compared, share in zip(
                with_consensus.annotators,
                with_consensus.compared,
                with_consensus.share,
                strict=True,
            )
        ],
    )
    return body


def project_agreement_report(*, project: Project, min_shared: int = DEFAULT_MIN_SHARED) -> Report:
    """The project's agreement report (this module's docstring), from the cache when no work
    arrived since it was built."""
    fingerprint = work_fingerprint(
        project, labels=project.kind in CATEGORICAL, min_shared=min_shared
    )
    return _cached(
        project,
        ReportName.AGREEMENT,
        fingerprint,
        lambda: _agreement_body(project, min_shared),
    )


def _dawid_skene_body(project: Project) -> dict:
    table = label_table(project)
    result = voting.dawid_skene(table)
    labels_per_annotator = np.bincount(table.annotator_index, minlength=table.n_annotators)
    return {
        "tasks": table.n_tasks,
        "classes": list(table.classes),
        "priors": result.priors.tolist(),
        "iterations": result.iterations,
        "converged": result.converged,
        "annotators": [
            {"annotator": int(a), "labels": int(n), "confusion": matrix.tolist()}
            for a, n, matrix in zip(
                table.annotators, labels_per_annotator, result.confusion, strict=True
            )
        ],
    }


def project_dawid_skene(*, project: Project) -> Report:
    """Dawid-Skene over the project's labels (categorical kinds only; the caller checks), from
    the cache when no label changed since."""
    fingerprint = work_fingerprint(project, labels=True)
    # The stored rows play no part in it: a recomputed consensus must not rebuild it.
    fingerprint.pop("stored")
    return _cached(project, ReportName.DAWID_SKENE, fingerprint, lambda: _dawid_skene_body(project))
