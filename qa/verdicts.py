"""Verdicts on review items, and what follows them (DESIGN.md sections 3 and 5, invariant 3).

A reviewer holding a review item's lease judges the annotation version it names
(``review_judge``), in one transaction under the item's lock:

- ``accept``: the version moves on to the next layer that samples it, or is final.
- ``correct``: the reviewer's payload, valid for the kind and unlike the version judged, is the
  annotation's next version. It lives on the review (``Review.corrected_payload``): the
  annotation's own ``payload`` stays the annotator's work, so that agreement and consensus
  still measure annotators. The next version then moves on from this layer as an accepted one
  does. The version judged is scored against the correction with the kind's ``compare``. A
  correction on a complete task queues its agreement and consensus again after commit
  (``qa.compute_task_agreement``), which records the versions it counted.
- ``reject``, with tags from the project's error taxonomy and a comment: the work goes back to
  its author for rework (``tasks.services.tasks.assignment_rework``), or to the pool when they
  may no longer work on the project. Their resubmission comes back to this layer
  (``qa.reviews.review_submitted``), which reviews it whatever the rate.

Each verdict's score (1 accept, 0 reject, the comparison for a correction) is added to the
author's ``ReviewAccuracy`` in the project, when the version judged is the annotator's own work.
A verdict on a version that is a reviewer's correction judges that correction, not the
annotator: it is kept with its score, and counts toward nobody's accuracy.

Who may judge: the holder of the item's lease (a lease that lapsed but that no other reviewer
took over still counts, as for tasks), while they may still review at the layer: the review
queue's own rule (``qa.reviews.review_lease_check``). Nobody judges their own work, nor one
annotation at two layers: the database refuses both (``Review``'s constraints), whatever let
the request through.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from config.errors import FieldErrors
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
from tasks.locks import lock_slot_of
from tasks.models import Annotation, AnnotationVersion, Task
from tasks.services.tasks import Rework, assignment_rework
from workforce.locks import lock_annotator
from workforce.models import Member
from workforce.queue import enqueue, run_after_commit

from . import jobs
from .gold import score_checked
from .live import record_staff_event
from .locks import lock_review_item
from .models import (
    ErrorTag,
    LiveEventType,
    Review,
    ReviewAccuracy,
    ReviewItem,
    ReviewItemState,
    Verdict,
)
from .models.gold import RECENT_KEPT
from .reviews import review_arrive, review_lease_check
from .stats import stats_add


@dataclass(frozen=True)
class Judgement:
    """A verdict and what followed it: the item of the next layer that samples the version
    (None when it is final, or was rejected), or where rejected work went."""

    review: Review
    next_item: ReviewItem | None = None
    rework: Rework | None = None


class Wanted(NamedTuple):
    """One version of an annotation to read (``version_payloads``), with what the annotation
    row holds: its own current payload and that payload's version."""

    annotation_id: int
    version: int
    payload: object
    payload_version: int


def version_payload(annotation: Annotation, version: int):
    """The content of one version of an annotation (``version_payloads``)."""
    wanted = Wanted(annotation.pk, version, annotation.payload, annotation.payload_version)
    return version_payloads([wanted])[0]


def version_payloads(wanted: Sequence[Wanted]) -> list:
    """The content of each version wanted, in order, in at most two queries whatever their
    number.

    The annotator's own versions are their payloads (the current one on the annotation, earlier
    ones kept when it was reworked); a version a correction made is the correction.
    """
    rest = {(w.annotation_id, w.version) for w in wanted if w.version != w.payload_version}
    contents = {}
    if rest:
        # A correction of version v is version v + 1.
        contents = {
            (annotation, version + 1): payload
            for annotation, version, payload in Review.objects.filter(
                annotation_id__in={pk for pk, _ in rest}, verdict=Verdict.CORRECT
            ).values_list("annotation_id", "version", "corrected_payload")
        }
        earlier = rest - contents.keys()
        if earlier:
            kept = AnnotationVersion.objects.filter(
                annotation_id__in={pk for pk, _ in earlier},
                version__in={version for _, version in earlier},
            )
            contents.update(
                ((annotation, version), payload)
                for annotation, version, payload in kept.values_list(
                    "annotation_id", "version", "payload"
                )
            )
    return [
        w.payload if w.version == w.payload_version else contents[w.annotation_id, w.version]
        for w in wanted
    ]


def _verdict_check(
    *,
    verdict: str,
    tags: list[str],
    comment: str,
    corrected_payload,
    annotation: Annotation,
    judged,
) -> None:
    """Refuse a verdict's fields, naming each bad one (a tag by its place in the list)."""
    problems = FieldErrors()
    if verdict not in Verdict.values:
        problems.add("verdict", f"One of {', '.join(Verdict.values)}.")
    project = annotation.project
    known = set(ErrorTag.objects.filter(project=project).values_list("code", flat=True))
    for i, tag in enumerate(tags):
        if tag not in known:
            problems.add(f"tags[{i}]", f"Unknown tag {tag!r}: not in the project's error taxonomy.")
        elif tag in tags[:i]:
            problems.add(f"tags[{i}]", f"{tag!r} is given twice.")
    if verdict == Verdict.ACCEPT and tags:
        problems.add("tags", "An accept takes no tags.")
    if verdict == Verdict.REJECT:
        if not tags:
            problems.add("tags", "A rejection needs at least one tag of the project's taxonomy.")
        if not comment.strip():
            problems.add("comment", "A rejection needs a comment saying what to rework.")
    if verdict != Verdict.CORRECT and corrected_payload is not None:
        problems.add("corrected_payload", "Only a correction takes a payload.")
    if verdict == Verdict.CORRECT:
        if corrected_payload is None:
            problems.add("corrected_payload", "A correction needs the corrected payload.")
        else:
            issues = get_kind(project.kind).validate_payload(
                corrected_payload, project.label_schema, annotation.task.data
            )
            problems.update(issues_by_path(issue.under("corrected_payload") for issue in issues))
            if not issues and corrected_payload == judged:
                problems.add(
                    "corrected_payload", "The same as the version judged: accept it instead."
                )
    problems.raise_if_any("Invalid verdict.")


# The hourly stats counter of each verdict (``qa.stats``).
_VERDICT_COUNTERS = {
    Verdict.ACCEPT: "reviews_accepted",
    Verdict.REJECT: "reviews_rejected",
    Verdict.CORRECT: "reviews_corrected",
}


# One statement: the row is created or updated in place, under its own lock, so that verdicts
# on one annotator's work in one project at once add up (as ``qa.gold`` adds gold scores).
_REVIEW_ACCURACY_ADD = f"""
INSERT INTO {ReviewAccuracy._meta.db_table} AS acc
    (annotator_id, project_id, reviewed, score_sum, recent, updated_at)
VALUES (%(annotator)s, %(project)s, 1, %(score)s, ARRAY[%(score)s]::double precision[], %(now)s)
ON CONFLICT (project_id, annotator_id) DO UPDATE SET
    reviewed = acc.reviewed + 1,
    score_sum = LEAST(acc.score_sum + EXCLUDED.score_sum, acc.reviewed + 1),
    recent = (acc.recent || EXCLUDED.recent)[
        GREATEST(cardinality(acc.recent) + 2 - {RECENT_KEPT}, 1):],
    updated_at = EXCLUDED.updated_at
"""  # noqa: S608


@transaction.atomic
def review_judge(
    *,
    item: ReviewItem,
    reviewer: Member,
    verdict: str,
    tags: list[str] | None = None,
    comment: str = "",
    corrected_payload=None,
) -> Judgement:
    """Record ``reviewer``'s verdict on the item they hold, and carry it out (module docstring).

    Who may: ``qa.reviews.review_lease_check``, as for a heartbeat (403 ``access_ended`` when
    they may no longer review at the item's layer; 409 ``lease_lost``, ``already_submitted``,
    ``already_released``); 400 naming each bad field. Any refusal changes nothing.
    """
    now = timezone.now()
    if verdict == Verdict.REJECT:
        # Rework locks the author and the work's seat: taken first, in the order of
        # ``tasks/locks.py``, before the item, as making the task gold takes them before its
        # items (``qa/locks.py``).
        work = Annotation.objects.filter(pk=item.annotation_id).select_related("assignment")
        work = work.only("annotator_id", "assignment__slot_id").get()
        lock_annotator(work.annotator_id)
        lock_slot_of(work.assignment)
    item = lock_review_item(item.pk)
    review_lease_check(item, reviewer)
    layer, project = item.layer, item.project
    annotation = Annotation.objects.get(pk=item.annotation_id)
    annotation.project = project
    tags = list(tags or [])
    judged = version_payload(annotation, item.version)
    _verdict_check(
        verdict=verdict,
        tags=tags,
        comment=comment,
        corrected_payload=corrected_payload,
        annotation=annotation,
        judged=judged,
    )
    if verdict == Verdict.CORRECT:
        comparison = get_kind(project.kind).compare(judged, corrected_payload, project.label_schema)
        score, details = score_checked(comparison.score), comparison.details
    else:
        score, details = (1.0 if verdict == Verdict.ACCEPT else 0.0), {}
    review = Review.objects.create(
        item=item,
        annotation=annotation,
        version=item.version,
        layer=layer,
        project=project,
        author_member_id=item.author_member_id,
        reviewer=reviewer,
        verdict=verdict,
        tags=tags,
        comment=comment,
        corrected_payload=corrected_payload,
        score=score,
        details=details,
        created_at=now,
    )
    item.state, item.lease_expires_at = ReviewItemState.DONE, None
    item.save(update_fields=["state", "lease_expires_at"])
    # Only the annotator's own work counts toward their accuracy; counted before the next
    # layer's sampling, which reads it.
    own_work = item.version == annotation.payload_version
    if own_work:
        with connection.cursor() as cursor:
            cursor.execute(
                _REVIEW_ACCURACY_ADD,
                {
                    "annotator": annotation.annotator_id,
                    "project": project.pk,
                    "score": score,
                    "now": now,
                },
            )
        # After commit, quality rules read the review scores this transaction wrote.
        run_after_commit(jobs.evaluate_quality_rules, annotation.annotator_id, project.pk)
    judgement = _carry_out(review, annotation, now)
    if own_work:
        # The author's hour of the verdict; locked last, after the rows rework locks
        # (``qa.locks``).
        stats_add(
            project_id=project.pk,
            annotator_id=annotation.annotator_id,
            at=now,
            review_score_sum=score,
            **{_VERDICT_COUNTERS[verdict]: 1},
        )
    record_staff_event(
        LiveEventType.REVIEW_COMPLETED,
        organization_id=project.organization_id,
        data={
            "review": review.pk,
            "item": item.pk,
            "annotation": annotation.pk,
            "version": item.version,
            "project": project.pk,
            "task": annotation.task_id,
            "annotator": annotation.annotator_id,
            "layer": layer.pk,
            "reviewer": reviewer.pk,
            "verdict": verdict,
            "score": score,
        },
    )
    return judgement


def _complete_with_overlap(annotation: Annotation) -> bool:
    """Whether the annotation's task has agreement to compute (``qa.task_agreement``): its
    project has an overlap of two or more, and the task is complete."""
    return (
        annotation.project.overlap >= 2
        and Task.objects.filter(pk=annotation.task_id, completed_at__isnull=False).exists()
    )


def _carry_out(review: Review, annotation: Annotation, now) -> Judgement:
    """What a verdict does to the work: on to the next layer, a new version, or rework."""
    position = review.layer.position
    if review.verdict == Verdict.ACCEPT:
        next_item = review_arrive(
            annotation=annotation, version=review.version, now=now, after=position
        )
        return Judgement(review, next_item=next_item)
    if review.verdict == Verdict.CORRECT:
        # The correction is the next version. No other writer moves the version meanwhile: a
        # version waits at one layer at a time, and this item is locked.
        annotation.version = review.version + 1
        annotation.save(update_fields=["version"])
        if _complete_with_overlap(annotation):
            # Its agreement and consensus were computed from the version corrected: computed
            # again after commit (the job finds the new version and stores what it counted).
            enqueue(jobs.compute_task_agreement, annotation.task_id)
        next_item = review_arrive(
            annotation=annotation, version=annotation.version, now=now, after=position
        )
        return Judgement(review, next_item=next_item)
    return Judgement(review, rework=assignment_rework(assignment_id=annotation.assignment_id))
