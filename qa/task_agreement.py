"""Agreement, consensus and dynamic overlap of one task, once it reaches its overlap.

When a task's last seat is submitted (``tasks.events.TASK_COMPLETED``) the job
``qa.compute_task_agreement`` runs ``task_agreement_compute``: it compares the task's submitted
annotations pairwise (``TaskAgreement``), merges them (``TaskConsensus``) and, when they agree
less than the project's ``agreement_threshold``, gives the task one more seat (dynamic overlap).

What counts: the annotations whose assignment is ``submitted``. Work sent back for rework (its
assignment ``active`` again) or lost to the pool (``expired``) does not, until it is submitted
again; gold tasks have no agreement (their answer is known: a task made gold loses its rows,
``task_agreement_forget``), nor do projects with an overlap of one (one annotation agrees with
nobody).

Idempotent: a computation stores the annotations (ids and versions) it read and the task's
completion it answers; a run that finds the same is done at once, and computations of one task
take turns on its row (``qa.locks.lock_task_agreement``). A seat is added through
``tasks.services.tasks.task_seat_add`` with the seat count this computation read, which adds it
only while the task still has exactly that many: one computation adds at most one seat, however
often its job is delivered. The new seat's submission completes the task again, and the next
computation counts the new annotation.

Nothing is lost to a broker that refused the job: the beat job ``qa.catch_up_task_agreements``
finds complete tasks whose agreement is missing or answers an earlier completion
(``task_agreements_catch_up``), a bounded batch at a time. It does not look for a new version of
an annotation on a task that stays complete (a reviewer's correction): reading every version
would cost the scan a join with annotations; the verdict that stores a correction on a complete
task queues ``qa.compute_task_agreement`` itself (``qa.verdicts``), and the computation counts
it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from django.db import connection, transaction
from django.utils import timezone

from tasks.kinds import Kind, get_kind
from tasks.models import Annotation, AssignmentStatus, Project, Slot, Task
from tasks.services.tasks import task_seat_add
from workforce.queue import catch_up

from . import stats
from .locks import lock_task_agreement
from .models import Accuracy, ConsensusMethod, TaskAgreement, TaskConsensus

# Kinds whose payload is one label from the schema: agreement keeps the label table, consensus
# is a vote, and the project report measures kappa and alpha on the labels.
CATEGORICAL = frozenset({"classification"})
# A catch-up run walks the stale tasks in batches of this many, for at most this many seconds
# (under beat's 120 s period); the next run goes on.
CATCH_UP_BATCH = 500
CATCH_UP_SECONDS = 50.0


@dataclass(frozen=True)
class Counted:
    """A task's submitted annotations, by id: what a computation reads and records."""

    ids: list[int]
    versions: list[int]
    annotators: list[int]
    payloads: list


def counted_annotations(task_id: int) -> Counted:
    rows = list(
        Annotation.objects.filter(task_id=task_id, assignment__status=AssignmentStatus.SUBMITTED)
        .order_by("id")
        .values_list("id", "version", "annotator_id", "payload")
    )
    return Counted(
        ids=[row[0] for row in rows],
        versions=[row[1] for row in rows],
        annotators=[row[2] for row in rows],
        payloads=[row[3] for row in rows],
    )


def pair_scores(kind: Kind, payloads: list, schema: dict) -> dict[tuple[int, int], float]:
    """The ``compare`` of every pair of payloads (by position, i < j), each pair scored both
    ways and averaged.

    Both ways because a comparison may be asymmetric (keypoints scale OKS by the reference): so
    every annotator is the reference once and the figure does not depend on who submitted first.
    """
    return {
        (i, j): (kind.compare(a, b, schema).score + kind.compare(b, a, schema).score) / 2
        for (i, a), (j, b) in combinations(enumerate(payloads), 2)
    }


def _clamped_mean(scores: list[float]) -> float | None:
    return min(1.0, max(0.0, sum(scores) / len(scores))) if scores else None


def pairwise_agreement(pairs: dict[tuple[int, int], float]) -> float | None:
    """The mean over every pair (``pair_scores``); None with fewer than two payloads."""
    return _clamped_mean(list(pairs.values()))


def annotator_agreement(pairs: dict[tuple[int, int], float], annotators: list[int]) -> dict:
    """Each annotator's agreement on the task: the mean of their pairs' scores with the others
    (annotator id, as text for JSON, -> score); empty with fewer than two."""
    mine: dict[int, list[float]] = {}
    for (i, j), score in pairs.items():
        mine.setdefault(i, []).append(score)
        mine.setdefault(j, []).append(score)
    return {str(annotators[i]): _clamped_mean(scores) for i, scores in mine.items()}


def vote_weights(project: Project, annotator_ids: list[int]) -> list[float] | None:
    """Each annotator's gold accuracy (mean score) in the project, as vote weights; None unless
    every one of them has at least the project's newcomer count of gold scores (one at least).

    A vote mixing measured and unmeasured annotators would have to invent a weight for the
    latter; a task with one newcomer is decided by majority instead. All-zero weights (everyone
    failed every gold task) say nothing either: majority again.
    """
    needed = max(1, project.newcomer_gold_tasks)
    measured = Accuracy.objects.filter(
        project=project, annotator_id__in=annotator_ids, scored__gte=needed
    )
    means = {
        annotator: score_sum / scored
        for annotator, scored, score_sum in measured.values_list(
            "annotator_id", "scored", "score_sum"
        )
    }
    if len(means) < len(set(annotator_ids)):
        return None
    weights = [means[annotator] for annotator in annotator_ids]
    return weights if sum(weights) > 0 else None


def task_consensus(
    project: Project, kind: Kind, counted: Counted
) -> tuple[str, object, float, dict[str, float]]:
    """Merge a task's annotations: (method, payload, confidence, each annotator's score).

    Categorical kinds vote (the kind's merge is a plurality vote, ties to the label listed first
    in the schema): weighted by gold accuracy when every voter has one (``vote_weights``), else
    by majority. Other kinds use their merge (clusters or spans a quorum of the annotators
    agrees on). The confidence is the merge's: the mean agreement of the annotations with the
    consensus, for a vote the winning share.
    """
    weights, method = None, ConsensusMethod.MERGE
    if project.kind in CATEGORICAL:
        weights = vote_weights(project, counted.annotators)
        method = ConsensusMethod.WEIGHTED_VOTE if weights else ConsensusMethod.MAJORITY_VOTE
    merged = kind.merge(counted.payloads, weights, project.label_schema)
    scores = {
        str(annotator): kind.compare(payload, merged.payload, project.label_schema).score
        for annotator, payload in zip(counted.annotators, counted.payloads, strict=True)
    }
    return method, merged.payload, min(1.0, max(0.0, merged.confidence)), scores


def task_agreement_compute(*, task_id: int) -> TaskAgreement | None:
    """Compute a complete task's agreement and consensus, and apply dynamic overlap.

    Returns the stored agreement, or None for a task that is gone, gold, in a project with an
    overlap of one, or not complete (a seat was added meanwhile: its submission brings the task
    back). Safe to run twice and concurrently (the module docstring says how).
    """
    task = Task.objects.filter(pk=task_id).select_related("project").first()
    if task is None or task.is_gold or task.project.overlap < 2 or task.completed_at is None:
        return None
    project = task.project
    kind = get_kind(project.kind)
    with transaction.atomic():
        agreement = lock_task_agreement(task_id, project.pk)
        # Read under the lock: a computation that ran meanwhile added a seat, or stored this.
        completed_at = Task.objects.values_list("completed_at", flat=True).get(pk=task_id)
        if completed_at is None:
            if agreement.computed_at is None:
                # Created by this very call: leave no blank row behind.
                agreement.delete()
            return None
        counted = counted_annotations(task_id)
        if (
            agreement.task_completed_at == completed_at
            and agreement.annotation_ids == counted.ids
            and agreement.versions == counted.versions
        ):
            return agreement
        now = timezone.now()
        agreement.annotations = len(counted.ids)
        pairs = pair_scores(kind, counted.payloads, project.label_schema)
        agreement.value = pairwise_agreement(pairs)
        added_before, added_at = agreement.annotator_scores, agreement.computed_at
        agreement.annotator_scores = annotator_agreement(pairs, counted.annotators)
        agreement.labels = (
            dict(Counter(payload["label"] for payload in counted.payloads))
            if project.kind in CATEGORICAL
            else {}
        )
        agreement.annotation_ids, agreement.versions = counted.ids, counted.versions
        agreement.task_completed_at, agreement.computed_at = completed_at, now
        agreement.seats = Slot.objects.filter(task_id=task_id).count()
        agreement.seat_added = _below_threshold(project, agreement) and task_seat_add(
            task_id=task_id, seats=agreement.seats
        )
        agreement.save()
        if counted.payloads:
            method, payload, confidence, scores = task_consensus(project, kind, counted)
            TaskConsensus.objects.update_or_create(
                task_id=task_id,
                defaults={
                    "project_id": project.pk,
                    "method": method,
                    "payload": payload,
                    "confidence": confidence,
                    "scores": scores,
                    "computed_at": now,
                },
            )
        else:
            TaskConsensus.objects.filter(task_id=task_id).delete()
        _agreement_stats(
            project.pk,
            removed=added_before,
            removed_at=added_at,
            added=agreement.annotator_scores,
            added_at=now,
        )
    return agreement


def _agreement_stats(
    project_id: int,
    *,
    removed: dict,
    removed_at: datetime | None,
    added: dict,
    added_at: datetime | None,
) -> None:
    """Move each annotator's agreement on a task in their hourly stats: what the previous
    computation added leaves the hour it was added to, the new figure joins this hour. Only
    the net change of each row is written, in (annotator, hour) order: stats rows are locked
    last, in that order (``qa.locks``)."""
    changes: dict[tuple[int, datetime], list[float]] = {}
    for scores, at, sign in ((removed, removed_at, -1), (added, added_at, 1)):
        for annotator, score in scores.items():
            change = changes.setdefault((int(annotator), stats.hour_of(at)), [0.0, 0])
            change[0] += sign * score
            change[1] += sign
    for (annotator_id, hour), (score_sum, count) in sorted(changes.items()):
        if score_sum or count:
            stats.stats_add(
                project_id=project_id,
                annotator_id=annotator_id,
                at=hour,
                agreement_sum=score_sum,
                agreement_count=count,
            )


def task_agreement_forget(task_id: int) -> None:
    """A task made gold has no agreement or consensus: its answer is known. Run in the
    transaction that made it gold, so that no report reads them after."""
    for row in TaskAgreement.objects.filter(task_id=task_id, computed_at__isnull=False):
        _agreement_stats(
            row.project_id,
            removed=row.annotator_scores,
            removed_at=row.computed_at,
            added={},
            added_at=None,
        )
    TaskAgreement.objects.filter(task_id=task_id).delete()
    TaskConsensus.objects.filter(task_id=task_id).delete()


def _below_threshold(project: Project, agreement: TaskAgreement) -> bool:
    """Dynamic overlap is on (a threshold above 0) and this task's agreement is under it.

    ``task_seat_add`` checks the rest under its locks: seats below ``overlap_max``, the task
    still complete with the seats read, not gold or cancelled, the project not archived.
    """
    return (
        project.agreement_threshold > 0
        and agreement.value is not None
        and agreement.value < project.agreement_threshold
    )


# Complete regular tasks of projects with overlap, whose agreement is missing or answers an
# earlier completion (the task was given a seat since, and completed again); past an id, so
# that a run walks the table once.
_STALE = f"""
SELECT t.id FROM {Task._meta.db_table} t
JOIN {Project._meta.db_table} p ON p.id = t.project_id
LEFT JOIN {TaskAgreement._meta.db_table} g ON g.task_id = t.id
WHERE t.id > %s AND t.completed_at IS NOT NULL AND NOT t.is_gold AND p.overlap >= 2
  AND (g.task_id IS NULL OR g.task_completed_at IS DISTINCT FROM t.completed_at)
ORDER BY t.id
LIMIT %s
"""  # noqa: S608


def stale_tasks(*, after: int = 0, limit: int) -> list[int]:
    """Up to ``limit`` complete tasks past id ``after`` whose agreement is missing or stale."""
    with connection.cursor() as cursor:
        cursor.execute(_STALE, [after, limit])
        return [row[0] for row in cursor.fetchall()]


def task_agreements_catch_up(
    *, batch_size: int = CATCH_UP_BATCH, seconds: float = CATCH_UP_SECONDS
) -> int:
    """Compute the agreement of complete tasks that have none or a stale one; return how many.

    Catches up what a refused or lost job left undone, walking the tasks in id order a batch at
    a time, until the end or until ``seconds`` have passed (the next run starts over and finds
    what is left). A task another run or job computes at the same time is computed once, then
    found done. A task whose computation fails is logged and passed, so that it holds up no
    other.
    """
    deadline = time.monotonic() + seconds
    done, after = 0, 0
    while time.monotonic() < deadline:
        batch = stale_tasks(after=after, limit=batch_size)
        done += catch_up(
            batch,
            lambda task_id: task_agreement_compute(task_id=task_id),
            "The agreement of task %s could not be computed",
        )
        if len(batch) < batch_size:
            break
        after = batch[-1]
    return done
