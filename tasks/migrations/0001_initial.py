"""The task tables, the claim indexes, and the qualification and claim functions.

The functions' source is ``tasks/services/claims.sql``; ``InstallSQL`` runs it. Several foreign
keys the claim writes carry no database constraint and no index: see the models for why.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("workforce", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Project",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("name", models.CharField(max_length=200)),
                ("client", models.CharField(blank=True, max_length=200)),
                (
                    "instructions",
                    models.TextField(blank=True, help_text="Markdown shown to annotators."),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("classification", "Classification"),
                            ("multilabel", "Multi-label classification"),
                            ("bbox", "Bounding boxes"),
                            ("polygon", "Polygons"),
                            ("keypoints", "Keypoints"),
                            ("ner", "Named entities"),
                            ("relations", "Relations"),
                            ("entity_linking", "Entity linking"),
                            ("video_tracks", "Video object tracks"),
                            ("video_events", "Video events"),
                        ],
                        max_length=32,
                    ),
                ),
                ("label_schema", models.JSONField(default=dict)),
                ("required_skill_level", models.PositiveSmallIntegerField(default=0)),
                ("overlap", models.PositiveSmallIntegerField(default=1)),
                ("gold_rate", models.FloatField(default=0.0)),
                ("lease_seconds", models.PositiveIntegerField(default=1800)),
                ("max_concurrent_tasks", models.PositiveSmallIntegerField(default=5)),
                ("priority", models.SmallIntegerField(default=0)),
                ("deadline", models.DateTimeField(blank=True, null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("draft", "Draft"),
                            ("active", "Active"),
                            ("paused", "Paused"),
                            ("completed", "Completed"),
                        ],
                        default="draft",
                        max_length=16,
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="projects",
                        to="workforce.organization",
                    ),
                ),
                (
                    "required_domains",
                    models.ManyToManyField(
                        blank=True, related_name="projects", to="workforce.domain"
                    ),
                ),
            ],
            options={
                "ordering": [
                    "-priority",
                    models.OrderBy(models.F("deadline"), nulls_last=True),
                    "id",
                ],
            },
        ),
        migrations.CreateModel(
            name="Assignment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("active", "Active"),
                            ("submitted", "Submitted"),
                            ("released", "Released"),
                            ("expired", "Expired"),
                        ],
                        default="active",
                        max_length=16,
                    ),
                ),
                ("leased_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("lease_expires_at", models.DateTimeField()),
                ("ended_at", models.DateTimeField(blank=True, null=True)),
                (
                    "annotator",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="assignments",
                        to="workforce.annotator",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="assignments",
                        to="tasks.project",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="ProjectMember",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "role",
                    models.CharField(
                        choices=[("annotator", "Annotator"), ("reviewer", "Reviewer")],
                        default="annotator",
                        max_length=16,
                    ),
                ),
                ("is_active", models.BooleanField(default=True)),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="projects",
                        to="workforce.annotator",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="members",
                        to="tasks.project",
                    ),
                ),
            ],
            options={
                "ordering": ["project_id", "id"],
            },
        ),
        migrations.CreateModel(
            name="Slot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seat", models.PositiveSmallIntegerField()),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("waiting", "Waiting for the previous seat"),
                            ("open", "Open"),
                            ("leased", "Leased"),
                            ("done", "Done"),
                        ],
                        max_length=8,
                    ),
                ),
                ("task_priority", models.SmallIntegerField(default=0)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "assignment",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="tasks.assignment",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tasks.project",
                    ),
                ),
            ],
            options={
                "ordering": ["task_id", "seat"],
            },
        ),
        migrations.AddField(
            model_name="assignment",
            name="slot",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to="tasks.slot",
            ),
        ),
        migrations.CreateModel(
            name="Task",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("external_id", models.CharField(max_length=200)),
                ("data", models.JSONField()),
                ("priority", models.SmallIntegerField(default=0)),
                ("is_gold", models.BooleanField(default=False)),
                ("gold_answer", models.JSONField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tasks",
                        to="tasks.project",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.AddField(
            model_name="slot",
            name="task",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="slots",
                to="tasks.task",
            ),
        ),
        migrations.AddField(
            model_name="assignment",
            name="task",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to="tasks.task",
            ),
        ),
        migrations.CreateModel(
            name="Annotation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("payload", models.JSONField()),
                ("version", models.PositiveIntegerField(default=1)),
                ("active_seconds", models.PositiveIntegerField(blank=True, null=True)),
                ("duration_seconds", models.FloatField()),
                ("submitted_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="annotations",
                        to="workforce.annotator",
                    ),
                ),
                (
                    "assignment",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="annotation",
                        to="tasks.assignment",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="annotations",
                        to="tasks.project",
                    ),
                ),
                (
                    "task",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="annotations",
                        to="tasks.task",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="TaskImport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("file", models.FileField(max_length=300, upload_to="imports/%Y/%m/")),
                ("format", models.CharField(max_length=8)),
                ("on_error", models.CharField(max_length=8)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=8,
                    ),
                ),
                ("rows_read", models.PositiveIntegerField(default=0)),
                ("report", models.JSONField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="imports",
                        to="tasks.project",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("overlap__gte", 1), ("overlap__lte", 10)),
                name="project_overlap",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("gold_rate__gte", 0), ("gold_rate__lte", 1)),
                name="project_gold_rate",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("required_skill_level__lte", 5)), name="project_skill_level"
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("lease_seconds__gte", 60)), name="project_lease"
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_concurrent_tasks__gte", 1)), name="project_concurrency"
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["draft", "active", "paused", "completed"])),
                name="project_status",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "kind__in",
                        [
                            "classification",
                            "multilabel",
                            "bbox",
                            "polygon",
                            "keypoints",
                            "ner",
                            "relations",
                            "entity_linking",
                            "video_tracks",
                            "video_events",
                        ],
                    )
                ),
                name="project_kind",
            ),
        ),
        migrations.AddIndex(
            model_name="projectmember",
            index=models.Index(fields=["annotator", "is_active"], name="project_member_annot_idx"),
        ),
        migrations.AddConstraint(
            model_name="projectmember",
            constraint=models.UniqueConstraint(
                fields=("project", "annotator"), name="project_member_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.UniqueConstraint(
                fields=("project", "external_id"), name="task_external_id"
            ),
        ),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("is_gold", False), ("gold_answer__isnull", False), _connector="OR"
                ),
                name="task_gold_answer",
            ),
        ),
        migrations.AddIndex(
            model_name="slot",
            index=models.Index(
                models.F("project"),
                models.OrderBy(models.F("seat"), descending=True),
                models.OrderBy(models.F("task_priority"), descending=True),
                models.F("task"),
                condition=models.Q(("state", "open")),
                name="slot_open_claim_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="slot",
            index=models.Index(
                condition=models.Q(("state", "leased")),
                fields=["project", "lease_expires_at"],
                name="slot_leased_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="slot",
            constraint=models.UniqueConstraint(fields=("task", "seat"), name="slot_unique_seat"),
        ),
        migrations.AddConstraint(
            model_name="slot",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["waiting", "open", "leased", "done"])),
                name="slot_state",
            ),
        ),
        migrations.AddConstraint(
            model_name="slot",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("state", "leased"), _negated=True),
                    models.Q(("assignment__isnull", False), ("lease_expires_at__isnull", False)),
                    _connector="OR",
                ),
                name="slot_leased_has_holder",
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(
                fields=["annotator", "status", "project", "lease_expires_at"],
                name="assignment_annotator_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(fields=["project", "annotator"], name="assignment_project_idx"),
        ),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.UniqueConstraint(
                fields=("task", "annotator"), name="assignment_once_per_task"
            ),
        ),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["active", "submitted", "released", "expired"])),
                name="assignment_status",
            ),
        ),
        migrations.AddIndex(
            model_name="annotation",
            index=models.Index(fields=["project", "-submitted_at"], name="annotation_project_idx"),
        ),
        migrations.AddIndex(
            model_name="annotation",
            index=models.Index(
                fields=["annotator", "-submitted_at"], name="annotation_annotator_idx"
            ),
        ),
        InstallSQL("tasks/services/claims.sql", "408d2dc85333ab3f"),
    ]
