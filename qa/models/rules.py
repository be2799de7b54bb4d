"""Quality rules, their state per annotator, and the actions they took (``qa.rules``).

A rule watches one metric of an annotator in a project and acts once when it crosses the
threshold. ``QualityRuleState`` remembers, per rule, annotator and project, whether the metric
stands beyond the threshold: the rule fires on the step from "within" to "beyond" only, and again
only after the metric came back. Each firing is a ``QualityAction``, which keeps what it changed
and the state before, so that a QA lead can undo it exactly.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from tasks.models import Project
from workforce.models import Annotator, Organization


class QualityMetric(models.TextChoices):
    """What a rule reads; ``qa.rules`` computes each one and says which side is bad."""

    # The mean of the annotator's last N gold scores in the project.
    GOLD_RECENT_MEAN = "gold_recent_mean", "Mean of the last N gold scores"
    # The lower bound of the 95 % Wilson interval over every gold score in the project.
    GOLD_LOWER_BOUND = "gold_lower_bound", "Lower bound of gold accuracy"
    # The share of the annotator's last N submissions in the project much faster than the
    # project's median handling time (``qa.rules.fast_share``).
    FAST_SUBMISSIONS = "fast_submissions", "Share of much-too-fast submissions"
    # The mean of the annotator's last N review scores in the project (``Review.score``: 1 an
    # accept, 0 a reject, a correction's ``compare``).
    REVIEW_RECENT_MEAN = "review_recent_mean", "Mean of the last N review scores"


class QualityEffect(models.TextChoices):
    """What a rule does when it fires; ``parameter`` is k or r where one is needed."""

    SUSPEND_PROJECT = "suspend_project", "Suspend from the project"
    LOWER_SKILL = "lower_skill", "Lower the project's skill by k levels"
    SUSPEND_CERTIFICATION = "suspend_certification", "Suspend the project's certifications"
    RAISE_GOLD_RATE = "raise_gold_rate", "Raise the annotator's gold rate to r"
    ALERT = "alert", "Alert staff only"
    RAISE_REVIEW_RATE = "raise_review_rate", "Raise the annotator's review sampling rate to r"


# The effects that take ``parameter``.
PARAMETRISED = ["lower_skill", "raise_gold_rate", "raise_review_rate"]


class QualityRule(models.Model):
    """A threshold on a metric and what to do when an annotator crosses it.

    ``project`` null makes it an organization default: it applies to every project of the
    organization that has no rule of its own (active or not) for the same metric.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="quality_rules"
    )
    metric = models.CharField(max_length=32, choices=QualityMetric.choices)
    threshold = models.FloatField()
    window = models.PositiveSmallIntegerField(default=20)
    min_sample = models.PositiveIntegerField(default=10)
    # How much faster than the project's median a submission must be to count as fast
    # (``fast_submissions`` only): under ``fast_fraction`` times the median.
    fast_fraction = models.FloatField(default=0.25)
    action = models.CharField(max_length=32, choices=QualityEffect.choices)
    parameter = models.FloatField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=0) & Q(threshold__lte=1), name="quality_rule_threshold"
            ),
            models.CheckConstraint(condition=Q(window__gte=1), name="quality_rule_window"),
            models.CheckConstraint(condition=Q(min_sample__gte=1), name="quality_rule_min_sample"),
            models.CheckConstraint(
                condition=Q(fast_fraction__gt=0) & Q(fast_fraction__lt=1),
                name="quality_rule_fast_fraction",
            ),
            models.CheckConstraint(
                condition=Q(action__in=PARAMETRISED, parameter__isnull=False)
                | (~Q(action__in=PARAMETRISED) & Q(parameter__isnull=True)),
                name="quality_rule_parameter",
            ),
        ]
        indexes = [models.Index(fields=["organization", "project"], name="quality_rule_scope_idx")]

    def __str__(self) -> str:
        return f"{self.metric} {self.threshold} -> {self.action} (rule {self.pk})"


class QualityRuleState(models.Model):
    """Whether a rule's metric stands beyond its threshold for one annotator in one project.

    Locked while the rule is evaluated for them, so concurrent evaluations fire once.
    """

    rule = models.ForeignKey(QualityRule, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    breached = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "annotator", "project"], name="quality_rule_state_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"rule {self.rule_id} on {self.annotator_id}@{self.project_id}: {self.breached}"


class QualityAction(models.Model):
    """One firing of a rule: the figure that crossed, its evidence, and what it changed.

    ``prior`` holds what undo restores, ``after`` what the action left (undo refuses when
    someone changed it since). ``rule`` goes null when the rule is deleted; the action keeps
    its own copy of what the rule said.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(
        QualityRule, on_delete=models.SET_NULL, null=True, related_name="actions"
    )
    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="quality_actions"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_actions")
    metric = models.CharField(max_length=32, choices=QualityMetric.choices)
    value = models.FloatField()
    threshold = models.FloatField()
    evidence = models.JSONField(default=dict)
    action = models.CharField(max_length=32, choices=QualityEffect.choices)
    parameter = models.FloatField(null=True, blank=True)
    # What was done, in words (for staff): "suspended from project 7", "nothing to change".
    effect = models.CharField(max_length=300)
    prior = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    undo_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["project", "-id"], name="quality_action_project_idx"),
            models.Index(fields=["annotator", "-id"], name="quality_action_annotator_idx"),
        ]

    def __str__(self) -> str:
        return f"quality action {self.pk}: {self.effect}"
