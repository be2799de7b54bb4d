"""Output shapes of projects, assignments and annotations.

What an annotator receives never carries a task's external id, gold flag or gold answer.
"""

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from config.serializers import Direct, date_time_out

from .models import (
    Assignment,
    Project,
    ProjectMember,
    Slot,
    SlotState,
    Task,
    TaskImport,
    TaskStatus,
)
from .openapi import LabelSchemaField, PayloadField
from .selectors import assignment_rework_notes


class ProjectOut(serializers.ModelSerializer):
    label_schema = LabelSchemaField(read_only=True)
    required_domains = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "client",
            "instructions",
            "kind",
            "label_schema",
            "required_skill_level",
            "required_domains",
            "overlap",
            "gold_rate",
            "newcomer_gold_rate",
            "newcomer_gold_tasks",
            "gold_max_exposure",
            "accuracy_target",
            "agreement_threshold",
            "overlap_max",
            "lease_seconds",
            "max_concurrent_tasks",
            "priority",
            "deadline",
            "status",
            "created_at",
            "progress",
        ]

    def get_progress(self, obj) -> dict | None:
        return self.context.get("progress", {}).get(obj.pk)


# How a project checks its work (gold, review sampling, dynamic overlap): staff only.
CHECK_SETTINGS = {
    "gold_rate",
    "newcomer_gold_rate",
    "newcomer_gold_tasks",
    "gold_max_exposure",
    "accuracy_target",
    "agreement_threshold",
    "overlap_max",
}


class AnnotatorProjectOut(ProjectOut):
    """A project as its annotators see it: nothing about how their work is checked."""

    class Meta(ProjectOut.Meta):
        fields = [f for f in ProjectOut.Meta.fields if f not in CHECK_SETTINGS | {"client"}]


class ProjectMemberOut(serializers.ModelSerializer):
    username = serializers.CharField(source="annotator.member.user.username")

    class Meta:
        model = ProjectMember
        fields = ["id", "annotator", "username", "role", "is_active", "created_at"]


class AssignedTaskOut(serializers.Serializer):
    """A task as the annotator holding it sees it: its id and data, nothing about gold."""

    id = serializers.IntegerField()
    data = serializers.DictField(help_text="The item to annotate, as imported.")


class ClaimedProjectOut(serializers.ModelSerializer):
    label_schema = LabelSchemaField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "kind", "instructions", "label_schema"]


class ReworkTagOut(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()


class ReworkOut(serializers.Serializer):
    """Why submitted work is back with its annotator: the rejection, from the project's error
    taxonomy, and the layer that sent it (not the reviewer: verdicts are the layer's)."""

    review = serializers.IntegerField()
    layer = serializers.CharField(help_text="The name of the review layer that rejected it.")
    tags = ReworkTagOut(many=True)
    comment = serializers.CharField()
    rejected_at = serializers.DateTimeField()


class AssignmentOut(serializers.ModelSerializer):
    """An assignment as its annotator sees it: the task's data and nothing about gold.

    ``rework`` is the rejection behind an assignment back for rework, until it is resubmitted.
    A page of them is read at once (``context["rework"]``); a single one reads its own.
    """

    task = serializers.SerializerMethodField()
    project = ClaimedProjectOut()
    annotator = serializers.IntegerField(source="annotator_id")
    rework = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "id",
            "status",
            "annotator",
            "leased_at",
            "lease_expires_at",
            "ended_at",
            "task",
            "project",
            "rework",
        ]

    @extend_schema_field(AssignedTaskOut)
    def get_task(self, obj) -> dict:
        return {"id": obj.task_id, "data": obj.task.data}

    @extend_schema_field(ReworkOut(allow_null=True))
    def get_rework(self, obj) -> dict | None:
        notes = self.context.get("rework")
        if notes is None:
            notes = assignment_rework_notes([obj.pk])
        note = notes.get(obj.pk)
        return None if note is None else ReworkOut(note).data


# The largest a PositiveIntegerField holds, as the schema states it.
_POSITIVE_INT_MAX = 2147483647


# Every submit answers with one. Its fields are declared, not derived from the model as a
# ModelSerializer's are: that works them out from the model again for every instance, which cost
# the submit three times what serializing the annotation costs.
class AnnotationOut(Direct):
    """An annotation: ``payload`` is the annotator's own latest work, version
    ``payload_version``; ``version`` counts reviewers' corrections too, which the reviews keep."""

    id = serializers.IntegerField(read_only=True)
    assignment = serializers.IntegerField(source="assignment_id")
    task = serializers.IntegerField(source="task_id")
    project = serializers.IntegerField(source="project_id")
    annotator = serializers.IntegerField(source="annotator_id")
    annotator_username = serializers.CharField(source="annotator.member.user.username")
    payload = PayloadField(read_only=True)
    version = serializers.IntegerField(required=False, min_value=0, max_value=_POSITIVE_INT_MAX)
    payload_version = serializers.IntegerField(
        required=False, min_value=0, max_value=_POSITIVE_INT_MAX
    )
    active_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=_POSITIVE_INT_MAX
    )
    duration_seconds = serializers.FloatField()
    submitted_at = serializers.DateTimeField(required=False)

    def to_representation(self, instance):
        return {
            "id": instance.id,
            "assignment": instance.assignment_id,
            "task": instance.task_id,
            "project": instance.project_id,
            "annotator": instance.annotator_id,
            "annotator_username": instance.annotator.member.user.username,
            "payload": instance.payload,
            "version": instance.version,
            "payload_version": instance.payload_version,
            "active_seconds": instance.active_seconds,
            "duration_seconds": float(instance.duration_seconds),
            "submitted_at": date_time_out(instance.submitted_at),
        }


class ClaimOut(Direct):
    """A fresh claim, shaped like ``AssignmentOut`` so clients handle both alike."""

    id = serializers.IntegerField(source="assignment_id")
    status = serializers.SerializerMethodField()
    leased_at = serializers.DateTimeField()
    lease_expires_at = serializers.DateTimeField()
    task = serializers.SerializerMethodField()
    project = serializers.SerializerMethodField()

    def get_status(self, obj) -> str:
        return "active"

    @extend_schema_field(AssignedTaskOut)
    def get_task(self, obj) -> dict:
        return {"id": obj.task_id, "data": obj.data}

    @extend_schema_field(ClaimedProjectOut)
    def get_project(self, obj) -> dict:
        return {
            "id": obj.project_id,
            "name": obj.project_name,
            "kind": obj.kind,
            "instructions": obj.instructions,
            "label_schema": obj.label_schema,
        }

    def to_representation(self, instance):
        return {
            "id": instance.assignment_id,
            "status": self.get_status(instance),
            "leased_at": date_time_out(instance.leased_at),
            "lease_expires_at": date_time_out(instance.lease_expires_at),
            "task": self.get_task(instance),
            "project": self.get_project(instance),
        }


class TaskImportOut(serializers.ModelSerializer):
    """A background import: ``rows_read`` moves while it runs; ``report`` is set once it is done.

    ``heartbeat_at`` is fresh while a run is alive; ``attempts`` counts runs started (an import
    whose worker died runs again, a few times at most).
    """

    # None when the import was started outside the API (a command, a job).
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = TaskImport
        fields = [
            "id",
            "project",
            "status",
            "format",
            "on_error",
            "rows_read",
            "report",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "heartbeat_at",
            "attempts",
            "finished_at",
        ]


SeatCountsOut = inline_serializer(
    "SeatCounts", {state: serializers.IntegerField() for state in SlotState.values}
)


class TaskRowOut(serializers.ModelSerializer):
    """A task in the staff list: where it stands and how many seats are in each state.

    The seat counts come in the context (``seats``: task id -> counts), read once per page.
    """

    status = serializers.ChoiceField(choices=TaskStatus.choices)
    seats = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "external_id",
            "is_gold",
            "priority",
            "status",
            "seats",
            "created_at",
            "completed_at",
            "cancelled_at",
        ]

    @extend_schema_field(SeatCountsOut)
    def get_seats(self, obj: Task) -> dict[str, int]:
        return self.context["seats"][obj.pk]


class ReviewerTaskRowOut(TaskRowOut):
    """A task as a reviewer lists it: whether it is gold stays with managers and QA leads."""

    class Meta(TaskRowOut.Meta):
        fields = [f for f in TaskRowOut.Meta.fields if f != "is_gold"]


class SeatOut(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=SlotState.choices)
    assignment = serializers.IntegerField(source="assignment_id", allow_null=True)

    class Meta:
        model = Slot
        fields = ["seat", "state", "assignment", "lease_expires_at"]


class TaskWorkOut(serializers.ModelSerializer):
    """Who held the task, when, and what became of it (the annotation's id once submitted)."""

    annotator = serializers.IntegerField(source="annotator_id")
    username = serializers.CharField(source="annotator.member.user.username")
    # None until the work is submitted (DRF reads a missing annotation as None).
    annotation = serializers.IntegerField(source="annotation.pk", allow_null=True)
    submitted_at = serializers.DateTimeField(source="annotation.submitted_at", allow_null=True)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "annotator",
            "username",
            "status",
            "leased_at",
            "lease_expires_at",
            "ended_at",
            "annotation",
            "submitted_at",
        ]


class TaskDetailOut(TaskRowOut):
    """A task with its data, its seats and everyone who worked on it; no gold answer."""

    seats = SeatOut(source="slots", many=True)
    work = TaskWorkOut(source="assignments", many=True)

    class Meta(TaskRowOut.Meta):
        fields = [*TaskRowOut.Meta.fields, "data", "work"]


class ReviewerTaskDetailOut(TaskDetailOut):
    class Meta(TaskDetailOut.Meta):
        fields = [f for f in TaskDetailOut.Meta.fields if f != "is_gold"]


class QaLeadTaskDetailOut(TaskDetailOut):
    """A task as a QA lead reads it: with its gold answer, which only QA leads see."""

    class Meta(TaskDetailOut.Meta):
        fields = [*TaskDetailOut.Meta.fields, "gold_answer"]
