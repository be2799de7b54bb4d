"""Gold scores and accuracy.

A submitted gold annotation has its ``GoldScore``, written in the submission's own transaction
(``qa.gold``), and the annotator's ``Accuracy`` row in the project is updated in place by the
same transaction: reads never scan scores.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from tasks.models import Annotation, Project, Task
from workforce.models import Annotator

# How many of an annotator's latest gold scores in a project are kept in order, for rolling
# windows (quality rules read up to this many; the accuracy read shows the mean of the last
# ``qa.gold.RECENT_N``).
RECENT_KEPT = 50


class GoldScore(models.Model):
    """One gold annotation's score against its task's answer (version ``answer_version``)."""

    annotation = models.OneToOneField(
        Annotation, on_delete=models.CASCADE, primary_key=True, related_name="gold_score"
    )
    # Gold health reads a task's scores; a corrected answer rescores them.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    score = models.FloatField()
    details = models.JSONField(default=dict)
    answer_version = models.PositiveIntegerField()
    scored_at = models.DateTimeField()

    class Meta:
        ordering = ["-scored_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=0) & Q(score__lte=1), name="gold_score_range"
            ),
        ]
        indexes = [
            # An annotator's scores in a project, in order (rebuilding their accuracy row).
            models.Index(
                fields=["project", "annotator", "scored_at"], name="gold_score_annotator_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"gold score {self.score:.3f} of annotation {self.pk}"


class GoldRescore(models.Model):
    """A gold task whose submissions are to be scored against its answer ``version``.

    Written with the answer, in its transaction; deleted by the run of ``qa.rescore_gold`` that
    has scored every submission and rebuilt the accuracy rows they count in. One left behind (a
    run failed midway) is run again by ``qa.catch_up_gold_rescores``.
    """

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True, related_name="+")
    version = models.PositiveIntegerField()
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"rescore of task {self.pk} for answer {self.version}"


class Accuracy(models.Model):
    """An annotator's gold accuracy in one project, kept current by each scored submission.

    ``scored`` and ``score_sum`` are n and k of the Wilson interval; ``recent`` the latest
    ``RECENT_KEPT`` scores, oldest first. ``day`` is the UTC day of the latest score, and
    ``scored_before_day`` / ``sum_before_day`` the totals before it: what the annotator is
    shown of their own accuracy, so that no figure they read moves when one task is scored
    (which would tell them that task was gold).
    """

    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    scored = models.PositiveIntegerField(default=0)
    score_sum = models.FloatField(default=0.0)
    recent = ArrayField(models.FloatField(), default=list)
    # The sum of the latest ``qa.gold.RECENT_N`` scores, kept with ``recent``: reading the
    # arrays of a thousand rows to add them up would cost a project's table read most of its time.
    recent_sum = models.FloatField(db_default=0.0)
    day = models.DateField()
    scored_before_day = models.PositiveIntegerField(default=0)
    sum_before_day = models.FloatField(default=0.0)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["project_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="accuracy_unique"),
            models.CheckConstraint(
                condition=Q(score_sum__gte=0) & Q(score_sum__lte=models.F("scored")),
                name="accuracy_sum_range",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"accuracy of {self.annotator_id} in {self.project_id}: {self.score_sum}/{self.scored}"
        )
