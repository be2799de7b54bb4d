"""Review sampling: whether a layer reviews an annotation version, decided once and recorded.

An annotation version arrives at a layer when it is submitted (the first layer), when a layer
accepts or corrects it (the next one), or when it is reworked after a rejection (back at the
layer that rejected it, which always reviews it again). ``review_arrive`` walks the layers from
there: each one's decision is recorded as a ``ReviewItem`` with the rate it used, and the walk
stops at the first layer that samples the version (it waits in that layer's queue) or after the
last (the version is final).

The rate at a layer (``sampling_rate``) is adaptive. It reads the annotator's accuracy in the
project, gold scores and review scores pooled into one Wilson interval: a newcomer (fewer than
the project's ``newcomer_gold_tasks`` scores in all) is sampled at the layer's base rate; past
that the rate falls linearly from the base rate, while the interval's lower bound is at most 0.5,
to the layer's floor once it reaches the project's ``accuracy_target``. A rate a quality rule
raised for the annotator (``ProjectMember.review_rate``) is a minimum at every layer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from tasks.models import Annotation, Project, ProjectMember
from workforce.models import Annotator

from .gold import wilson
from .models import (
    Accuracy,
    Review,
    ReviewAccuracy,
    ReviewItem,
    ReviewItemState,
    ReviewLayer,
    Verdict,
)
from .models import SamplingBasis as Basis

# Below this lower bound an annotator is sampled at the base rate.
ADAPTIVE_FROM = 0.5


@dataclass(frozen=True)
class Standing:
    """What sampling reads of an annotator in a project, in one query."""

    author_member_id: int
    scored: int
    score_sum: float
    raised_rate: float | None

    @property
    def lower_bound(self) -> float | None:
        interval = wilson(self.score_sum, self.scored)
        return interval[0] if interval else None


_STANDING = f"""
SELECT w.member_id,
       COALESCE(g.scored, 0) + COALESCE(r.reviewed, 0),
       COALESCE(g.score_sum, 0) + COALESCE(r.score_sum, 0),
       m.review_rate
FROM {Annotator._meta.db_table} w
LEFT JOIN {Accuracy._meta.db_table} g ON g.annotator_id = w.id AND g.project_id = %(project)s
LEFT JOIN {ReviewAccuracy._meta.db_table} r
    ON r.annotator_id = w.id AND r.project_id = %(project)s
LEFT JOIN {ProjectMember._meta.db_table} m
    ON m.annotator_id = w.id AND m.project_id = %(project)s
WHERE w.id = %(annotator)s
"""  # noqa: S608


def standing(*, annotator_id: int, project_id: int) -> Standing:
    with connection.cursor() as cursor:
        cursor.execute(_STANDING, {"annotator": annotator_id, "project": project_id})
        member_id, scored, score_sum, raised = cursor.fetchone()
    return Standing(member_id, scored, score_sum, raised)


def sampling_rate(layer: ReviewLayer, project: Project, who: Standing) -> tuple[float, str]:
    """The chance that ``layer`` reviews this annotator's work, and why (``SamplingBasis``)."""
    if who.scored == 0 or who.scored < project.newcomer_gold_tasks:
        rate, basis = layer.sample_rate, Basis.NEWCOMER
    else:
        low, target = who.lower_bound, project.accuracy_target
        if low <= ADAPTIVE_FROM:
            rate = layer.sample_rate
        elif low >= target:
            rate = layer.floor_rate
        else:
            share = (low - ADAPTIVE_FROM) / (target - ADAPTIVE_FROM)
            rate = layer.sample_rate - (layer.sample_rate - layer.floor_rate) * share
        basis = Basis.ADAPTIVE
    if who.raised_rate is not None and who.raised_rate > rate:
        rate, basis = who.raised_rate, Basis.RAISED
    return rate, basis


def review_arrive(
    *,
    annotation: Annotation,
    version: int,
    now: datetime,
    after: int = 0,
    rework_layer: ReviewLayer | None = None,
) -> ReviewItem | None:
    """Record the decisions of the layers past position ``after`` on ``version``; return the
    item of the first layer that samples it, or None when no layer does (the version is final).

    ``rework_layer``: a reworked version goes back to the layer that rejected it, which reviews
    it whatever the rate (``after`` is then ignored). Runs in the caller's transaction: a
    submission or a verdict without its review decision cannot exist.
    """
    layers = list(
        ReviewLayer.objects.filter(project_id=annotation.project_id)
        .filter(position__gte=rework_layer.position if rework_layer else after + 1)
        .order_by("position")
    )
    if not layers:
        return None
    project = annotation.project
    who = standing(annotator_id=annotation.annotator_id, project_id=annotation.project_id)
    for layer in layers:
        if rework_layer is not None and layer.pk == rework_layer.pk:
            rate, basis, sampled = 1.0, Basis.REWORK, True
        else:
            rate, basis = sampling_rate(layer, project, who)
            sampled = random.random() < rate
        item = ReviewItem.objects.create(
            annotation=annotation,
            version=version,
            layer=layer,
            project_id=annotation.project_id,
            task_id=annotation.task_id,
            author_member_id=who.author_member_id,
            sampled=sampled,
            rate=rate,
            basis=basis,
            arrived_at=now,
            state=ReviewItemState.OPEN if sampled else ReviewItemState.SKIPPED,
        )
        if sampled:
            return item
    return None


def review_submitted(annotation_id: int) -> ReviewItem | None:
    """A submission arrives at its project's first layer; a resubmission after a rejection
    (``qa.verdicts``) goes back to the layer that rejected it. In the submission's transaction.

    A project without review layers costs one indexed query; a first submission (version 1)
    never looks for a rejection.
    """
    if not ReviewLayer.objects.filter(project__annotations__pk=annotation_id).exists():
        return None
    annotation = Annotation.objects.select_related("project").get(pk=annotation_id)
    rejected = None
    if annotation.version > 1:
        # The resubmission is the version after the one rejected.
        rejected = (
            Review.objects.filter(
                annotation=annotation, version=annotation.version - 1, verdict=Verdict.REJECT
            )
            .select_related("layer")
            .first()
        )
    return review_arrive(
        annotation=annotation,
        version=annotation.version,
        now=annotation.submitted_at,
        rework_layer=rejected.layer if rejected else None,
    )
