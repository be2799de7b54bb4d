"""Live events the database writes: a claim's ``assignment.claimed``, and ``access.changed``
when a member's access may have changed. The source is ``qa/live.sql``."""

from django.conf import settings
from django.db import migrations, models

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    dependencies = [
        ("qa", "0011_review_edges"),
        ("tasks", "0011_submit_function"),
        ("workforce", "0005_audit_verb_review_policy"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="liveevent",
            name="type",
            field=models.CharField(
                choices=[
                    ("assignment.claimed", "Assignment Claimed"),
                    ("annotation.submitted", "Annotation Submitted"),
                    ("import.progressed", "Import Progressed"),
                    ("gold.scored", "Gold Scored"),
                    ("quality.alert", "Quality Alert"),
                    ("review.completed", "Review Completed"),
                    ("access.changed", "Access Changed"),
                ],
                max_length=64,
            ),
        ),
        InstallSQL("qa/live.sql", "0a0b1a2a21bf7c5c"),
    ]
