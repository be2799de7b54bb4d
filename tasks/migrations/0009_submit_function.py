from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """The submit's locks, checks and writes in one round trip (``tasks_submit``)."""

    dependencies = [
        ("tasks", "0008_gold"),
    ]

    operations = [
        InstallSQL("tasks/services/submit.sql", "c53d22dc32277db2"),
    ]
