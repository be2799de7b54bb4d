"""Projects, their members, tasks, the slots that hold a task's overlap, assignments, annotations.

A task with overlap N has N **slots**. Each slot is held by at most one assignment at a time, so
no task can ever be held by more annotators than its overlap; ``Assignment`` is unique per task
and annotator, so nobody gets the same task twice. Slot ``seat`` k > 0 opens only once seat k-1 is
taken, which lets claims prefer tasks others already started by ordering on ``seat`` descending.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from workforce.models import MAX_SKILL_LEVEL, Annotator, Domain, Organization, Skill, TimeStamped

MAX_OVERLAP = 10


class ProjectStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    # Read-only: nobody claims its tasks, its settings stay as they are; it still exports.
    ARCHIVED = "archived", "Archived"


# What a project's settings may say of its status: archiving has an operation of its own
# (``project_archive``), which ends live leases.
SETTABLE_PROJECT_STATUSES = [c for c in ProjectStatus.choices if c[0] != ProjectStatus.ARCHIVED]


class Project(TimeStamped):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    client = models.CharField(max_length=200, blank=True)
    instructions = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    kind = models.CharField(max_length=32, choices=Skill.choices)
    label_schema = models.JSONField(default=dict)
    required_skill_level = models.PositiveSmallIntegerField(default=0)
    required_domains = models.ManyToManyField(Domain, blank=True, related_name="projects")
    overlap = models.PositiveSmallIntegerField(default=1)
    # The overlap every task has its seats for: behind ``overlap`` from a raise until the job
    # ``tasks.add_overlap_seats`` has given every task its new seats (the beat job
    # ``tasks.catch_up_overlap_seats`` finishes what a failed or lost run left).
    seated_overlap = models.PositiveSmallIntegerField(default=1)
    # Gold is on when ``gold_rate`` is above 0: a claim is gold with that probability, or with
    # ``newcomer_gold_rate`` (when higher) until the annotator has submitted
    # ``newcomer_gold_tasks`` gold tasks in the project (``tasks/services/claims.sql``).
    gold_rate = models.FloatField(default=0.0)
    newcomer_gold_rate = models.FloatField(default=0.5)
    newcomer_gold_tasks = models.PositiveSmallIntegerField(default=5)
    # A gold task seen by more than this share of the project's annotators is ``overexposed``.
    gold_max_exposure = models.FloatField(default=0.5)
    # Adaptive review (``qa.reviews``): an annotator's sampling rate at a review layer falls
    # from the layer's base rate, while the lower bound of their accuracy is at most 0.5, to its
    # floor once the lower bound reaches this target.
    accuracy_target = models.FloatField(default=0.9)
    # Dynamic overlap (``qa.agreement``): a task whose agreement comes out under this threshold
    # gets one more seat, up to ``overlap_max`` seats. 0 turns it off; so does an ``overlap_max``
    # no higher than ``overlap``.
    agreement_threshold = models.FloatField(default=0.0)
    overlap_max = models.PositiveSmallIntegerField(default=1)
    lease_seconds = models.PositiveIntegerField(default=1800)
    max_concurrent_tasks = models.PositiveSmallIntegerField(default=5)
    priority = models.SmallIntegerField(default=0)
    deadline = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=ProjectStatus.choices, default=ProjectStatus.DRAFT
    )

    class Meta:
        ordering = ["-priority", F("deadline").asc(nulls_last=True), "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(overlap__gte=1) & Q(overlap__lte=MAX_OVERLAP), name="project_overlap"
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate"
            ),
            models.CheckConstraint(
                condition=Q(newcomer_gold_rate__gte=0) & Q(newcomer_gold_rate__lte=1),
                name="project_newcomer_gold_rate",
            ),
            models.CheckConstraint(
                condition=Q(gold_max_exposure__gt=0) & Q(gold_max_exposure__lte=1),
                name="project_gold_max_exposure",
            ),
            models.CheckConstraint(
                condition=Q(accuracy_target__gte=0.5) & Q(accuracy_target__lte=1),
                name="project_accuracy_target",
            ),
            models.CheckConstraint(
                condition=Q(agreement_threshold__gte=0) & Q(agreement_threshold__lte=1),
                name="project_agreement_threshold",
            ),
            models.CheckConstraint(
                condition=Q(overlap_max__gte=1) & Q(overlap_max__lte=MAX_OVERLAP),
                name="project_overlap_max",
            ),
            models.CheckConstraint(
                condition=Q(required_skill_level__lte=MAX_SKILL_LEVEL), name="project_skill_level"
            ),
            models.CheckConstraint(condition=Q(lease_seconds__gte=60), name="project_lease"),
            models.CheckConstraint(
                condition=Q(max_concurrent_tasks__gte=1), name="project_concurrency"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ProjectStatus.values), name="project_status"
            ),
            models.CheckConstraint(condition=Q(kind__in=Skill.values), name="project_kind"),
        ]

    def __str__(self) -> str:
        return self.name


class ProjectRole(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"


class ProjectMember(TimeStamped):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="projects")
    role = models.CharField(
        max_length=16, choices=ProjectRole.choices, default=ProjectRole.ANNOTATOR
    )
    is_active = models.BooleanField(default=True)
    # Gold tasks this annotator submitted in the project: a newcomer until the project's
    # ``newcomer_gold_tasks``. Counted by the submit; read by the claim.
    gold_submitted = models.PositiveIntegerField(default=0)
    # A gold rate raised for this annotator (by a quality rule); the claim takes the higher of
    # it and the project's.
    gold_rate = models.FloatField(null=True, blank=True)
    # A review sampling rate raised for this annotator (by a quality rule); every layer samples
    # them at least at this rate.
    review_rate = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="project_member_unique"),
        ]
        indexes = [models.Index(fields=["annotator", "is_active"], name="project_member_annot_idx")]

    def __str__(self) -> str:
        return f"{self.annotator_id}@{self.project_id} ({self.role})"


class Task(models.Model):
    """One item to annotate. ``gold_answer`` and ``is_gold`` never reach an annotator.

    A gold task has no seats: it is served to many annotators, each at most once, at the
    project's gold rate, and counts toward no progress, completion or export. Its assignments
    hold no slot. ``gold_version`` counts its answers (a correction rescores past work);
    ``gold_source`` is the annotation it was promoted from, whose author is not scored on it.
    """

    # Indexed through the (project, external_id) unique constraint.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="tasks", db_index=False
    )
    external_id = models.CharField(max_length=200)
    data = models.JSONField()
    priority = models.SmallIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(null=True, blank=True)
    gold_version = models.PositiveIntegerField(default=0)
    gold_retired_at = models.DateTimeField(null=True, blank=True)
    # An id, not a foreign key: a constraint (and its index) would cost every import.
    gold_source = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Set by ``task_cancel``: its seats nobody had submitted are closed; submitted work stays.
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="task_external_id"),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_answer__isnull=False), name="task_gold_answer"
            ),
        ]
        indexes = [
            # A project's gold tasks: the claim's pool (retired ones are few, and filtered).
            models.Index(fields=["project", "id"], name="task_gold_idx", condition=Q(is_gold=True)),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.external_id}"


class TaskStatus(models.TextChoices):
    """Where a task stands, as staff read it; derived from its seats, never stored.

    ``tasks.selectors.with_task_status`` is its one definition.
    """

    OPEN = "open", "Nobody has taken a seat yet"
    IN_PROGRESS = "in_progress", "A seat is leased or submitted, and seats remain"
    COMPLETE = "complete", "Every seat is submitted"
    CANCELLED = "cancelled", "Cancelled; submitted work is kept"


class SlotState(models.TextChoices):
    WAITING = "waiting", "Waiting for the previous seat"
    OPEN = "open", "Open"
    LEASED = "leased", "Leased"
    DONE = "done", "Done"
    # Its task was cancelled before anyone submitted this seat; it never opens again.
    CLOSED = "closed", "Closed"


class Slot(models.Model):
    """One of a task's ``overlap`` places, held by at most one assignment at a time.

    Project and task priority are copied here so that the claim is one index scan.
    """

    # Indexed through the (task, seat) unique constraint.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="slots", db_index=False)
    # A copy of the task's project, written only with it (the import, ``project_seats_add``), as
    # the assignment's is. Looked up through the partial claim indexes; a full index would only
    # slow imports. No database constraint either: the task's own keys already hold a slot to an
    # existing project, and checking it again took 18 % of the import statement's time (about
    # a tenth of bench/import.py's database time for a million rows).
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    seat = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=8, choices=SlotState.choices)
    task_priority = models.SmallIntegerField(default=0)
    # The current holder. Reached from the assignment's own ``slot_id``, so no index is kept:
    # each claim and submit would otherwise maintain one more. Only the claim writes it, with
    # the assignment it has just inserted, so no database constraint checks it at every commit.
    assignment = models.ForeignKey(
        "Assignment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task_id", "seat"]
        constraints = [
            models.UniqueConstraint(fields=["task", "seat"], name="slot_unique_seat"),
            models.CheckConstraint(condition=Q(state__in=SlotState.values), name="slot_state"),
            models.CheckConstraint(
                condition=~Q(state=SlotState.LEASED)
                | (Q(assignment__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="slot_leased_has_holder",
            ),
        ]
        indexes = [
            # The claim scans this: open slots of one project in claim order. Without a
            # partial index a claim at a million tasks is two orders of magnitude slower.
            models.Index(
                "project",
                F("seat").desc(),
                F("task_priority").desc(),
                "task",
                name="slot_open_claim_idx",
                condition=Q(state=SlotState.OPEN),
            ),
            # Leases that lapsed are claimable again without any sweeper.
            models.Index(
                fields=["project", "lease_expires_at"],
                name="slot_leased_idx",
                condition=Q(state=SlotState.LEASED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id}#{self.seat} {self.state}"


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"
    # The lease was withdrawn: the annotator lost access (suspended, offboarded, left the project
    # or the organization, no longer an annotator; ``tasks/services/access.sql``), or the task
    # was cancelled or its project archived. Its holder may not heartbeat or submit it again.
    REVOKED = "revoked", "Revoked: access ended"


class Assignment(models.Model):
    """One annotator holding one task's slot under a lease.

    The slot is the truth about who holds it: a lapsed lease stays ``active`` here until the
    beat job records it as ``expired``, and its holder may still submit while nobody else has
    taken the slot.
    """

    # Indexed through the (task, annotator) unique constraint.
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    # Only the claim writes ``slot`` and ``project``: the slot it holds locked and that slot's
    # project (a copy of the task's). Database constraints would re-check both at every claim's
    # commit, and every concurrent claim in a project would share a lock on the project's row.
    # Never looked up by slot (the slot names its holder); an index would only slow claims.
    # None for a gold task's assignment: gold has no seats, and nobody else can take it over.
    slot = models.ForeignKey(
        Slot,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
        db_constraint=False,
    )
    # Indexed through assignment_project_idx.
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
        db_constraint=False,
    )
    # Indexed through assignment_annotator_idx.
    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE
    )
    leased_at = models.DateTimeField(default=timezone.now)
    lease_expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Invariant 1: nobody gets the same task twice.
            models.UniqueConstraint(fields=["task", "annotator"], name="assignment_once_per_task"),
            models.CheckConstraint(
                condition=Q(status__in=AssignmentStatus.values), name="assignment_status"
            ),
        ]
        indexes = [
            # Serves both an annotator's history and the count of their live leases that
            # every claim makes (the lease expiry is read from the index).
            models.Index(
                fields=["annotator", "status", "project", "lease_expires_at"],
                name="assignment_annotator_idx",
            ),
            # A project's assignments, by annotator. Every concurrent claim in a project inserts
            # here: led by the project alone, they would all write the same leaf page.
            models.Index(fields=["project", "annotator"], name="assignment_project_idx"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"


class Annotation(models.Model):
    """What an annotator submitted for an assignment.

    ``version`` counts the annotation's versions: 1 as submitted, one more for each reviewer's
    correction and each resubmission after a rejection. ``payload`` is always the annotator's
    own latest work, version ``payload_version``: a correction is kept on its review (it is the
    next version's content), so that agreement and accuracy still measure annotators. A
    resubmission replaces ``payload``, keeping the earlier one as an ``AnnotationVersion``; the
    times (``active_seconds``, ``duration_seconds``) then add up the annotator's work on it.
    """

    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="annotation"
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="annotations")
    # Indexed through annotation_project_idx and annotation_annotator_idx, which lead with them.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    payload = models.JSONField()
    version = models.PositiveIntegerField(default=1)
    payload_version = models.PositiveIntegerField(default=1)
    active_seconds = models.PositiveIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField()
    submitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["project", "-submitted_at"], name="annotation_project_idx"),
            models.Index(fields=["annotator", "-submitted_at"], name="annotation_annotator_idx"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} of task {self.task_id}"


class AnnotationVersion(models.Model):
    """An annotator's earlier payload of an annotation sent back for rework, as submitted.

    Written when the rework comes in (``annotation_resubmit``), never at a first submission:
    most annotations are never reworked, and the submit is the hot path.
    """

    # Indexed through the (annotation, version) unique constraint.
    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="earlier_versions", db_index=False
    )
    version = models.PositiveIntegerField()
    payload = models.JSONField()
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["annotation_id", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "version"], name="annotation_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"annotation {self.annotation_id} v{self.version}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TaskImport(models.Model):
    """A file of tasks imported by a background job; the file is deleted once the job is done.

    ``on_error`` and the report mean what they mean for ``tasks_import``. A job delivered again
    (after a worker stopped halfway) imports the same file again, which creates only what the
    first run did not. In ``skip`` mode batches commit one by one, so a job that failed on an
    error of the database may have imported part of its file: ``error`` says why, and uploading
    the same file again imports the rest; an ``abort`` import writes all of its file or nothing.

    ``heartbeat_at`` is kept fresh while a run is alive; ``attempts`` counts the runs started
    (``tasks.services.imports`` says how a stalled import is queued again, and when it fails).
    ``rows_read`` only ever grows.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=300)
    format = models.CharField(max_length=8)
    on_error = models.CharField(max_length=8)
    status = models.CharField(
        max_length=8, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    rows_read = models.PositiveIntegerField(default=0)
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The job was queued before the upload's check ended, and reads the checked file as the
    # check writes it, up to the line that says how the check ended (``tasks.services.imports``).
    streamed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} of project {self.project_id} ({self.status})"


@receiver(post_delete, sender=TaskImport)
def _remove_import_file(sender, instance: TaskImport, **kwargs) -> None:
    """An import deleted before its job ran (with its project, say) takes its file with it."""
    if instance.file:
        instance.file.delete(save=False)
