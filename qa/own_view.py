"""What an annotator sees of their own figures: the rule that keeps gold out of them.

A figure that moved when one task was scored would tell the annotator that task was gold
(invariant 2). So what they read of themselves counts what happened before today (UTC): a day's
work joins their figures all at once when the day is over. Their gold accuracy
(``qa.gold.own_figures``) and their hourly stats (``qa.stats.own_until``) both follow it.

Throughput alone is theirs as it happens (``qa.stats.OWN_LIVE_FIELDS``: claims, submissions,
handling time): every submission moves it alike, gold or not. Today's so far is in
``GET /api/v1/me/stats`` (``today``), and their socket receives their row of the hour after
each of their own submissions (``qa.relay``); never after a score or a verdict, whose timing
would tell a task apart.
"""

from datetime import UTC, date, datetime

from django.utils import timezone


def own_today(now: datetime | None = None) -> date:
    """The UTC day an annotator's own figures leave out: today (but for its throughput)."""
    return (now or timezone.now()).astimezone(UTC).date()
