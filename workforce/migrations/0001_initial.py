"""The workforce tables, the certification state function and the append-only audit trigger.

The SQL lives in files beside the code (``workforce/*.sql``); ``InstallSQL`` runs them.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from workforce.sql import InstallSQL


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Organization",
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
                ("slug", models.SlugField(max_length=64, unique=True)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="Member",
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
                        choices=[
                            ("manager", "Manager"),
                            ("qa_lead", "QA lead"),
                            ("reviewer", "Reviewer"),
                            ("annotator", "Annotator"),
                        ],
                        max_length=16,
                    ),
                ),
                ("is_active", models.BooleanField(default=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="members",
                        to="workforce.organization",
                    ),
                ),
            ],
            options={
                "ordering": ["organization_id", "id"],
            },
        ),
        migrations.CreateModel(
            name="Annotator",
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
                    "status",
                    models.CharField(
                        choices=[
                            ("active", "Active"),
                            ("suspended", "Suspended"),
                            ("offboarded", "Offboarded"),
                        ],
                        default="active",
                        max_length=16,
                    ),
                ),
                ("languages", models.JSONField(blank=True, default=list)),
                ("timezone", models.CharField(default="UTC", max_length=64)),
                ("weekly_capacity_hours", models.PositiveSmallIntegerField(default=40)),
                ("max_concurrent_tasks", models.PositiveSmallIntegerField(default=5)),
                (
                    "member",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="annotator",
                        to="workforce.member",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="Domain",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("slug", models.SlugField(max_length=64)),
                ("name", models.CharField(max_length=200)),
                ("description", models.TextField(blank=True)),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="domains",
                        to="workforce.organization",
                    ),
                ),
            ],
            options={
                "ordering": ["organization_id", "slug"],
            },
        ),
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "verb",
                    models.CharField(
                        choices=[
                            ("member.created", "Member Created"),
                            ("annotator.updated", "Annotator Updated"),
                            ("annotator.suspended", "Annotator Suspended"),
                            ("annotator.reinstated", "Annotator Reinstated"),
                            ("annotator.offboarded", "Annotator Offboarded"),
                            ("skill.set", "Skill Set"),
                            ("domain.created", "Domain Created"),
                            ("domain.updated", "Domain Updated"),
                            ("domain.deleted", "Domain Deleted"),
                            ("certification.issued", "Certification Issued"),
                            ("certification.suspended", "Certification Suspended"),
                            ("certification.reinstated", "Certification Reinstated"),
                            ("certification.revoked", "Certification Revoked"),
                            ("certification.renewed", "Certification Renewed"),
                            ("certification.expired", "Certification Expired"),
                            ("project.created", "Project Created"),
                            ("project.updated", "Project Updated"),
                            ("project.member_added", "Project Member Added"),
                            ("project.tasks_import_queued", "Project Tasks Import Queued"),
                            ("project.tasks_imported", "Project Tasks Imported"),
                        ],
                        max_length=64,
                    ),
                ),
                ("target_type", models.CharField(max_length=64)),
                ("target_id", models.BigIntegerField()),
                ("target_repr", models.CharField(max_length=200)),
                ("before", models.JSONField(blank=True, null=True)),
                ("after", models.JSONField(blank=True, null=True)),
                ("reason", models.TextField(blank=True)),
                ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "annotator",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="audit_events",
                        to="workforce.annotator",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="audit_events",
                        to="workforce.organization",
                    ),
                ),
            ],
            options={
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="PendingJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("args", models.JSONField(default=list)),
                ("error", models.TextField(blank=True)),
                ("attempts", models.PositiveIntegerField(default=1)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["id"],
                "indexes": [models.Index(fields=["next_attempt_at"], name="pending_job_due_idx")],
                "constraints": [
                    models.UniqueConstraint(fields=("name", "args"), name="pending_job_once")
                ],
            },
        ),
        migrations.CreateModel(
            name="AnnotatorSkill",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "skill",
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
                ("level", models.PositiveSmallIntegerField()),
                (
                    "source",
                    models.CharField(
                        choices=[("exam", "Exam"), ("manual", "Manual"), ("rule", "Quality rule")],
                        max_length=16,
                    ),
                ),
                ("set_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="skills",
                        to="workforce.annotator",
                    ),
                ),
                (
                    "set_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["annotator_id", "skill"],
                "indexes": [models.Index(fields=["skill", "level"], name="skill_level_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("annotator", "skill"), name="skill_unique_per_annotator"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("level__gte", 0), ("level__lte", 5)),
                        name="skill_level_0_5",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "skill__in",
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
                        name="skill_known",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="Certification",
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
                    "status",
                    models.CharField(
                        choices=[
                            ("active", "Active"),
                            ("suspended", "Suspended"),
                            ("revoked", "Revoked"),
                            ("expired", "Expired"),
                        ],
                        default="active",
                        max_length=16,
                    ),
                ),
                ("issued_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("evidence", models.TextField()),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="certifications",
                        to="workforce.annotator",
                    ),
                ),
                (
                    "issued_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "domain",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="certifications",
                        to="workforce.domain",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "indexes": [
                    models.Index(fields=["status", "expires_at"], name="certification_expiry_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("annotator", "domain"), name="certification_unique_per_domain"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("status__in", ["active", "suspended", "revoked", "expired"])
                        ),
                        name="certification_status_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("expires_at__isnull", True),
                            ("expires_at__gt", models.F("issued_at")),
                            _connector="OR",
                        ),
                        name="certification_expires_after_issue",
                    ),
                ],
            },
        ),
        migrations.AddConstraint(
            model_name="annotator",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["active", "suspended", "offboarded"])),
                name="annotator_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="annotator",
            constraint=models.CheckConstraint(
                condition=models.Q(("weekly_capacity_hours__lte", 168)),
                name="annotator_capacity_le_week",
            ),
        ),
        migrations.AddConstraint(
            model_name="annotator",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_concurrent_tasks__gte", 1)),
                name="annotator_concurrency_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="member",
            constraint=models.UniqueConstraint(
                fields=("user", "organization"), name="member_unique_user_org"
            ),
        ),
        migrations.AddConstraint(
            model_name="member",
            constraint=models.CheckConstraint(
                condition=models.Q(("role__in", ["manager", "qa_lead", "reviewer", "annotator"])),
                name="member_role_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="domain",
            constraint=models.UniqueConstraint(
                fields=("organization", "slug"), name="domain_unique_slug"
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["organization", "-at"], name="audit_org_at_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "verb__in",
                        [
                            "member.created",
                            "annotator.updated",
                            "annotator.suspended",
                            "annotator.reinstated",
                            "annotator.offboarded",
                            "skill.set",
                            "domain.created",
                            "domain.updated",
                            "domain.deleted",
                            "certification.issued",
                            "certification.suspended",
                            "certification.reinstated",
                            "certification.revoked",
                            "certification.renewed",
                            "certification.expired",
                            "project.created",
                            "project.updated",
                            "project.member_added",
                            "project.tasks_import_queued",
                            "project.tasks_imported",
                        ],
                    )
                ),
                name="audit_verb_known",
            ),
        ),
        InstallSQL("workforce/certifications.sql", "b74a845227f9cff5"),
        InstallSQL("workforce/audit.sql", "772ece937f6e8204"),
    ]
