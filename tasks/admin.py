from django.contrib import admin

from workforce.admin import ReadOnlyAdmin

from .models import Annotation, Assignment, Project, ProjectMember, Slot, Task, TaskImport


class ProjectMemberInline(admin.TabularInline):
    model = ProjectMember
    extra = 0
    raw_id_fields = ["annotator"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "kind", "status", "overlap", "priority", "deadline"]
    list_filter = ["status", "kind", "organization"]
    search_fields = ["name", "client"]
    filter_horizontal = ["required_domains"]
    inlines = [ProjectMemberInline]
    # Overlap and kind shape the stored slots; they change through the API's checks only.
    readonly_fields = ["kind", "overlap"]


@admin.register(ProjectMember)
class ProjectMemberAdmin(admin.ModelAdmin):
    list_display = ["project", "annotator", "role", "is_active"]
    list_filter = ["role", "is_active"]
    list_select_related = ["project", "annotator__member__user"]
    raw_id_fields = ["annotator", "project"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "priority", "is_gold", "created_at", "completed_at"]
    list_filter = ["is_gold", "project"]
    search_fields = ["external_id"]
    list_select_related = ["project"]
    raw_id_fields = ["project"]
    # Tables of millions of rows: no COUNT(*) for the paginator.
    show_full_result_count = False


# Claim state changes only through the claim services, which keep invariant 1.
@admin.register(Slot)
class SlotAdmin(ReadOnlyAdmin):
    list_display = ["task", "seat", "state", "assignment", "lease_expires_at"]
    list_filter = ["state"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "annotator", "status", "leased_at", "lease_expires_at"]
    list_filter = ["status"]
    list_select_related = ["task", "annotator__member__user"]


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "annotator", "version", "submitted_at", "duration_seconds"]
    list_select_related = ["task", "annotator__member__user"]


@admin.register(TaskImport)
class TaskImportAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "status", "format", "on_error", "rows_read", "created_at"]
    list_filter = ["status"]
    list_select_related = ["project"]
