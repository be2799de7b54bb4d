from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """The review claim's test of the member's own reviews stays one index probe per item,
    whatever the statistics say (qa_review_claim)."""

    dependencies = [
        ("qa", "0012_live_claims_and_access"),
    ]

    operations = [
        InstallSQL("qa/reviews.sql", "54c347d4ba484fc1"),
    ]
