from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """Review qualification through the tasks' rule of skill and domains, and review leases that
    end with their project's archiving."""

    dependencies = [
        ("qa", "0009_review_rules_and_events"),
        ("tasks", "0012_skill_qualification"),
    ]

    operations = [
        InstallSQL("qa/reviews.sql", "78ece68f5efbefa3"),
    ]
