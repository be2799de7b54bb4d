"""Organizations, members and roles, annotators, skills, domains, certifications, audit log."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Role(models.TextChoices):
    MANAGER = "manager", "Manager"
    QA_LEAD = "qa_lead", "QA lead"
    REVIEWER = "reviewer", "Reviewer"
    ANNOTATOR = "annotator", "Annotator"


class Skill(models.TextChoices):
    """One skill per annotation kind; the keys match the kinds registry in ``tasks.kinds``."""

    CLASSIFICATION = "classification", "Classification"
    MULTILABEL = "multilabel", "Multi-label classification"
    BBOX = "bbox", "Bounding boxes"
    POLYGON = "polygon", "Polygons"
    KEYPOINTS = "keypoints", "Keypoints"
    NER = "ner", "Named entities"
    RELATIONS = "relations", "Relations"
    ENTITY_LINKING = "entity_linking", "Entity linking"
    VIDEO_TRACKS = "video_tracks", "Video object tracks"
    VIDEO_EVENTS = "video_events", "Video events"


MAX_SKILL_LEVEL = 5


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Organization(TimeStamped):
    """A vendor: the tenant boundary. Nothing crosses it."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Separates an account's name from its organization's slug in the login: ``alice@acme``.
LOGIN_SEPARATOR = "@"


class Member(TimeStamped):
    """A user's place in one organization, with exactly one role there."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=16, choices=Role.choices)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["organization_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="member_unique_user_org"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="member_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user.get_username()} ({self.role}) @ {self.organization_id}"

    @property
    def username(self) -> str:
        """The name the organization knows the member by: the login without ``@<slug>``.

        An account made outside the organization (a global account that joined it) is known by
        its whole login.
        """
        login = self.user.get_username()
        suffix = f"{LOGIN_SEPARATOR}{self.organization.slug}"
        return login.removesuffix(suffix)


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"  # recorded when the login is invited again


class Invitation(TimeStamped):
    """An organization's offer of a role to the holder of a login, until they accept it.

    The only way an existing account joins another organization. It names a login, not an
    account: nothing is looked up when it is made, so the manager learns nothing of whether the
    login exists; the holder of that login sees it and decides.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    login = models.CharField(max_length=150)
    role = models.CharField(max_length=16, choices=Role.choices)
    status = models.CharField(
        max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.PENDING
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One open offer per login and organization; answered ones stay as history.
            models.UniqueConstraint(
                fields=["organization", "login"],
                condition=Q(status="pending"),
                name="invitation_one_pending",
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="invitation_role_valid"),
            models.CheckConstraint(
                condition=Q(status__in=InvitationStatus.values), name="invitation_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["login", "status"], name="invitation_login_idx")]

    def __str__(self) -> str:
        return f"{self.login} ({self.role}) @ {self.organization_id}: {self.status}"


class AnnotatorStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDED = "offboarded", "Offboarded"


class Annotator(TimeStamped):
    """The working profile of a member who annotates."""

    member = models.OneToOneField(Member, on_delete=models.PROTECT, related_name="annotator")
    status = models.CharField(
        max_length=16, choices=AnnotatorStatus.choices, default=AnnotatorStatus.ACTIVE
    )
    languages = models.JSONField(default=list, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    weekly_capacity_hours = models.PositiveSmallIntegerField(default=40)
    max_concurrent_tasks = models.PositiveSmallIntegerField(default=5)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AnnotatorStatus.values), name="annotator_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(weekly_capacity_hours__lte=168), name="annotator_capacity_le_week"
            ),
            models.CheckConstraint(
                condition=Q(max_concurrent_tasks__gte=1), name="annotator_concurrency_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.member.user.get_username()


class SkillSource(models.TextChoices):
    EXAM = "exam", "Exam"
    MANUAL = "manual", "Manual"
    RULE = "rule", "Quality rule"


class AnnotatorSkill(models.Model):
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="skills")
    skill = models.CharField(max_length=32, choices=Skill.choices)
    level = models.PositiveSmallIntegerField()
    source = models.CharField(max_length=16, choices=SkillSource.choices)
    set_at = models.DateTimeField(default=timezone.now)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["annotator_id", "skill"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "skill"], name="skill_unique_per_annotator"
            ),
            models.CheckConstraint(
                condition=Q(level__gte=0) & Q(level__lte=MAX_SKILL_LEVEL), name="skill_level_0_5"
            ),
            models.CheckConstraint(condition=Q(skill__in=Skill.values), name="skill_known"),
        ]
        indexes = [models.Index(fields=["skill", "level"], name="skill_level_idx")]

    def __str__(self) -> str:
        return f"{self.skill}={self.level}"


class Domain(TimeStamped):
    """A subject area an annotator can be certified in, such as ``medical-imaging``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="domains")
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["organization_id", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="domain_unique_slug"),
        ]

    def __str__(self) -> str:
        return self.slug


class CertificationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class CertificationState(models.Func):
    """A certification's status as it stands at a moment, expiry counted.

    ``workforce_certification_state`` in ``certifications.sql`` is the one definition of a
    certification in force; the claim's qualification calls it too.
    """

    function = "workforce_certification_state"
    output_field = models.CharField()

    def __init__(self, at: datetime):
        super().__init__(
            models.F("status"),
            models.F("expires_at"),
            models.Value(at, output_field=models.DateTimeField()),
        )


class CertificationQuerySet(models.QuerySet):
    def with_state(self, at: datetime | None = None) -> "CertificationQuerySet":
        """Annotate ``state``: the status as it stands at ``at`` (now), expiry counted.

        The stored status lags expiry until the beat job records it; ``state`` never does.
        """
        return self.annotate(state=CertificationState(at or timezone.now()))

    def in_force(self, at: datetime | None = None) -> "CertificationQuerySet":
        """Keep certifications that let their holder work at ``at`` (now)."""
        return self.with_state(at).filter(state=CertificationStatus.ACTIVE)


class Certification(TimeStamped):
    """An annotator's right to work in a domain. One row per annotator and domain."""

    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="certifications"
    )
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="certifications")
    status = models.CharField(
        max_length=16, choices=CertificationStatus.choices, default=CertificationStatus.ACTIVE
    )
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence = models.TextField()

    objects = CertificationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "domain"], name="certification_unique_per_domain"
            ),
            models.CheckConstraint(
                condition=Q(status__in=CertificationStatus.values),
                name="certification_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("issued_at")),
                name="certification_expires_after_issue",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="certification_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id}:{self.domain_id}:{self.status}"


class AuditVerb(models.TextChoices):
    """What an audit event says happened: ``<noun>.<past participle>``.

    One tense throughout (``skill.set`` too: "set" is its own past participle). The database
    refuses a verb not listed here, and a test fails when one listed here is never written.
    """

    MEMBER_CREATED = "member.created"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    ANNOTATOR_UPDATED = "annotator.updated"
    ANNOTATOR_SUSPENDED = "annotator.suspended"
    ANNOTATOR_REINSTATED = "annotator.reinstated"
    ANNOTATOR_OFFBOARDED = "annotator.offboarded"
    SKILL_SET = "skill.set"
    DOMAIN_CREATED = "domain.created"
    DOMAIN_UPDATED = "domain.updated"
    DOMAIN_DELETED = "domain.deleted"
    CERTIFICATION_ISSUED = "certification.issued"
    CERTIFICATION_SUSPENDED = "certification.suspended"
    CERTIFICATION_REINSTATED = "certification.reinstated"
    CERTIFICATION_REVOKED = "certification.revoked"
    CERTIFICATION_RENEWED = "certification.renewed"
    CERTIFICATION_EXPIRED = "certification.expired"
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    PROJECT_MEMBER_ADDED = "project.member_added"
    PROJECT_MEMBER_REMOVED = "project.member_removed"
    PROJECT_ARCHIVED = "project.archived"
    PROJECT_UNARCHIVED = "project.unarchived"
    TASK_CANCELLED = "task.cancelled"
    TASK_DELETED = "task.deleted"
    PROJECT_TASKS_IMPORT_QUEUED = "project.tasks_import_queued"
    PROJECT_TASKS_IMPORTED = "project.tasks_imported"
    GOLD_SET = "gold.set"
    GOLD_RETIRED = "gold.retired"
    EXAM_CREATED = "exam.created"
    EXAM_UPDATED = "exam.updated"
    EXAM_PASSED = "exam.passed"
    EXAM_FAILED = "exam.failed"
    QUALITY_RULE_CREATED = "quality_rule.created"
    QUALITY_RULE_UPDATED = "quality_rule.updated"
    QUALITY_RULE_DELETED = "quality_rule.deleted"
    QUALITY_ACTION_APPLIED = "quality_action.applied"
    QUALITY_ACTION_REVERTED = "quality_action.reverted"
    REVIEW_POLICY_UPDATED = "review_policy.updated"


class AuditEvent(models.Model):
    """One append-only line of who changed what about a person, when and why.

    ``actor`` is null for the system (beat jobs, quality rules). Rows are never updated or
    deleted: the model refuses it and, on PostgreSQL, so does a trigger.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verb = models.CharField(max_length=64, choices=AuditVerb.choices)
    target_type = models.CharField(max_length=64)
    target_id = models.BigIntegerField()
    target_repr = models.CharField(max_length=200)
    annotator = models.ForeignKey(
        Annotator, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-at"], name="audit_org_at_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(verb__in=AuditVerb.values), name="audit_verb_known"),
        ]

    def __str__(self) -> str:
        return f"{self.verb} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


class PendingJob(models.Model):
    """A job the broker refused, kept until ``workforce.requeue_pending_jobs`` sends it again.

    Written by ``workforce.queue.enqueue`` when publishing fails, so that a broker outage delays
    derived work and loses none. A job's arguments are ids, so one row per job and arguments is
    enough: any run that starts after the refusal reads the same rows.
    """

    name = models.CharField(max_length=200)  # the job's registered name, e.g. tasks.run_import
    args = models.JSONField(default=list)
    error = models.TextField(blank=True)  # why the broker refused it last
    attempts = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "args"], name="pending_job_once"),
        ]
        indexes = [models.Index(fields=["next_attempt_at"], name="pending_job_due_idx")]

    def __str__(self) -> str:
        return f"{self.name}{tuple(self.args)}"
