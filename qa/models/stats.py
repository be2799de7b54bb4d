"""Per annotator, project and hour: what they did and how it was judged (DESIGN.md, "Stats").

Each row is added to in the transaction of the event it counts (``qa.stats``): a submission, a
gold score, a verdict, a task's agreement; claims are counted by a beat job that follows the
assignments past a cursor (``StatsCursor``). Reads sum rows and never scan annotations.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q, Value

from tasks.models import Project
from workforce.models import Annotator

# How many handling-time buckets a row keeps: ``qa.stats.HANDLING_BOUNDS`` gives their bounds.
HANDLING_BUCKETS = 14


def _zeros() -> Value:
    return Value([0] * HANDLING_BUCKETS, output_field=ArrayField(models.IntegerField()))


class AnnotatorHourStats(models.Model):
    """One annotator's counters in one project over one UTC hour (``hour`` is its start).

    Counts and sums only, so that rows add up: a range is the sum of its hours, and every
    figure shown (``qa.stats.figures``) is derived from such a sum. ``handling_buckets[i]``
    counts the submissions whose handling time fell in bucket ``i`` of
    ``qa.stats.HANDLING_BOUNDS``. Every counter has a database default, so that each writer
    inserts only what it adds.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    hour = models.DateTimeField()
    claimed = models.PositiveIntegerField(db_default=0)
    submitted = models.PositiveIntegerField(db_default=0)
    # The submissions' handling time (``Annotation.duration_seconds``, the round's for rework).
    active_seconds = models.FloatField(db_default=0.0)
    gold_scored = models.PositiveIntegerField(db_default=0)
    gold_score_sum = models.FloatField(db_default=0.0)
    reviews_accepted = models.PositiveIntegerField(db_default=0)
    reviews_rejected = models.PositiveIntegerField(db_default=0)
    reviews_corrected = models.PositiveIntegerField(db_default=0)
    review_score_sum = models.FloatField(db_default=0.0)
    agreement_sum = models.FloatField(db_default=0.0)
    # Not checked positive: a recomputed task's agreement takes back what it added, and
    # PostgreSQL checks an upsert's proposed row (the negative change) before its conflict.
    agreement_count = models.IntegerField(db_default=0)
    handling_buckets = ArrayField(models.IntegerField(), db_default=_zeros())

    class Meta:
        ordering = ["project_id", "annotator_id", "hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator", "hour"], name="annotator_hour_stats_unique"
            ),
            models.CheckConstraint(
                condition=Q(handling_buckets__len=HANDLING_BUCKETS),
                name="annotator_hour_stats_buckets",
            ),
        ]
        indexes = [
            # A project's rows over a range of hours (the QA lead's leaderboard).
            models.Index(fields=["project", "hour"], name="annotator_hour_stats_project"),
            # An annotator's rows across projects (their drill-down, their own stats).
            models.Index(fields=["annotator", "hour"], name="annotator_hour_stats_annotator"),
        ]

    def __str__(self) -> str:
        return f"stats of {self.annotator_id} in {self.project_id} at {self.hour:%Y-%m-%d %H}h"


class StatsCursor(models.Model):
    """How far a roll-up job has read a table: one row per job, locked while it runs."""

    name = models.CharField(max_length=64, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"
