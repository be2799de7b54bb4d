from django.contrib import admin

from .models import (
    Annotator,
    AnnotatorSkill,
    AuditEvent,
    Certification,
    Domain,
    Member,
    Organization,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through the services, which keep the invariants and audit."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "is_active"]
    list_filter = ["role", "is_active", "organization"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "organization"]
    raw_id_fields = ["user"]


class AnnotatorSkillInline(admin.TabularInline):
    model = AnnotatorSkill
    extra = 0
    # Skill levels change through the API so that every change is audited.
    readonly_fields = ["skill", "level", "source", "set_at", "set_by"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Annotator)
class AnnotatorAdmin(admin.ModelAdmin):
    list_display = ["member", "status", "timezone", "weekly_capacity_hours", "max_concurrent_tasks"]
    list_filter = ["status"]
    search_fields = ["member__user__username"]
    list_select_related = ["member__user", "member__organization"]
    # Status is a qualification change: it goes through the audited services, not the admin.
    readonly_fields = ["status"]
    inlines = [AnnotatorSkillInline]


@admin.register(AnnotatorSkill)
class AnnotatorSkillAdmin(admin.ModelAdmin):
    list_display = ["annotator", "skill", "level", "source", "set_at"]
    list_filter = ["skill", "level", "source"]
    list_select_related = ["annotator__member__user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "organization"]
    list_filter = ["organization"]
    search_fields = ["slug", "name"]


@admin.register(Certification)
class CertificationAdmin(admin.ModelAdmin):
    list_display = ["annotator", "domain", "status", "issued_at", "expires_at"]
    list_filter = ["status", "domain"]
    list_select_related = ["annotator__member__user", "domain"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is append-only, for superusers too."""

    list_display = ["at", "organization", "actor", "verb", "target_repr", "reason"]
    list_filter = ["verb", "target_type", "organization"]
    search_fields = ["verb", "target_repr", "reason"]
    list_select_related = ["organization", "actor"]
    date_hierarchy = "at"
