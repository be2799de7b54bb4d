"""The admin reads projects and their work; it writes nothing the services must write.

Project settings and members are audited by the services; a task's priority is copied to its
slots (which the claim reads), and slots, assignments and annotations keep invariant 1 only
through the claim. Every page here is read-only, for superusers too.
"""

from django.contrib import admin

from workforce.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import (
    Annotation,
    AnnotationVersion,
    Assignment,
    Project,
    ProjectMember,
    Slot,
    Task,
    TaskImport,
)


class ProjectMemberInline(ReadOnlyInline):
    model = ProjectMember
    fields = ["annotator", "role", "is_active", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("annotator__member__user")


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "kind", "status", "overlap", "priority", "deadline"]
    list_filter = ["status", "kind", "organization"]
    search_fields = ["name", "client"]
    list_select_related = ["organization"]
    inlines = [ProjectMemberInline]


@admin.register(ProjectMember)
class ProjectMemberAdmin(ReadOnlyAdmin):
    list_display = ["project", "annotator", "role", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["project__name", "annotator__member__user__username"]
    list_select_related = ["project", "annotator__member__user"]


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["external_id", "project", "priority", "is_gold", "created_at", "completed_at"]
    list_filter = ["is_gold", "project"]
    search_fields = ["external_id"]
    list_select_related = ["project"]


@admin.register(Slot)
class SlotAdmin(ReadOnlyAdmin):
    list_display = ["task", "seat", "state", "task_priority", "assignment", "lease_expires_at"]
    list_filter = ["state"]
    search_fields = ["task__external_id"]
    list_select_related = ["task", "assignment"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "annotator", "status", "leased_at", "lease_expires_at"]
    list_filter = ["status"]
    search_fields = ["task__external_id", "annotator__member__user__username"]
    list_select_related = ["task", "annotator__member__user"]


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "annotator", "version", "submitted_at", "duration_seconds"]
    search_fields = ["task__external_id", "annotator__member__user__username"]
    list_select_related = ["task", "annotator__member__user"]


@admin.register(AnnotationVersion)
class AnnotationVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "annotation", "version", "submitted_at"]
    list_select_related = ["annotation"]


@admin.register(TaskImport)
class TaskImportAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "status", "format", "on_error", "rows_read", "created_at"]
    list_filter = ["status"]
    list_select_related = ["project"]
