"""Per annotator, project and hour stats (``AnnotatorHourStats``): their writes and what they show.

**Writes.** Every counter is added to by one upsert (``upsert_sql``), in the transaction of the
event it counts, attributed to the UTC hour of that event:

- a submission (``submission_records``): ``submitted``, its handling time into
  ``active_seconds`` and ``handling_buckets``, with the live event; part of the statement storing
  a fresh submission (``tasks.events.SubmittedSql``), and its own statement after a
  resubmission (``submission_record``);
- a gold score (``qa.gold``): ``gold_scored`` and ``gold_score_sum``; a rescore adds the change
  of the score to the hour of the submission, and counts nothing again;
- a verdict on the annotator's own work (``qa.verdicts``): the verdict's count and its score,
  in the hour of the verdict;
- a task's agreement (``qa.task_agreement``): each annotator's mean pairwise score with the
  others on the task, in the hour of the computation; a recomputation adds the difference from
  what the last one added;
- claims (``claims_roll_up``, a beat job every few seconds): the claim is the hot path, and
  counting there would cost it a write; the job counts the assignments past a cursor.

**Figures** (``figures``), derived from a row or from a sum of rows, never stored:

- ``throughput_per_hour``: submissions per hour with at least one submission (the pace of the
  hours worked; an hour with only a late verdict or a claim does not dilute it);
- ``handling_median_seconds`` / ``handling_p90_seconds``: the upper bound of the bucket where
  the running count of submissions reaches 50 % / 90 % of them; the true value is at most that,
  and above the bucket below. The last bucket is open: its figure is its lower bound
  (``HANDLING_BOUNDS[-2]``), read "at least";
- ``gold_accuracy``: gold score sum / gold scored;
- ``review_pass_rate``: accepted / (accepted + rejected + corrected): a correction is not a pass;
- ``review_mean_score``: review score sum / verdicts;
- ``agreement_mean``: agreement sum / agreement count.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from config.serializers import json_time
from tasks.models import Annotation, Assignment, Project
from workforce.models import Annotator

from .live import annotation_submitted_insert
from .models import AnnotatorHourStats, ReviewLayer, StatsCursor
from .models.stats import HANDLING_BUCKETS
from .own_view import own_today

# Upper bounds of the handling-time buckets, in seconds; bucket ``i`` holds the times in
# [HANDLING_BOUNDS[i - 1], HANDLING_BOUNDS[i]). Fixed: changing them changes the meaning of
# every stored row.
# ``HANDLING_BUCKETS`` (the rows' array size, in ``qa.models.stats``) counts them.
HANDLING_BOUNDS: tuple[float, ...] = (
    5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 3600, math.inf,
)  # fmt: skip

COUNTERS: tuple[str, ...] = (
    "claimed",
    "submitted",
    "active_seconds",
    "gold_scored",
    "gold_score_sum",
    "reviews_accepted",
    "reviews_rejected",
    "reviews_corrected",
    "review_score_sum",
    "agreement_sum",
    "agreement_count",
)
# What an annotator never reads of their own stats (invariant 2).
GOLD_FIELDS: frozenset[str] = frozenset({"gold_scored", "gold_score_sum", "gold_accuracy"})
# What an annotator reads of their own work as it happens (today's, live: ``qa.own_view``):
# throughput alone, which every submission moves alike, gold or not. No gold figure, and no
# review or agreement figure either: one arriving soon after a submission would tell a task
# that was not gold.
OWN_LIVE_FIELDS: tuple[str, ...] = (
    "claimed",
    "submitted",
    "active_seconds",
    "handling_buckets",
    "throughput_per_hour",
    "handling_median_seconds",
    "handling_p90_seconds",
)

_T = AnnotatorHourStats._meta.db_table


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour ``at`` falls in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def handling_bucket(seconds: float) -> int:
    """The 0-based bucket of a handling time (as ``width_bucket`` on the finite bounds)."""
    return bisect_right(HANDLING_BOUNDS[:-1], seconds)


# -- writes -----------------------------------------------------------------------------------

# Each counter adds what the new row brings; the buckets add element by element.
_SET = ",\n    ".join(
    [f"{name} = s.{name} + EXCLUDED.{name}" for name in COUNTERS]
    + [
        "handling_buckets = ARRAY["
        + ", ".join(
            f"s.handling_buckets[{i}] + EXCLUDED.handling_buckets[{i}]"
            for i in range(1, HANDLING_BUCKETS + 1)
        )
        + "]"
    ]
)

# ``width_bucket`` on these answers the 0-based bucket as ``handling_bucket`` does.
_FINITE_BOUNDS = "ARRAY[" + ", ".join(str(b) for b in HANDLING_BOUNDS[:-1]) + "]::float8[]"


def bucket_array_sql(seconds: str) -> str:
    """SQL for a bucket array counting one handling time, ``seconds`` (an SQL expression)."""
    return (
        f"(array_fill(0, ARRAY[width_bucket({seconds}, {_FINITE_BOUNDS})]) || 1"
        f" || array_fill(0, ARRAY[{HANDLING_BUCKETS - 1} - width_bucket({seconds}, "
        f"{_FINITE_BOUNDS})]))"
    )


def upsert_sql(columns: Iterable[str], source: str) -> str:
    """The one upsert of stats rows: ``source`` (a SELECT or VALUES) gives ``project_id``,
    ``annotator_id``, ``hour`` and then ``columns``; each adds to the row of its hour.

    Concurrent writers to one row take turns on its lock and add up; counters not given are
    their database default, 0, and add nothing.
    """
    names = ", ".join(["project_id", "annotator_id", "hour", *columns])
    return (
        f"INSERT INTO {_T} AS s ({names})\n{source}\n"
        f"ON CONFLICT (project_id, annotator_id, hour) DO UPDATE SET\n    {_SET}"
    )


def stats_add(*, project_id: int, annotator_id: int, at: datetime, **increments: float) -> None:
    """Add ``increments`` (counter name -> amount, which may be negative for a correction of
    a sum) to the annotator's row in the project for the UTC hour of ``at``. In the caller's
    transaction: the row moves with the event it counts."""
    unknown = set(increments) - set(COUNTERS)
    if unknown:
        raise ValueError(f"Not stats counters: {sorted(unknown)}")
    columns = list(increments)
    values = ", ".join(["%s"] * (3 + len(columns)))
    sql = upsert_sql(columns, f"VALUES ({values})")
    with connection.cursor() as cursor:
        cursor.execute(sql, [project_id, annotator_id, hour_of(at), *increments.values()])


def _table(model) -> str:
    return model._meta.db_table


def submission_records(stored: str) -> str:
    """A submission's writes for quality, to be part of one statement: its live event, and the
    submission in its annotator's hour (``submitted``, the handling time).

    ``stored`` names a query of the submissions stored (``events.SubmittedSql.records``).
    Returns the statement's common table expressions (``qa_sub``, ``qa_event``,
    ``qa_counted``). Every name comes from the models.
    """
    return f"""qa_sub AS (
    SELECT x.id, x.project_id, x.task_id, x.annotator_id, x.duration_seconds,
           p.organization_id, w.member_id,
           date_trunc('hour', x.submitted_at, 'UTC') AS hour,
           -- This round's handling time: a resubmission's duration adds up every round, and
           -- its assignment's lease started again when the work was sent back.
           extract(epoch FROM x.submitted_at - x.leased_at)::float8 AS handling
    FROM {stored} x
    JOIN {_table(Project)} p ON p.id = x.project_id
    JOIN {_table(Annotator)} w ON w.id = x.annotator_id
), qa_event AS ({annotation_submitted_insert("qa_sub")}
), qa_counted AS (
{
        upsert_sql(
            ["submitted", "active_seconds", "handling_buckets"],
            f"SELECT project_id, annotator_id, hour, 1, handling, {bucket_array_sql('handling')} "
            "FROM qa_sub",
        )
    }
)"""  # noqa: S608


def submission_reacts(project: str) -> str:
    """Whether quality reacts to a fresh submission of a regular task in ``project`` (an SQL
    expression of its id) in its transaction: the project has review layers. A project without
    any costs the review decision no query."""
    return f"EXISTS (SELECT 1 FROM {_table(ReviewLayer)} l WHERE l.project_id = {project})"  # noqa: S608


def _submitted_sql() -> str:
    """``submission_records`` of a submission stored before, read by its id (a parameter), and
    ``submission_reacts`` of its project."""
    return f"""
WITH qa_stored AS (
    SELECT a.id, a.project_id, a.task_id, a.annotator_id, a.duration_seconds, a.submitted_at,
           s.leased_at
    FROM {_table(Annotation)} a
    JOIN {_table(Assignment)} s ON s.id = a.assignment_id
    WHERE a.id = %(annotation)s
), {submission_records("qa_stored")}
SELECT {submission_reacts("(SELECT project_id FROM qa_stored)")}
"""  # noqa: S608


_SUBMITTED = _submitted_sql()


def submission_record(annotation_id: int) -> bool:
    """In the transaction of a submission stored without its records (a resubmission, stored
    as its annotation's next version), one statement: ``submission_records``. Return whether
    its project has review layers."""
    with connection.cursor() as cursor:
        cursor.execute(_SUBMITTED, {"annotation": annotation_id})
        return cursor.fetchone()[0]


# The claims roll-up follows the assignments by id. An id is drawn when a claim inserts its row,
# and becomes visible when the claim commits: a row may appear below ids already read. Only
# rows whose lease started ``CLAIMS_SETTLE`` ago bound a batch (every row up to the bound is
# counted): a claim's transaction, short by design, has committed by then, so none can appear
# below the bound afterwards.
CLAIMS_CURSOR = "claims"
CLAIMS_SETTLE = timedelta(seconds=30)
CLAIMS_BATCH = 10_000

# Create the cursor row or lock it: concurrent runs take turns, each reading where the last
# one stopped.
_CURSOR_LOCK = f"""
INSERT INTO {_table(StatsCursor)} AS c (name, position, updated_at) VALUES (%(name)s, 0, %(now)s)
ON CONFLICT (name) DO UPDATE SET updated_at = EXCLUDED.updated_at
RETURNING c.position
"""  # noqa: S608

# One statement: the batch's bound, its claims counted into their hours (rows locked in
# ``qa.locks``' order), the cursor moved; it answers the bound (None when there was nothing to
# count) and how many claims it counted. The clocks of the claims' and the job's processes are
# taken to agree within ``CLAIMS_SETTLE``.
_CLAIMS_ROLL_UP = f"""
WITH bound AS (
    SELECT max(id) AS upto FROM (
        SELECT a.id FROM {_table(Assignment)} a
        WHERE a.id > %(after)s AND a.leased_at < %(settled)s
        ORDER BY a.id LIMIT %(batch)s
    ) settled
), claims AS (
    SELECT a.project_id, a.annotator_id, date_trunc('hour', a.leased_at, 'UTC') AS hour,
           count(*) AS n
    FROM {_table(Assignment)} a, bound
    WHERE a.id > %(after)s AND a.id <= bound.upto
    GROUP BY 1, 2, 3
), counted AS (
{upsert_sql(["claimed"], "SELECT project_id, annotator_id, hour, n FROM claims ORDER BY 1, 2, 3")}
), moved AS (
    UPDATE {_table(StatsCursor)} SET position = bound.upto
    FROM bound WHERE name = %(name)s AND bound.upto IS NOT NULL
)
SELECT (SELECT upto FROM bound), (SELECT COALESCE(sum(n), 0) FROM claims)
"""  # noqa: S608


def claims_roll_up(*, now: datetime | None = None, batch_size: int = CLAIMS_BATCH) -> int:
    """Count the claims made since the last run into their annotators' hours (``claimed``);
    return how many. Run by the beat job ``qa.roll_up_claims``: the claim itself, the hot path,
    writes no stats.

    Each batch is one short transaction under the cursor's lock, so that two runs at once
    count every claim once. A claim is counted in the hour its lease started.
    """
    now = now or timezone.now()
    counted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CURSOR_LOCK, {"name": CLAIMS_CURSOR, "now": now})
            after = cursor.fetchone()[0]
            cursor.execute(
                _CLAIMS_ROLL_UP,
                {
                    "name": CLAIMS_CURSOR,
                    "after": after,
                    "settled": now - CLAIMS_SETTLE,
                    "batch": batch_size,
                },
            )
            upto, claims = cursor.fetchone()
        if upto is None:
            return counted
        counted += claims


# -- figures ----------------------------------------------------------------------------------


def _quantile_bound(buckets: list[int], share: float) -> float | None:
    total = sum(buckets)
    if not total:
        return None
    running = 0
    for i, count in enumerate(buckets):
        running += count
        if running >= share * total:
            bound = HANDLING_BOUNDS[i]
            return float(HANDLING_BOUNDS[i - 1] if math.isinf(bound) else bound)
    raise AssertionError("unreachable: the running count reaches the total")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def figures(counters: Mapping, *, hours_worked: int) -> dict:
    """What a row, or a sum of rows, shows: its counters, its buckets, and the figures derived
    from them (the module docstring defines each). ``hours_worked``: of the rows summed, how
    many have a submission."""
    buckets = [int(count) for count in counters["handling_buckets"]]
    reviews = (
        counters["reviews_accepted"] + counters["reviews_rejected"] + counters["reviews_corrected"]
    )
    return {
        **{name: counters[name] for name in COUNTERS},
        "handling_buckets": buckets,
        "throughput_per_hour": _ratio(counters["submitted"], hours_worked),
        "handling_median_seconds": _quantile_bound(buckets, 0.5),
        "handling_p90_seconds": _quantile_bound(buckets, 0.9),
        "gold_accuracy": _ratio(counters["gold_score_sum"], counters["gold_scored"]),
        "review_pass_rate": _ratio(counters["reviews_accepted"], reviews),
        "review_mean_score": _ratio(counters["review_score_sum"], reviews),
        "agreement_mean": _ratio(counters["agreement_sum"], counters["agreement_count"]),
    }


_ROW_FIELDS = ("project_id", "annotator_id", "hour", *COUNTERS, "handling_buckets")


def row_out(row: Mapping) -> dict:
    """One hour's row as JSON-ready data: who, where, when, and its figures."""
    return {
        "project": row["project_id"],
        "annotator": row["annotator_id"],
        "hour": json_time(row["hour"]),
        **figures(row, hours_worked=1 if row["submitted"] else 0),
    }


def hour_rows(*, project_id: int | None, annotator_ids: list[int], hour: datetime) -> list[dict]:
    """The rows of the annotators in the project (None: in each of theirs) for the UTC hour of
    ``hour``, one per annotator and project that has one, by project and annotator id:
    JSON-ready (``row_out``). One query.

    Staff's view: every figure (an annotator reads their own through ``own_live_row``).
    """
    rows = AnnotatorHourStats.objects.filter(annotator_id__in=annotator_ids, hour=hour_of(hour))
    if project_id is not None:
        rows = rows.filter(project_id=project_id)
    return [
        row_out(row) for row in rows.order_by("project_id", "annotator_id").values(*_ROW_FIELDS)
    ]


def own_live(found: Mapping, *keys: str) -> dict:
    """What an annotator reads live of ``found`` (a row, or a sum of rows, of their own): its
    ``keys`` (who, where, when) and ``OWN_LIVE_FIELDS``, nothing else."""
    return {name: found[name] for name in (*keys, *OWN_LIVE_FIELDS)}


def own_live_row(row: Mapping) -> dict:
    """An hour's row (``hour_rows``) as its annotator reads it live."""
    return own_live(row, "project", "annotator", "hour")


# -- reads ------------------------------------------------------------------------------------

# Each counter summed, each bucket summed, and the hours with a submission: one grouped query.
_SUMS = {
    **{f"sum_{name}": Sum(name) for name in COUNTERS},
    **{f"sum_bucket_{i}": Sum(f"handling_buckets__{i}") for i in range(HANDLING_BUCKETS)},
    # Distinct hours: rows of one hour in several projects (or of several annotators) are one
    # hour worked.
    "hours_worked": Count("hour", filter=Q(submitted__gt=0), distinct=True),
}


def _shown_sums(row: dict, group: tuple[str, ...] = ()) -> dict:
    """One row of ``_SUMS`` as its group's values, hours worked and figures (``figures``)."""
    for name in COUNTERS:
        row[name] = row.pop(f"sum_{name}") or 0
    row["handling_buckets"] = [row.pop(f"sum_bucket_{i}") or 0 for i in range(HANDLING_BUCKETS)]
    hours_worked = row.pop("hours_worked")
    return {
        **{name: row[name] for name in group},
        "hours_worked": hours_worked,
        **figures(row, hours_worked=hours_worked),
    }


def _summed_rows(rows: QuerySet, *group: str) -> list[dict]:
    """The rows summed per ``group`` (in that order), each with its figures."""
    return [
        _shown_sums(row, group) for row in rows.order_by(*group).values(*group).annotate(**_SUMS)
    ]


def _in_range(rows: QuerySet, since: datetime, until: datetime) -> QuerySet:
    """The rows of the hours that start in [since, until)."""
    return rows.filter(hour__gte=since, hour__lt=until)


def _hours(rows: QuerySet) -> list[dict]:
    return [
        row_out(row)
        for row in rows.order_by("hour", "project_id", "annotator_id").values(*_ROW_FIELDS)
    ]


def project_stats(*, project: Project, since: datetime, until: datetime, by_hour: bool) -> dict:
    """Each annotator's stats in the project over the hours starting in [since, until), best
    throughput first, and each hour's row with ``by_hour``. Staff's view: gold included. Two
    queries (three by hour), whatever the number of rows."""
    rows = _in_range(AnnotatorHourStats.objects.filter(project=project), since, until)
    annotators = _summed_rows(rows, "annotator_id", "annotator__member__user__username")
    for row in annotators:
        row["annotator"] = row.pop("annotator_id")
        row["username"] = row.pop("annotator__member__user__username")
    annotators.sort(key=lambda row: (-(row["throughput_per_hour"] or 0), row["annotator"]))
    return {
        "project": project.pk,
        "since": since,
        "until": until,
        "annotators": annotators,
        "hours": _hours(rows) if by_hour else None,
    }


def projects_stats(*, organization_id: int, since: datetime, until: datetime) -> dict:
    """Each project of the organization over the hours starting in [since, until), its
    annotators summed: the pace the staffing board forecasts from. Staff's view. One query."""
    rows = _in_range(
        AnnotatorHourStats.objects.filter(project__organization_id=organization_id), since, until
    )
    projects = _summed_rows(rows, "project_id")
    for row in projects:
        row["project"] = row.pop("project_id")
    return {"since": since, "until": until, "projects": projects}


def _total_and_projects(rows: QuerySet) -> tuple[dict, list[dict]]:
    """One annotator's rows summed in total and per project (by project id, with its name)."""
    projects = _summed_rows(rows, "project_id", "project__name")
    for row in projects:
        row["project"] = row.pop("project_id")
        row["name"] = row.pop("project__name")
    return _shown_sums(rows.aggregate(**_SUMS)), projects


def annotator_stats(
    *, annotator: Annotator, since: datetime, until: datetime, by_hour: bool
) -> dict:
    """An annotator's stats over the hours starting in [since, until): in total, per project
    (by project id), and each hour's row with ``by_hour``. Staff's view: every figure."""
    rows = _in_range(AnnotatorHourStats.objects.filter(annotator=annotator), since, until)
    total, projects = _total_and_projects(rows)
    return {
        "annotator": annotator.pk,
        "since": since,
        "until": until,
        "total": total,
        "projects": projects,
        "hours": _hours(rows) if by_hour else None,
    }


def own_stats(
    *, annotator: Annotator, since: datetime, until: datetime, by_hour: bool, now: datetime
) -> dict:
    """What an annotator reads of their own stats (``qa.own_view``): the hours starting in
    [since, until) as ``annotator_stats`` gives them, without ``GOLD_FIELDS`` (the caller ends
    the range where that view ends, ``own_until``); and ``today``, their throughput since the
    start of today (UTC) as of ``now``, in total and per project: ``OWN_LIVE_FIELDS`` only.
    Two queries more than the range's: today's total and per project."""
    found = annotator_stats(annotator=annotator, since=since, until=until, by_hour=by_hour)
    for row in [found["total"], *found["projects"], *(found["hours"] or [])]:
        for name in GOLD_FIELDS:
            del row[name]
    today = own_until(now)
    rows = _in_range(
        AnnotatorHourStats.objects.filter(annotator=annotator), today, today + timedelta(days=1)
    )
    total, projects = _total_and_projects(rows)
    found["today"] = {
        "since": today,
        "total": own_live(total, "hours_worked"),
        "projects": [own_live(row, "project", "name", "hours_worked") for row in projects],
    }
    return found


def own_until(now: datetime | None = None) -> datetime:
    """Where an annotator's view of their own stats ends: the start of today (UTC), the rule of
    their own gold accuracy (``qa.own_view``). A whole day joins at once when it is over,
    so that no figure they read moves while they work; but today's throughput, which they read
    as it happens (``own_stats``' ``today``)."""
    return datetime.combine(own_today(now), time.min, tzinfo=UTC)
