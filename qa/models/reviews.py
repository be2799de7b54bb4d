"""Review policy, the review queue and verdicts (DESIGN.md sections 3 and 5, invariant 3).

A project's review policy is an ordered list of ``ReviewLayer``s and an error taxonomy of
``ErrorTag``s. When an annotation version arrives at a layer (a submission at the first layer,
an accepted or corrected version at the next one, a reworked version back at the layer that
rejected it) whether the layer samples it is decided once and recorded as a ``ReviewItem``, with
the rate used. A sampled item waits in the layer's queue (``open``), is leased to a reviewer
(``leased``) and ends ``done`` with one ``Review``; an item not sampled is ``skipped`` and the
version moves on at once.

A waiting item is leased by the review claim (``qa/reviews.sql``), which scans the partial
indexes of open items and of leases; a lapsed lease is claimable again. ``reviewer`` is the
current holder, then the judge: it is cleared when the holder releases the item (who is then
remembered in ``released_by``, so the item never comes back to them) or loses access.

People are identified by their organization ``Member``, which stays the same person through
role changes: the annotation's author is copied onto the item and the review as
``author_member``. Invariant 3 is held by the database: a reviewer is never the author (check
constraints on both tables), and the items a reviewer holds or judged of one annotation, and
their verdicts on it, are all at one layer (exclusion constraints, with ``btree_gist``).
"""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, RangeOperators
from django.db import models
from django.db.models import F, Q

from tasks.models import Annotation, Project, Task
from workforce.models import MAX_SKILL_LEVEL, Annotator, Domain, Member, Role


class ReviewerRole(models.TextChoices):
    """Who reviews at a layer: reviewers (and QA leads), or QA leads only."""

    REVIEWER = Role.REVIEWER.value, "Reviewer"
    QA_LEAD = Role.QA_LEAD.value, "QA lead"


class ReviewLayer(models.Model):
    """One stage of a project's review policy, at ``position`` 1, 2, … in review order."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_layers")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    sample_rate = models.FloatField()
    floor_rate = models.FloatField(default=0.0)
    role = models.CharField(
        max_length=16, choices=ReviewerRole.choices, default=ReviewerRole.REVIEWER
    )
    min_skill_level = models.PositiveSmallIntegerField(default=0)
    required_domains = models.ManyToManyField(Domain, blank=True, related_name="+")

    class Meta:
        ordering = ["project_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["project", "position"], name="review_layer_position"),
            models.CheckConstraint(condition=Q(position__gte=1), name="review_layer_position_1"),
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0) & Q(sample_rate__lte=1),
                name="review_layer_sample_rate",
            ),
            models.CheckConstraint(
                condition=Q(floor_rate__gte=0) & Q(floor_rate__lte=F("sample_rate")),
                name="review_layer_floor_rate",
            ),
            models.CheckConstraint(
                condition=Q(role__in=ReviewerRole.values), name="review_layer_role"
            ),
            models.CheckConstraint(
                condition=Q(min_skill_level__lte=MAX_SKILL_LEVEL), name="review_layer_skill_level"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.position} {self.name}"


class ErrorTag(models.Model):
    """One entry of a project's error taxonomy, which reviewers pick from when they reject."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="error_tags")
    code = models.SlugField(max_length=64)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["project_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["project", "code"], name="error_tag_code"),
        ]

    def __str__(self) -> str:
        return self.code


class SamplingBasis(models.TextChoices):
    """Why an item was sampled at the rate it was (shown to QA leads)."""

    NEWCOMER = "newcomer", "Newcomer: the layer's base rate"
    ADAPTIVE = "adaptive", "Adaptive: from the accuracy interval's lower bound"
    RAISED = "raised", "Raised for the annotator by a quality rule"
    REWORK = "rework", "Reworked after a rejection: always reviewed again"


class ReviewItemState(models.TextChoices):
    SKIPPED = "skipped", "Not sampled"
    OPEN = "open", "Waiting for a reviewer"
    LEASED = "leased", "Leased to a reviewer"
    DONE = "done", "Judged"


class ReviewItem(models.Model):
    """One annotation version's arrival at one layer: the sampling decision, and its queue place.

    ``project``, ``task`` and ``author_member`` are copies, so that the review claim is one
    index scan and invariant 3 is checked on the row itself.
    """

    # Indexed through the (annotation, version, layer) unique constraint.
    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    version = models.PositiveIntegerField()
    # Indexed through review_item_arrival_idx.
    layer = models.ForeignKey(
        ReviewLayer, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+", db_index=False)
    author_member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    sampled = models.BooleanField()
    rate = models.FloatField()
    basis = models.CharField(max_length=16, choices=SamplingBasis.choices)
    arrived_at = models.DateTimeField()
    state = models.CharField(max_length=8, choices=ReviewItemState.choices)
    reviewer = models.ForeignKey(
        Member, on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    leased_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Members who gave the item back: the claim never offers it to them again.
    released_by = ArrayField(models.BigIntegerField(), default=list, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "version", "layer"], name="review_item_once_per_layer"
            ),
            models.CheckConstraint(
                condition=Q(state__in=ReviewItemState.values), name="review_item_state"
            ),
            models.CheckConstraint(
                condition=Q(rate__gte=0) & Q(rate__lte=1), name="review_item_rate"
            ),
            models.CheckConstraint(
                condition=Q(sampled=True) | Q(state=ReviewItemState.SKIPPED),
                name="review_item_skipped_unless_sampled",
            ),
            # Invariant 3: nobody holds their own work for review.
            models.CheckConstraint(
                condition=Q(reviewer__isnull=True) | ~Q(reviewer=F("author_member")),
                name="review_item_not_self",
            ),
            # ... nor holds, nor judged, one annotation at two layers: the claim never hands
            # such an item out, and this refuses it if anything else tries.
            ExclusionConstraint(
                name="review_item_one_layer_per_reviewer",
                expressions=[
                    ("annotation", RangeOperators.EQUAL),
                    ("reviewer", RangeOperators.EQUAL),
                    ("layer", RangeOperators.NOT_EQUAL),
                ],
            ),
            models.CheckConstraint(
                condition=~Q(state=ReviewItemState.LEASED)
                | (Q(reviewer__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="review_item_leased_has_holder",
            ),
            models.CheckConstraint(
                condition=~Q(state=ReviewItemState.OPEN) | Q(reviewer__isnull=True),
                name="review_item_open_unheld",
            ),
        ]
        indexes = [
            # The review claim scans these: a layer's waiting items in order of arrival, and
            # its lapsed leases. The order is this index's alone, so that no statistics send
            # the claim along the primary key past every item leased or judged since.
            models.Index(
                fields=["layer", "arrived_at", "id"],
                name="review_item_open_idx",
                condition=Q(state=ReviewItemState.OPEN),
            ),
            models.Index(
                fields=["layer", "lease_expires_at"],
                name="review_item_leased_idx",
                condition=Q(state=ReviewItemState.LEASED),
            ),
            # A layer's arrivals by time: what QA leads count as sampled and skipped lately.
            models.Index(fields=["layer", "arrived_at"], name="review_item_arrival_idx"),
            # A reviewer's leases: the claim counts them against the project's limit, and an
            # access change ends them.
            models.Index(
                fields=["reviewer", "project", "lease_expires_at"],
                name="review_item_held_idx",
                condition=Q(state=ReviewItemState.LEASED),
            ),
            # A reviewer's items, newest first (``GET /api/v1/reviews``).
            models.Index(
                F("reviewer"),
                F("id").desc(),
                name="review_item_reviewer_idx",
                condition=Q(reviewer__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"review item {self.pk} ({self.state})"


class Verdict(models.TextChoices):
    ACCEPT = "accept", "Accept"
    REJECT = "reject", "Reject: back for rework"
    CORRECT = "correct", "Correct: the reviewer's fix is the new version"


class Review(models.Model):
    """One reviewer's verdict on one annotation version at one layer.

    ``score`` is what the verdict says of the author's work and counts toward their review
    accuracy: 1 for ``accept``, 0 for ``reject``, and for ``correct`` the kind's ``compare`` of
    the original against the correction. ``corrected_payload`` is the correction (validated by
    the kind), which is the annotation's next version.
    """

    item = models.OneToOneField(ReviewItem, on_delete=models.CASCADE, related_name="review")
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    layer = models.ForeignKey(ReviewLayer, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    author_member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    tags = ArrayField(models.SlugField(max_length=64), default=list, blank=True)
    comment = models.TextField(blank=True)
    corrected_payload = models.JSONField(null=True, blank=True)
    score = models.FloatField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Invariant 3: nobody reviews their own annotation ...
            models.CheckConstraint(
                condition=~Q(reviewer=F("author_member")), name="review_not_self"
            ),
            # ... or the same annotation at two layers.
            ExclusionConstraint(
                name="review_one_layer_per_reviewer",
                expressions=[
                    ("annotation", RangeOperators.EQUAL),
                    ("reviewer", RangeOperators.EQUAL),
                    ("layer", RangeOperators.NOT_EQUAL),
                ],
            ),
            models.CheckConstraint(condition=Q(verdict__in=Verdict.values), name="review_verdict"),
            models.CheckConstraint(
                condition=Q(score__gte=0) & Q(score__lte=1), name="review_score_range"
            ),
            models.CheckConstraint(
                condition=(Q(verdict=Verdict.CORRECT) & Q(corrected_payload__isnull=False))
                | (~Q(verdict=Verdict.CORRECT) & Q(corrected_payload__isnull=True)),
                name="review_correction_iff_correct",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "author_member", "-id"], name="review_author_idx"),
        ]

    def __str__(self) -> str:
        return f"review {self.pk}: {self.verdict}"


class ReviewAccuracy(models.Model):
    """What reviewers' verdicts say of an annotator's work in one project, kept current by each
    verdict on it (``qa.verdicts``): ``reviewed`` and ``score_sum`` are n and k of its Wilson
    interval (``Review.score``); ``recent`` the latest ``RECENT_KEPT`` scores, oldest first, for
    the quality rules' rolling window.

    Read beside gold accuracy; adaptive sampling pools the two (``qa.reviews``).
    """

    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    reviewed = models.PositiveIntegerField(default=0)
    score_sum = models.FloatField(default=0.0)
    recent = ArrayField(models.FloatField(), default=list)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["project_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="review_accuracy_unique"),
            models.CheckConstraint(
                condition=Q(score_sum__gte=0) & Q(score_sum__lte=F("reviewed")),
                name="review_accuracy_sum_range",
            ),
        ]

    def __str__(self) -> str:
        return f"review accuracy of {self.annotator_id}@{self.project_id}"
