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

The review claim is the PL/pgSQL function ``qa_review_claim`` in ``reviews.sql`` beside this
module (the migration installs that file; a test pins the installed functions to it). One
call, one short transaction, the mechanics of the task claim (``tasks/services/claims.py``):

1. Take the member's claim lock, so that one person's concurrent claims cannot exceed their
   limit; nobody else's claims wait for it.
2. Walk the layers they may hold a lease at (``qa_review_layers``: a project not archived, an
   active account and membership; a QA lead reviews at every layer, a reviewer at ``reviewer`` layers of projects
   they are an active reviewer member of, with an active profile), of active projects only (or
   the project and the layer position asked for), by project priority, deadline (none last)
   and id, later layers first within a project. Skip a layer whose skill level and
   certifications they lack (``qa_review_qualification``), or whose project's
   ``max_concurrent_tasks`` their unexpired review leases there reach.
3. At the first layer that has one, take with ``FOR NO KEY UPDATE SKIP LOCKED`` a lapsed lease
   (earliest lapsed), else the oldest waiting item (``review_item_leased_idx`` and
   ``review_item_open_idx``): never their own annotation, never one they judged at another
   layer, never an item they released, never a task made gold since. Lease it for the
   project's ``lease_seconds``. A lapsed lease is claimable again at once: no sweeper.
4. Without an item, say the most hopeful thing found: ``none_available``, ``at_limit``,
   ``not_qualified`` (with the layers and what they lack), ``no_layers``.

The database holds invariant 3 whatever the query does: an item's reviewer is never its author,
and one reviewer's items and verdicts of one annotation are all at one layer (``qa.models``).

Access follows people as they change (``reviews.sql``, a rule of the database): when a member
may no longer hold a lease at a layer (their account, membership, role, profile status, project
membership, or the layer's role changed, or the project was archived, by a service, the admin or
SQL), their leases there end in that same transaction and the items wait for others. Heartbeat and release then answer 403
``access_ended``. A released item waits for others too, and is never offered to its releaser
again.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import connection, transaction
from django.utils import timezone

from config.errors import Conflict, ErrorCode, PermissionDenied
from tasks.models import Annotation, Project, ProjectMember
from workforce.models import Annotator, Domain, Member

from .gold import wilson
from .locks import lock_review_item
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

    Called for projects with review layers only: the submission's statement says whether it
    has any (``qa.stats.submission_reacts``), and one without is stored by that statement alone.
    A first submission (version 1) never looks for a rejection.
    """
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


def review_items_skip(task_id: int) -> int:
    """Skip the items of a task made gold that still wait or are leased; return how many.

    Gold tasks are never reviewed: their answer is known. In the transaction that made the task
    gold (``qa.reactions.on_gold_answer_set``), which holds the task's seats and row by then, so
    no submission brings a new item. A verdict in flight may still move a version on to the
    next layer: the update waits for it (it needs none of the locks held here: a rejection
    takes the slot before the item, ``qa.verdicts``) and then reads again, until nothing is
    left waiting.
    """
    pending = ReviewItem.objects.filter(
        annotation__task_id=task_id, state__in=[ReviewItemState.OPEN, ReviewItemState.LEASED]
    )
    skipped = 0
    while pending.exists():
        skipped += pending.update(
            state=ReviewItemState.SKIPPED, reviewer=None, leased_at=None, lease_expires_at=None
        )
    return skipped


# ---------------------------------------------------------------------------------------------
# The review queue: claim, heartbeat, release.


class ReviewClaimOutcome(StrEnum):
    """What ``qa_review_claim`` answers in ``o_outcome``."""

    CLAIMED = "claimed"
    NO_LAYERS = "no_layers"
    NOT_QUALIFIED = "not_qualified"
    AT_LIMIT = "at_limit"
    NONE_AVAILABLE = "none_available"


# Why a review claim found nothing, as the reviewer reads it.
_MESSAGES = {
    ReviewClaimOutcome.NO_LAYERS: "You may review at no layer of an active project.",
    ReviewClaimOutcome.NOT_QUALIFIED: "You lack the skill level or certifications of every "
    "layer you may review at.",
    ReviewClaimOutcome.AT_LIMIT: "You hold as many reviews as you may at once.",
    ReviewClaimOutcome.NONE_AVAILABLE: "Nothing is waiting for your review right now.",
}


@dataclass(frozen=True, slots=True)
class ClaimedReview:
    """What a reviewer receives for a review claim: the work to judge, and what to judge it by.

    Nothing about gold, and not who made the annotation: the work is judged, not its author.
    """

    item_id: int
    layer_id: int
    layer_position: int
    layer_name: str
    project_id: int
    project_name: str
    kind: str
    instructions: str
    label_schema: dict
    error_tags: list[dict]
    task_id: int
    data: dict
    annotation_id: int
    version: int
    payload: dict
    leased_at: datetime
    lease_expires_at: datetime


@dataclass(frozen=True)
class ReviewClaimResult:
    """A claimed review item, or the outcome that explains why there is none."""

    outcome: ReviewClaimOutcome
    claimed: ClaimedReview | None = None
    # For ``not_qualified``: each layer with what keeps the member off it.
    layers: list[dict] | None = None

    @property
    def message(self) -> str:
        return _MESSAGES.get(self.outcome, "")


def _claim(member_id: int, project_id: int | None, layer: int | None, now: datetime) -> dict:
    """Call ``qa_review_claim`` and return its row by column name, without the ``o_`` prefix."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM qa_review_claim(%s::bigint, %s::bigint, %s::integer, %s)",
            [member_id, project_id, layer, now],
        )
        row = cursor.fetchone()
        names = [column.name.removeprefix("o_") for column in cursor.description]
    return dict(zip(names, row, strict=True))


def review_claim(
    *, member: Member, project_id: int | None = None, layer: int | None = None
) -> ReviewClaimResult:
    """Lease the next review item the member may judge, across their layers or at some.

    ``layer`` is a position (1 for a project's first layer): with ``project_id``, that layer of
    that project; alone, that layer of every project. The rules are those of
    ``qa_review_claim`` (this module's docstring).
    """
    now = timezone.now()
    row = _claim(member.pk, project_id, layer, now)
    outcome = ReviewClaimOutcome(row["outcome"])
    if outcome == ReviewClaimOutcome.NOT_QUALIFIED:
        return ReviewClaimResult(outcome, layers=layer_gaps(member, row["unqualified"], now))
    if outcome != ReviewClaimOutcome.CLAIMED:
        return ReviewClaimResult(outcome)
    # Django leaves jsonb undecoded on raw cursors; its JSON fields decode on reads.
    return ReviewClaimResult(
        outcome,
        ClaimedReview(
            item_id=row["item"],
            layer_id=row["layer"],
            layer_position=row["position"],
            layer_name=row["layer_name"],
            project_id=row["project"],
            project_name=row["project_name"],
            kind=row["kind"],
            instructions=row["instructions"],
            label_schema=json.loads(row["schema"]),
            error_tags=json.loads(row["tags"]),
            task_id=row["task"],
            data=json.loads(row["data"]),
            annotation_id=row["annotation"],
            version=row["version"],
            payload=json.loads(row["payload"]),
            leased_at=now,
            lease_expires_at=row["expires"],
        ),
    )


_QUALIFICATIONS_SQL = """
SELECT m.id, l.id, q.qualified, q.skill_level, q.unmet
FROM unnest(%s::bigint[]) AS m(id)
CROSS JOIN unnest(%s::bigint[]) AS l(id)
CROSS JOIN LATERAL qa_review_qualification(m.id, l.id, %s) AS q
"""


@dataclass(frozen=True)
class LayerQualification:
    """What ``qa_review_qualification`` answers for one member at one layer."""

    qualified: bool
    skill_level: int | None
    # Each required domain without a certification in force -> the state of the one held.
    unmet: dict[int, str | None]


def layer_qualifications(
    member_ids: list[int], layer_ids: list[int], now: datetime
) -> dict[tuple[int, int], LayerQualification]:
    """Each member's qualification at each layer, by (member, layer), in one query: the review
    claim's own rule (``qa_review_qualification``)."""
    with connection.cursor() as cursor:
        cursor.execute(_QUALIFICATIONS_SQL, [member_ids, layer_ids, now])
        rows = cursor.fetchall()
    return {
        (member, layer): LayerQualification(
            qualified, level, {int(domain): state for domain, state in json.loads(unmet).items()}
        )
        for member, layer, qualified, level, unmet in rows
    }


def layer_reasons(
    layer: ReviewLayer, kind: str, found: LayerQualification, slugs: dict[int, str]
) -> list[str]:
    """What keeps a member off a layer, in words: their skill level in the project's ``kind``
    below the layer's minimum, a required certification missing or not in force (``slugs``:
    domain id -> slug)."""
    reasons = []
    if (found.skill_level or 0) < layer.min_skill_level:
        held = f"level {found.skill_level}" if found.skill_level is not None else "no level"
        reasons.append(f"skill {kind} {held} < {layer.min_skill_level}")
    for domain_id, state in sorted(found.unmet.items()):
        slug = slugs[domain_id]
        reasons.append(
            f"no certification in {slug}" if state is None else f"certification {slug} {state}"
        )
    return reasons


def domain_slugs(found: dict[tuple[int, int], LayerQualification]) -> dict[int, str]:
    """The slugs of the domains the qualifications name as unmet, in one query."""
    ids = {domain for qualification in found.values() for domain in qualification.unmet}
    return dict(Domain.objects.filter(pk__in=ids).values_list("pk", "slug")) if ids else {}


def layer_gaps(member: Member, layer_ids: list[int], now: datetime) -> list[dict]:
    """Each layer with what keeps the member off it, in words (``layer_reasons``), read by
    ``qa_review_qualification``, the claim's own rule."""
    found = layer_qualifications([member.pk], layer_ids, now)
    layers = ReviewLayer.objects.filter(pk__in=layer_ids).select_related("project")
    slugs = domain_slugs(found)
    return [
        {
            "project": layer.project_id,
            "layer": layer.position,
            "name": layer.name,
            "reasons": layer_reasons(layer, layer.project.kind, found[member.pk, layer.pk], slugs),
        }
        for layer in sorted(layers, key=lambda layer: layer_ids.index(layer.pk))
    ]


def may_hold(*, member_id: int, layer_id: int) -> bool:
    """Whether the member may hold a review lease at the layer now (``qa_review_layers``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM qa_review_layers(%s) WHERE layer_id = %s)",
            [member_id, layer_id],
        )
        return cursor.fetchone()[0]


def review_lease_check(item: ReviewItem, member: Member) -> None:
    """Refuse to act on a review item the member does not hold now.

    Read under the item's lock, so the answer is the state that stands: 403 ``access_ended``
    when they may no longer review at its layer (their lease ended with their access), 409
    ``already_submitted`` when they judged it, ``already_released`` when they gave it back,
    ``lease_lost`` when their lease lapsed and someone else took it (or it ended otherwise).
    A lease that lapsed but that nobody took over is still theirs. An item of a task made gold
    is nobody's to judge (``review_items_skip``): 409 ``lease_lost``.
    """
    if item.state == ReviewItemState.SKIPPED:
        raise Conflict(
            "This work is no longer reviewed: its task was made gold. Your lease ended.",
            code=ErrorCode.LEASE_LOST,
        )
    if not may_hold(member_id=member.pk, layer_id=item.layer_id):
        raise PermissionDenied(
            "You may no longer review at this layer: your role, your membership of the project "
            "or your account changed. Your lease ended.",
            code=ErrorCode.ACCESS_ENDED,
        )
    if item.reviewer_id == member.pk and item.state == ReviewItemState.LEASED:
        return
    if item.reviewer_id == member.pk and item.state == ReviewItemState.DONE:
        raise Conflict("You judged this item already.", code=ErrorCode.ALREADY_SUBMITTED)
    if member.pk in item.released_by:
        raise Conflict("You released this item.", code=ErrorCode.ALREADY_RELEASED)
    raise Conflict(
        "Your lease on this item ended and it went back to the queue.",
        code=ErrorCode.LEASE_LOST,
    )


@transaction.atomic
def review_heartbeat(*, item: ReviewItem, member: Member) -> ReviewItem:
    """Extend the lease by the project's lease length, while the member still holds it."""
    item = lock_review_item(item.pk)
    review_lease_check(item, member)
    item.lease_expires_at = timezone.now() + timedelta(seconds=item.project.lease_seconds)
    item.save(update_fields=["lease_expires_at"])
    return item


@transaction.atomic
def review_release(*, item: ReviewItem, member: Member) -> ReviewItem:
    """Give the item back: it waits for another reviewer, and is never offered to this one again.

    Releasing again answers the released item, so a retried request is harmless.
    """
    item = lock_review_item(item.pk)
    if member.pk in item.released_by and item.reviewer_id != member.pk:
        return item
    review_lease_check(item, member)
    item.state, item.reviewer = ReviewItemState.OPEN, None
    item.leased_at = item.lease_expires_at = None
    item.released_by = [*item.released_by, member.pk]
    item.save(update_fields=["state", "reviewer", "leased_at", "lease_expires_at", "released_by"])
    return item
