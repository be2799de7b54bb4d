from django.db import migrations, models

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    """The review claim takes a layer's waiting items in order of arrival, an order only their
    own index gives, whatever the statistics say (qa_review_claim)."""

    dependencies = [
        ("qa", "0014_indexes_once"),
        ("tasks", "0014_indexes_once"),
        ("workforce", "0005_audit_verb_review_policy"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="reviewitem", name="review_item_open_idx"),
        migrations.AddIndex(
            model_name="reviewitem",
            index=models.Index(
                condition=models.Q(("state", "open")),
                fields=["layer", "arrived_at", "id"],
                name="review_item_open_idx",
            ),
        ),
        InstallSQL("qa/reviews.sql", "dd22b07e48751df3"),
    ]
