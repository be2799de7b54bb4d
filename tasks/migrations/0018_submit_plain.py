from django.db import migrations

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """``tasks_submit`` stores a plain submission as its own transaction when asked
    (``p_plain``, ``p_reacts``): the function with the former arguments goes first, since
    another list of arguments makes another function."""

    dependencies = [
        ("tasks", "0017_project_seated_overlap"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP FUNCTION IF EXISTS tasks_submit(bigint, jsonb, integer, double precision, "
            "timestamptz)",
            migrations.RunSQL.noop,
        ),
        InstallSQL("tasks/services/submit.sql", "b0c53e675c0fa09d"),
    ]
