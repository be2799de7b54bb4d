import django.db.models.deletion
from django.db import migrations, models

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """Review qualification through the tasks' rule of skill and domains, review leases that end
    with their project's archiving, and the database's count of the changes of the work the
    agreement reports read (``AgreementChanges``, ``qa/agreement_report.sql``)."""

    dependencies = [
        ("qa", "0010_stats"),
        ("tasks", "0012_skill_qualification"),
    ]

    operations = [
        InstallSQL("qa/reviews.sql", "6372554ae5b91321"),
        migrations.CreateModel(
            name="AgreementChanges",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("shard", models.PositiveSmallIntegerField()),
                ("labels", models.BigIntegerField(default=0)),
                ("stored", models.BigIntegerField(default=0)),
                ("labels_xact", models.BigIntegerField(blank=True, null=True)),
                ("labels_at", models.DateTimeField(blank=True, null=True)),
                ("stored_xact", models.BigIntegerField(blank=True, null=True)),
                ("stored_at", models.DateTimeField(blank=True, null=True)),
                (
                    "project",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="tasks.project",
                    ),
                ),
            ],
            options={
                "ordering": ["project_id", "shard"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "shard"), name="agreement_changes_shard"
                    )
                ],
            },
        ),
        InstallSQL("qa/agreement_report.sql", "bd0102df6a6aba3e"),
    ]
