from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0016_import_streamed"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="seated_overlap",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        # Existing projects count as seated: seating them all again would read every task of
        # every project with an overlap above 1 once, to find nothing missing.
        migrations.RunSQL(
            "UPDATE tasks_project SET seated_overlap = overlap",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
