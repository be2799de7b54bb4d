from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """One rule for a requirement of skill and domains (``tasks_skill_qualification``), which
    the claim's qualification and the review claim's both call."""

    dependencies = [
        ("tasks", "0011_submit_function"),
    ]

    operations = [
        InstallSQL("tasks/services/claims.sql", "be8bec76f2a2aabc"),
    ]
