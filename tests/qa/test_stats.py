"""Per annotator, project and hour stats: written with the events they count, read as figures."""

from datetime import UTC, datetime

import pytest

from qa.models import AnnotatorHourStats
from qa.stats import HANDLING_BOUNDS, figures, handling_bucket, hour_rows, stats_add, summed
from tests.helpers import make_project

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 2, 10, 17, 5, tzinfo=UTC)


def test_stats_add_adds_to_the_row_of_the_hour_and_hour_rows_reads_it(org):
    project = make_project(org)
    stats_add(project_id=project.pk, annotator_id=org.annotator.pk, at=AT, submitted=1)
    stats_add(
        project_id=project.pk,
        annotator_id=org.annotator.pk,
        at=AT.replace(minute=59),
        submitted=2,
        gold_scored=1,
        gold_score_sum=0.5,
    )
    stats_add(
        project_id=project.pk, annotator_id=org.annotator.pk, at=AT.replace(hour=11), claimed=1
    )
    assert AnnotatorHourStats.objects.count() == 2
    [row] = hour_rows(project_id=project.pk, annotator_ids=[org.annotator.pk], hour=AT)
    assert row["hour"] == "2026-03-02T10:00:00+00:00"
    assert (row["submitted"], row["gold_scored"], row["gold_score_sum"]) == (3, 1, 0.5)
    assert row["throughput_per_hour"] == 3 and row["gold_accuracy"] == 0.5
    assert row["handling_buckets"] == [0] * len(HANDLING_BOUNDS)
    assert row["handling_median_seconds"] is None
    assert hour_rows(project_id=project.pk, annotator_ids=[], hour=AT) == []
    with pytest.raises(ValueError, match="bogus"):
        stats_add(project_id=project.pk, annotator_id=org.annotator.pk, at=AT, bogus=1)


def test_handling_quantiles_are_read_from_the_buckets():
    assert [handling_bucket(s) for s in (0, 4.9, 5, 59.9, 60, 3599, 3600, 1e9)] == [
        0, 0, 1, 5, 6, 12, 13, 13,
    ]  # fmt: skip
    buckets = [0] * len(HANDLING_BOUNDS)
    for seconds in (3, 7, 8, 12, 50, 70, 100, 200, 400, 5000):
        buckets[handling_bucket(seconds)] += 1
    row = dict.fromkeys(("claimed", "gold_scored", "gold_score_sum"), 0) | {
        "submitted": 10, "active_seconds": 0, "reviews_accepted": 3, "reviews_rejected": 1,
        "reviews_corrected": 1, "review_score_sum": 3.5, "agreement_sum": 1.5,
        "agreement_count": 2, "handling_buckets": buckets,
    }  # fmt: skip
    shown = figures(row, hours_worked=4)
    # The 5th of ten, 50 s, is in [45, 60): the median reads 60.
    assert shown["handling_median_seconds"] == 60
    # The 9th is 400, in [300, 600).
    assert shown["handling_p90_seconds"] == 600
    assert shown["throughput_per_hour"] == 2.5
    assert shown["review_pass_rate"] == 0.6 and shown["review_mean_score"] == 0.7
    assert shown["agreement_mean"] == 0.75 and shown["gold_accuracy"] is None
    only_long = [0] * (len(HANDLING_BOUNDS) - 1) + [2]
    assert (
        figures(row | {"handling_buckets": only_long}, hours_worked=1)["handling_p90_seconds"]
        == HANDLING_BOUNDS[-2]
    )
    total, hours = summed([row, row | {"submitted": 0}])
    assert hours == 1 and total["submitted"] == 10 and total["handling_buckets"][0] == 2
