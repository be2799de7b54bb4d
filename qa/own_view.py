"""What an annotator sees of their own figures: the rule that keeps gold out of them.

A figure that moved when one task was scored would tell the annotator that task was gold
(invariant 2). So what they read of themselves counts what happened before today (UTC): a day's
work joins their figures all at once when the day is over. Their gold accuracy
(``qa.gold.own_figures``) and their hourly stats (``qa.stats.own_until``) both follow it.
"""

from datetime import UTC, date, datetime

from django.utils import timezone


def own_today(now: datetime | None = None) -> date:
    """The UTC day an annotator's own figures leave out: today."""
    return (now or timezone.now()).astimezone(UTC).date()
