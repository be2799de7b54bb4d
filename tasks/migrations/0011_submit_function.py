from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """The submit's locks, checks and writes in one round trip (``tasks_submit``)."""

    dependencies = [
        ("tasks", "0010_rework_versions"),
    ]

    operations = [
        InstallSQL("tasks/services/submit.sql", "90063e1af76b86f6"),
    ]
