"""Agreement and consensus stored per task, and the project agreement reports' cache.

When a task reaches its overlap a job (``qa.task_agreement``) compares its annotators' work and
merges it: ``TaskAgreement`` is how much they agree, ``TaskConsensus`` the answer merged from
them. Both say what they were computed from (the annotations counted, at which version, and the
task's completion they answer), so that the job is idempotent and a later run sees new work.

``AgreementReport`` keeps a project's last report of each kind with a fingerprint of the work it
read; a request finding the same fingerprint is answered from it (``qa.agreement_report``).
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from tasks.models import Project, Task


class TaskAgreement(models.Model):
    """How much the annotators of one task agree.

    ``value`` is the mean pairwise ``compare`` over their submitted annotations, each unordered
    pair scored in both directions and the two averaged (a kind whose comparison is asymmetric,
    such as keypoints' OKS scaled by the reference, counts both annotators as the reference
    once); None with fewer than two annotations. ``labels`` is the per-item label table of a
    categorical kind (label -> count), empty otherwise.

    ``annotation_ids`` and ``versions`` (aligned, by id) and ``task_completed_at`` are what it
    was computed from. ``seats`` is how many seats the task had then, and ``seat_added`` whether
    dynamic overlap gave it one more on this computation.
    """

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotations = models.PositiveSmallIntegerField(default=0)
    value = models.FloatField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotation_ids = ArrayField(models.BigIntegerField(), default=list)
    versions = ArrayField(models.PositiveIntegerField(), default=list)
    task_completed_at = models.DateTimeField(null=True, blank=True)
    seats = models.PositiveSmallIntegerField(default=0)
    seat_added = models.BooleanField(default=False)
    computed_at = models.DateTimeField(null=True, blank=True)
    # Each annotator's agreement on the task (annotator id -> the mean of their pairs' scores),
    # as this computation added it to their hourly stats in the hour of ``computed_at``: the
    # next computation takes it back out, so that a task is counted once (``qa.stats``).
    annotator_scores = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["task_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__isnull=True) | (Q(value__gte=0) & Q(value__lte=1)),
                name="task_agreement_value_range",
            ),
        ]

    def __str__(self) -> str:
        return f"agreement {self.value} on task {self.task_id}"


class ConsensusMethod(models.TextChoices):
    MAJORITY_VOTE = "majority_vote", "Majority vote"
    # Each annotator's vote weighs their gold accuracy in the project (``qa.task_agreement``).
    WEIGHTED_VOTE = "weighted_vote", "Gold-accuracy-weighted vote"
    # The kind's own merge: clusters of shapes or spans a quorum agrees on.
    MERGE = "merge", "Kind merge"


class TaskConsensus(models.Model):
    """The answer merged from a task's annotations, with the method and its confidence.

    ``confidence`` is the kind's: the (weighted) mean ``compare`` of each annotation against the
    consensus, which for a vote is the winning share. ``scores`` holds each annotator's
    ``compare`` against the consensus (annotator id -> score), which the project report averages.
    """

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=16, choices=ConsensusMethod.choices)
    payload = models.JSONField()
    confidence = models.FloatField()
    scores = models.JSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["task_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(method__in=ConsensusMethod.values), name="task_consensus_method"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="task_consensus_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} consensus on task {self.task_id}"


class ReportName(models.TextChoices):
    AGREEMENT = "agreement", "Agreement"
    DAWID_SKENE = "dawid_skene", "Dawid-Skene"


class AgreementReport(models.Model):
    """A project's last report of one name, and the fingerprint of the work it was built from.

    The fingerprint holds the report's parameters and counts that change whenever the work it
    reads does (``qa.agreement_report.work_fingerprint``); one row per project and name, replaced
    when a request finds another fingerprint.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=16, choices=ReportName.choices)
    fingerprint = models.JSONField()
    body = models.JSONField()
    computed_at = models.DateTimeField()
    seconds = models.FloatField(help_text="How long it took to build.")

    class Meta:
        ordering = ["project_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="agreement_report_unique"),
            models.CheckConstraint(
                condition=Q(name__in=ReportName.values), name="agreement_report_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} report of project {self.project_id}"
