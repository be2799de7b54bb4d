from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    dependencies = [("tasks", "0007_task_imports"), ("workforce", "0002_audit_append_only")]

    operations = [
        migrations.RunSQL("DROP FUNCTION tasks_claim(bigint, bigint, timestamptz)"),
        InstallSQL("workforce/certifications.sql", "b74a845227f9cff5"),
        InstallSQL("tasks/services/claims.sql", "8244a65a967d24e4"),
    ]
