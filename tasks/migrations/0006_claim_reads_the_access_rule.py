from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """The claim grants leases by the rule that ends them (``tasks_may_hold_lease``)."""

    dependencies = [
        ("tasks", "0005_assignment_revoked_access_follows"),
    ]

    operations = [
        InstallSQL("tasks/services/claims.sql", "a1ac0fdd8356c338"),
    ]
