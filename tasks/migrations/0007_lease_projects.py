from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """One rule of who may hold leases, as rows the planner inlines (``tasks_lease_projects``)."""

    dependencies = [
        ("tasks", "0006_claim_reads_the_access_rule"),
    ]

    operations = [
        InstallSQL("tasks/services/access.sql", "ee25f6cd4e203535"),
        InstallSQL("tasks/services/claims.sql", "301e43aed3bcd4c9"),
        # Replaced by tasks_lease_projects; nothing calls it any more.
        migrations.RunSQL(
            "DROP FUNCTION IF EXISTS tasks_may_hold_lease(bigint, bigint)", migrations.RunSQL.noop
        ),
    ]
