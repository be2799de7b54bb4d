from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """The claim's test of the annotator's own tasks stays one index probe per slot, whatever
    the statistics say (tasks_claim)."""

    dependencies = [
        ("tasks", "0012_skill_qualification"),
    ]

    operations = [
        InstallSQL("tasks/services/claims.sql", "ef15cbbb8d5b2ea4"),
    ]
