"""Gold scoring and accuracy (DESIGN.md section 5).

A gold submission is scored with its kind's ``compare`` against the task's answer inside the
submission's own transaction (``gold_score_record``, the in-transaction handler of
``annotation_submitted``): a submitted gold annotation without its score cannot exist, and a
scorer that fails fails the submission. The same transaction updates the annotator's
``Accuracy`` row in the project in place, so reading accuracy never scans scores.

Accuracy is always told with its sample size and the 95 % Wilson score interval, with k the sum
of scores and n the number scored (``wilson``): three correct gold tasks read [0.44, 1], not
"100 %".
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Avg, Count
from django.utils import timezone
from psycopg.types.json import Jsonb

from config.rows import JoinedRows
from tasks.kinds import get_kind
from tasks.models import Annotation, Project, Task
from workforce.queue import catch_up

from .live import staff_event_insert
from .models import Accuracy, GoldRescore, GoldScore, LiveEventType
from .models.gold import RECENT_KEPT
from .own_view import own_today
from .stats import hour_of, stats_add, upsert_sql

# The window whose mean accuracy reads show beside the whole record.
RECENT_N = 20
Z_95 = 1.959963984540054
# A rescore still due this long after its answer was set is run again by the catch-up: its job
# failed or was lost (a younger one is likely still running). At most this many a run.
RESCORE_OVERDUE = timedelta(minutes=2)
RESCORE_CATCH_UP_LIMIT = 50


def wilson(k: float, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of k successes in n trials (k may be fractional); None for n 0.

    The bounds are clamped to [0, 1] against rounding: at k = n the upper bound is exactly 1.
    """
    if n <= 0:
        return None
    p = k / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    denominator = 1 + z2 / n
    low, high = (centre - spread) / denominator, (centre + spread) / denominator
    # At k = 0 and k = n the bounds are exactly 0 and 1; rounding would leave them a hair off.
    return (0.0 if k <= 0 else max(0.0, low)), (1.0 if k >= n else min(1.0, high))


@dataclass(frozen=True)
class AccuracyFigures:
    """What an accuracy read shows: n, k, mean, interval, and the mean of the latest scores."""

    scored: int
    score_sum: float
    # The latest ``RECENT_N`` scores (fewer when fewer were scored): their sum and count.
    recent_sum: float = 0.0
    recent_n: int = 0

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    # The Wilson interval, worked out once: ranking and showing a row both read it.
    interval: tuple[float, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", wilson(self.score_sum, self.scored))

    def as_dict(self) -> dict:
        interval = self.interval
        return {
            "scored": self.scored,
            "mean": self.mean,
            "low": interval[0] if interval else None,
            "high": interval[1] if interval else None,
            "recent_mean": self.recent_sum / self.recent_n if self.recent_n else None,
            "recent_n": self.recent_n,
        }


def review_figures(reviewed: int, score_sum: float) -> dict:
    """Review accuracy as it is shown: n, mean and the Wilson interval of the review scores."""
    shown = AccuracyFigures(reviewed, score_sum)
    low, high = shown.interval or (None, None)
    return {"reviewed": reviewed, "mean": shown.mean, "low": low, "high": high}


def _figures(scored: int, score_sum: float, recent: list[float]) -> AccuracyFigures:
    window = recent[-RECENT_N:]
    return AccuracyFigures(scored, score_sum, sum(window), len(window))


def figures(row: Accuracy) -> AccuracyFigures:
    """Staff's view of an accuracy row: everything scored so far."""
    return _figures(row.scored, row.score_sum, list(row.recent))


def own_figures(row: Accuracy, *, today=None) -> AccuracyFigures:
    """An annotator's view of their own row: what was scored before today (UTC), the rule of
    ``qa.own_view``."""
    today = today or own_today()
    if row.day < today:
        return figures(row)
    today_scored = row.scored - row.scored_before_day
    recent = list(row.recent)[: max(len(row.recent) - today_scored, 0)]
    return _figures(row.scored_before_day, row.sum_before_day, recent)


def combined(parts: list[AccuracyFigures]) -> AccuracyFigures:
    """Several rows' figures read as one (an annotator's accuracy in a kind, or a domain).

    Their recent windows are not merged (the rows keep no times to merge them by).
    """
    return AccuracyFigures(sum(p.scored for p in parts), sum(p.score_sum for p in parts))


# One statement: the row is created or updated in place, under its own lock, so concurrent
# submissions of one annotator in one project add up. ``day`` rolls the before-today totals.
_ACCURACY_ADD = f"""
INSERT INTO {Accuracy._meta.db_table} AS acc
    (annotator_id, project_id, scored, score_sum, recent, recent_sum, day, scored_before_day,
     sum_before_day, updated_at)
VALUES (%(annotator)s, %(project)s, 1, %(score)s, ARRAY[%(score)s]::double precision[],
        %(score)s, %(day)s, 0, 0, %(now)s)
ON CONFLICT (project_id, annotator_id) DO UPDATE SET
    -- The new score joins the window; the one RECENT_N back leaves it.
    recent_sum = acc.recent_sum + EXCLUDED.recent_sum - CASE
        WHEN cardinality(acc.recent) >= {RECENT_N}
        THEN acc.recent[cardinality(acc.recent) - {RECENT_N} + 1] ELSE 0 END,
    scored_before_day = CASE WHEN acc.day < EXCLUDED.day THEN acc.scored
                             ELSE acc.scored_before_day END,
    sum_before_day = CASE WHEN acc.day < EXCLUDED.day THEN acc.score_sum
                          ELSE acc.sum_before_day END,
    day = GREATEST(acc.day, EXCLUDED.day),
    scored = acc.scored + 1,
    score_sum = LEAST(acc.score_sum + EXCLUDED.score_sum, acc.scored + 1),
    recent = (acc.recent || EXCLUDED.recent)[
        GREATEST(cardinality(acc.recent) + 2 - {RECENT_KEPT}, 1):],
    updated_at = EXCLUDED.updated_at
"""  # noqa: S608


# A gold submission with its task and project, in one prepared statement. Left unread: what
# scoring never uses, whose conversion in Python would cost each gold submission.
_SUBMISSION = JoinedRows(
    [(Annotation, "a"), (Task, "t"), (Project, "p")],
    deferred={
        "t": ("data", "created_at", "completed_at", "cancelled_at", "gold_retired_at"),
        "p": ("created_at", "updated_at", "deadline", "instructions"),
    },
)
_SUBMISSION_SQL = (
    f"SELECT {_SUBMISSION.columns} FROM {_SUBMISSION.table('a')} a "  # noqa: S608
    f"JOIN {_SUBMISSION.table('t')} t ON t.id = a.task_id "
    f"JOIN {_SUBMISSION.table('p')} p ON p.id = a.project_id "
    "WHERE a.id = %s"
)

# A score's writes in one statement: the score, the annotator's accuracy row in the project, the
# hour's stats, and the event for staff. Every name comes from the models; values are
# parameters.
_SCORED = f"""
WITH score AS (
    INSERT INTO {GoldScore._meta.db_table}
        (annotation_id, task_id, project_id, annotator_id, score, details, answer_version,
         scored_at)
    VALUES (%(annotation)s, %(task)s, %(project)s, %(annotator)s, %(score)s, %(details)s,
            %(version)s, %(now)s)
), accuracy AS ({_ACCURACY_ADD}
), counted AS (
{
    upsert_sql(
        ["gold_scored", "gold_score_sum"],
        "VALUES (%(project)s, %(annotator)s, %(hour)s, 1, %(score)s)",
    )
}
), event AS ({
    staff_event_insert(LiveEventType.GOLD_SCORED, organization="%(organization)s", data="%(event)s")
}
)
SELECT 1
"""  # noqa: S608


def gold_score_record(annotation_id: int) -> GoldScore | None:
    """Score a gold submission and count it, inside the submission's transaction.

    Raises whatever the kind's comparison raises: the submission then fails whole. The author
    of the annotation a gold task was promoted from is not scored on it.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("Gold is scored inside the submission's transaction.")
    with connection.cursor() as cursor:
        cursor.execute(_SUBMISSION_SQL, [annotation_id])
        annotation, task, project = _SUBMISSION.instances(cursor.fetchone())
    if not task.is_gold or task.gold_source == annotation.pk:
        return None
    comparison = get_kind(project.kind).compare(
        annotation.payload, task.gold_answer, project.label_schema
    )
    score = score_checked(comparison.score)
    now = annotation.submitted_at
    # The live event tells the score's own values, which the statement stores too.
    event = {
        "annotation": annotation.pk,
        "project": project.pk,
        "task": task.pk,
        "annotator": annotation.annotator_id,
        "score": score,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            _SCORED,
            event
            | {
                "details": Jsonb(comparison.details),
                "version": task.gold_version,
                "now": now,
                "day": now.astimezone(UTC).date(),
                "hour": hour_of(now),
                "organization": project.organization_id,
                "event": Jsonb(event),
            },
        )
    gold_score = GoldScore(
        annotation=annotation,
        task=task,
        project=project,
        annotator_id=annotation.annotator_id,
        score=score,
        details=comparison.details,
        answer_version=task.gold_version,
        scored_at=now,
    )
    gold_score._state.adding = False
    return gold_score


def score_checked(score: float) -> float:
    """A kind's score as stored: a number in [0, 1], or the write that scores fails."""
    if not isinstance(score, int | float) or math.isnan(score) or not 0 <= score <= 1:
        raise ValueError(f"A comparison scored {score!r}, outside [0, 1].")
    return float(score)


def accuracy_rebuild(*, project_id: int, annotator_ids: list[int]) -> None:
    """Recompute the annotators' accuracy rows in a project from their scores (after a rescore).

    Locks each row (in annotator order) so a submission scored meanwhile is not lost.
    """
    today = timezone.now().astimezone(UTC).date()
    day_start = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    for annotator_id in sorted(annotator_ids):
        with transaction.atomic():
            row = (
                Accuracy.objects.select_for_update()
                .filter(project_id=project_id, annotator_id=annotator_id)
                .first()
            )
            if row is None:
                continue
            scores = GoldScore.objects.filter(project_id=project_id, annotator_id=annotator_id)
            totals = scores.aggregate(n=Count("pk"), mean=Avg("score"))
            before = scores.filter(scored_at__lt=day_start).aggregate(
                n=Count("pk"), mean=Avg("score")
            )
            latest = scores.order_by("-scored_at", "-pk").values_list("score", flat=True)
            row.scored = totals["n"]
            row.score_sum = min((totals["mean"] or 0.0) * totals["n"], totals["n"])
            row.recent = list(reversed(latest[:RECENT_KEPT]))
            row.recent_sum = sum(row.recent[-RECENT_N:])
            row.day = today
            row.scored_before_day = before["n"]
            row.sum_before_day = min((before["mean"] or 0.0) * before["n"], before["n"])
            row.updated_at = timezone.now()
            row.save()


@transaction.atomic
def _rescore(task: Task, annotation: Annotation, score: float, details: dict) -> bool:
    """Write one annotation's score of the task's current answer; False when a concurrent run
    wrote it first. Its hourly stats (the hour it was submitted) take the change of the score,
    and count it as scored only when it had no score: a rescore replaces a score."""
    previous = GoldScore.objects.select_for_update().filter(annotation=annotation).first()
    if previous is not None and previous.answer_version == task.gold_version:
        return False
    fields = {
        "task_id": task.pk,
        "project_id": task.project_id,
        "annotator_id": annotation.annotator_id,
        "score": score,
        "details": details,
        "answer_version": task.gold_version,
        # A new score keeps its submission's time: windows stay in submission order.
        "scored_at": annotation.submitted_at,
    }
    if previous is None:
        try:
            with transaction.atomic():
                GoldScore.objects.create(annotation=annotation, **fields)
        except IntegrityError:
            return False
        added = {"gold_scored": 1, "gold_score_sum": score}
    else:
        GoldScore.objects.filter(annotation=annotation).update(**fields)
        added = {"gold_score_sum": score - previous.score}
    stats_add(
        project_id=task.project_id,
        annotator_id=annotation.annotator_id,
        at=annotation.submitted_at,
        **added,
    )
    return True


# Every name comes from the models; the task's id is a parameter.
_RESCORE_DUE = f"""
INSERT INTO {GoldRescore._meta.db_table} (task_id, version, since)
SELECT id, gold_version, now() FROM {Task._meta.db_table} WHERE id = %s
ON CONFLICT (task_id) DO UPDATE SET version = EXCLUDED.version, since = EXCLUDED.since
"""  # noqa: S608


def gold_rescore_due(task_id: int) -> None:
    """In the transaction that set a task's gold answer: its submissions are due a rescore
    against it (``GoldRescore``), which ``gold_rescore`` clears once done."""
    with connection.cursor() as cursor:
        cursor.execute(_RESCORE_DUE, [task_id])


def gold_rescore(*, task_id: int) -> int:
    """Score every submission of a gold task against its current answer; return how many
    scores were written or changed. Idempotent: scores already of this answer are kept.

    Run by the job ``qa.rescore_gold`` after an answer is corrected or a task is made gold,
    and again by ``qa.catch_up_gold_rescores`` while the rescore is still due (a run failed).
    Each annotation is scored in a short transaction of its own; the accuracy rows of everyone
    scored on the task are rebuilt from their scores at the end (a run after one that failed
    before its rebuild rescores nothing, yet rebuilds), and the rescore is then no longer due.
    """
    task = Task.objects.select_related("project").filter(pk=task_id, is_gold=True).first()
    if task is None:  # gone, or no longer gold: nothing to score
        GoldRescore.objects.filter(task_id=task_id).delete()
        return 0
    kind, schema = get_kind(task.project.kind), task.project.label_schema
    stale = (
        Annotation.objects.filter(task_id=task_id)
        .exclude(pk=task.gold_source or 0)
        .exclude(gold_score__answer_version=task.gold_version)
        .order_by("pk")
    )
    rescored = 0
    for annotation in stale.iterator():
        comparison = kind.compare(annotation.payload, task.gold_answer, schema)
        if _rescore(task, annotation, score_checked(comparison.score), comparison.details):
            rescored += 1
    scored = set(GoldScore.objects.filter(task_id=task_id).values_list("annotator_id", flat=True))
    for annotator_id in scored:
        Accuracy.objects.get_or_create(
            project_id=task.project_id,
            annotator_id=annotator_id,
            defaults={"day": timezone.now().astimezone(UTC).date(), "updated_at": timezone.now()},
        )
    accuracy_rebuild(project_id=task.project_id, annotator_ids=sorted(scored))
    # A newer answer set meanwhile keeps its own rescore due.
    GoldRescore.objects.filter(task_id=task_id, version__lte=task.gold_version).delete()
    return rescored


def gold_rescores_catch_up(
    *, older_than: timedelta = RESCORE_OVERDUE, limit: int = RESCORE_CATCH_UP_LIMIT
) -> int:
    """Run the rescores still due ``older_than`` after their answer was set (their job failed
    or was lost; a younger one is likely still running); return how many were completed."""
    due = GoldRescore.objects.filter(since__lt=timezone.now() - older_than).order_by("since")
    return catch_up(
        list(due.values_list("task_id", flat=True)[:limit]),
        lambda task_id: gold_rescore(task_id=task_id),
        "The gold scores of task %s could not be rescored",
    )
