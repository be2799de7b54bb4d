"""Qualification exams: a fixed, ordered set of gold items an annotator answers to earn a
certification and/or a skill level (``qa.exams``).

Exam items live here, in their own table, never among a project's tasks: exam work never mixes
with project work, and an exam exposes no project's gold pool.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from workforce.models import MAX_SKILL_LEVEL, Annotator, Domain, Organization, Skill


class Exam(models.Model):
    """An exam of one kind, in an organization, and what passing it grants.

    Passing grants a certification in ``domain`` valid ``certification_days`` and/or
    ``skill_level`` in the kind's skill; at least one of them.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    kind = models.CharField(max_length=32, choices=Skill.choices)
    label_schema = models.JSONField(default=dict)
    domain = models.ForeignKey(
        Domain, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The mean of the items' scores an attempt needs to pass.
    pass_threshold = models.FloatField()
    certification_days = models.PositiveIntegerField(null=True, blank=True)
    skill_level = models.PositiveSmallIntegerField(null=True, blank=True)
    cooldown_hours = models.PositiveIntegerField(default=24)
    # Failed attempts allowed; None is no limit.
    max_attempts = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=Skill.values), name="exam_kind_known"),
            models.CheckConstraint(
                condition=Q(pass_threshold__gte=0) & Q(pass_threshold__lte=1),
                name="exam_threshold_range",
            ),
            models.CheckConstraint(
                condition=Q(certification_days__isnull=True)
                | (Q(domain__isnull=False) & Q(certification_days__gte=1)),
                name="exam_certification_needs_domain",
            ),
            models.CheckConstraint(
                condition=Q(skill_level__isnull=True)
                | (Q(skill_level__gte=1) & Q(skill_level__lte=MAX_SKILL_LEVEL)),
                name="exam_skill_level_range",
            ),
            models.CheckConstraint(
                condition=Q(certification_days__isnull=False) | Q(skill_level__isnull=False),
                name="exam_grants_something",
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__isnull=True) | Q(max_attempts__gte=1),
                name="exam_max_attempts_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ExamItem(models.Model):
    """One gold item of an exam: task-like ``data`` and its ``answer``, at ``position``."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    data = models.JSONField()
    answer = models.JSONField()

    class Meta:
        ordering = ["exam_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["exam", "position"], name="exam_item_unique_position"),
        ]

    def __str__(self) -> str:
        return f"item {self.position} of exam {self.exam_id}"


class AttemptStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class ExamAttempt(models.Model):
    """One annotator's run through an exam; scored when its last item is submitted."""

    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="attempts")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.IN_PROGRESS
    )
    # Taken while the annotator held the exam's certification, due for renewal.
    renewal = models.BooleanField(default=False)
    item_count = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AttemptStatus.values), name="exam_attempt_status_valid"
            ),
            # The last line against two concurrent starts (the service locks the annotator).
            models.UniqueConstraint(
                fields=["exam", "annotator"],
                condition=Q(status="in_progress"),
                name="exam_attempt_one_in_progress",
            ),
            models.CheckConstraint(
                condition=Q(status="in_progress", finished_at__isnull=True, score__isnull=True)
                | (
                    ~Q(status="in_progress")
                    & Q(finished_at__isnull=False)
                    & Q(score__gte=0)
                    & Q(score__lte=1)
                ),
                name="exam_attempt_finished_scored",
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "exam"], name="exam_attempt_annotator_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.pk} at exam {self.exam_id}: {self.status}"


class ExamAnswer(models.Model):
    """An attempt's item as the annotator was given it (``claimed_at``) and answered it."""

    attempt = models.ForeignKey(ExamAttempt, on_delete=models.CASCADE, related_name="answers")
    item = models.ForeignKey(ExamItem, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    claimed_at = models.DateTimeField()
    payload = models.JSONField(null=True, blank=True)
    active_seconds = models.PositiveIntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict)

    class Meta:
        ordering = ["attempt_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "position"], name="exam_answer_unique_position"
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=1)),
                name="exam_answer_score_range",
            ),
        ]

    def __str__(self) -> str:
        return f"answer {self.position} of attempt {self.attempt_id}"
