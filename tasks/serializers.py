"""Output shapes of projects, assignments and annotations.

What an annotator receives never carries a task's external id, gold flag or gold answer.
"""

from rest_framework import serializers

from .models import Annotation, Assignment, Project, ProjectMember, TaskImport


class ProjectOut(serializers.ModelSerializer):
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


class AnnotatorProjectOut(ProjectOut):
    """A project as its annotators see it: nothing about how their work is checked."""

    class Meta(ProjectOut.Meta):
        fields = [f for f in ProjectOut.Meta.fields if f not in ("gold_rate", "client")]


class ProjectMemberOut(serializers.ModelSerializer):
    username = serializers.CharField(source="annotator.member.user.username")

    class Meta:
        model = ProjectMember
        fields = ["id", "annotator", "username", "role", "is_active", "created_at"]


class ClaimedProjectOut(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "kind", "instructions", "label_schema"]


class AssignmentOut(serializers.ModelSerializer):
    """An assignment as its annotator sees it: the task's data and nothing about gold."""

    task = serializers.SerializerMethodField()
    project = ClaimedProjectOut()
    annotator = serializers.IntegerField(source="annotator_id")

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
        ]

    def get_task(self, obj) -> dict:
        return {"id": obj.task_id, "data": obj.task.data}


class AnnotationOut(serializers.ModelSerializer):
    annotator_username = serializers.CharField(source="annotator.member.user.username")

    class Meta:
        model = Annotation
        fields = [
            "id",
            "assignment",
            "task",
            "project",
            "annotator",
            "annotator_username",
            "payload",
            "version",
            "active_seconds",
            "duration_seconds",
            "submitted_at",
        ]


class ClaimOut(serializers.Serializer):
    """A fresh claim, shaped like ``AssignmentOut`` so clients handle both alike."""

    id = serializers.IntegerField(source="assignment_id")
    status = serializers.SerializerMethodField()
    leased_at = serializers.DateTimeField()
    lease_expires_at = serializers.DateTimeField()
    task = serializers.SerializerMethodField()
    project = serializers.SerializerMethodField()

    def get_status(self, obj) -> str:
        return "active"

    def get_task(self, obj) -> dict:
        return {"id": obj.task_id, "data": obj.data}

    def get_project(self, obj) -> dict:
        return {
            "id": obj.project_id,
            "name": obj.project_name,
            "kind": obj.kind,
            "instructions": obj.instructions,
            "label_schema": obj.label_schema,
        }


class TaskImportOut(serializers.ModelSerializer):
    """A background import: ``rows_read`` moves while it runs; ``report`` is set once it is done.

    ``heartbeat_at`` is fresh while a run is alive; ``attempts`` counts runs started (an import
    whose worker died runs again, a few times at most).
    """

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

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
