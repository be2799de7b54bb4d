"""The admin reads the workforce registry; it writes nothing the services audit.

Members' roles and status, annotator profiles, skills, domains, certifications and the audit log
change only through the services, which validate, lock and audit each change (DESIGN.md,
invariant 5). Their pages here are read-only, for superusers too.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .models import (
    Annotator,
    AnnotatorSkill,
    AuditEvent,
    Certification,
    Domain,
    Invitation,
    Member,
    Organization,
    PendingJob,
)

admin.site.site_header = "Assay administration"
admin.site.site_title = "Assay"
admin.site.index_title = "Records (read-only where the services audit)"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through the services, which keep the invariants and audit."""

    # Tables that grow large: no COUNT(*) of the whole table under every filtered list.
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        opts = self.model._meta
        return [field.name for field in [*opts.concrete_fields, *opts.many_to_many]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Related rows shown on a read-only page, as read-only as the page."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return list(self.fields)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Accounts stay editable (names, passwords, staff flags); a role lives on ``Member``.

    Deleting a user would delete their memberships with them, unaudited: deactivate instead.
    """

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """The tenant's name and slug: nothing is audited or copied from them, so they are editable.

    Deleting one would take its members, projects and audit log with it: never from here.
    """

    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin):
    list_display = ["user", "organization", "role", "is_active", "created_at"]
    list_filter = ["role", "is_active", "organization"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["login", "organization", "role", "status", "expires_at"]
    list_filter = ["status", "role", "organization"]
    search_fields = ["login"]
    list_select_related = ["organization"]


class AnnotatorSkillInline(ReadOnlyInline):
    model = AnnotatorSkill
    fields = ["skill", "level", "source", "set_at", "set_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("set_by")


class CertificationInline(ReadOnlyInline):
    model = Certification
    fields = ["domain", "status", "issued_at", "expires_at", "issued_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("domain", "issued_by")


@admin.register(Annotator)
class AnnotatorAdmin(ReadOnlyAdmin):
    list_display = ["member", "status", "timezone", "weekly_capacity_hours", "max_concurrent_tasks"]
    list_filter = ["status", "member__organization"]
    search_fields = ["member__user__username", "member__user__email"]
    list_select_related = ["member__user"]
    inlines = [AnnotatorSkillInline, CertificationInline]


@admin.register(AnnotatorSkill)
class AnnotatorSkillAdmin(ReadOnlyAdmin):
    list_display = ["annotator", "skill", "level", "source", "set_at", "set_by"]
    list_filter = ["skill", "level", "source"]
    search_fields = ["annotator__member__user__username"]
    list_select_related = ["annotator__member__user", "set_by"]


@admin.register(Domain)
class DomainAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "organization"]
    list_filter = ["organization"]
    search_fields = ["slug", "name"]
    list_select_related = ["organization"]


@admin.register(Certification)
class CertificationAdmin(ReadOnlyAdmin):
    list_display = ["annotator", "domain", "status", "issued_at", "expires_at", "issued_by"]
    list_filter = ["status", "domain"]
    search_fields = ["annotator__member__user__username", "domain__slug"]
    list_select_related = ["annotator__member__user", "domain", "issued_by"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit log is append-only, for superusers too."""

    list_display = ["at", "organization", "actor", "verb", "target_repr", "reason"]
    list_filter = ["verb", "target_type", "organization"]
    search_fields = ["verb", "target_repr", "reason"]
    list_select_related = ["organization", "actor"]
    date_hierarchy = "at"


@admin.register(PendingJob)
class PendingJobAdmin(ReadOnlyAdmin):
    """Jobs the broker refused: the requeue job sends them; deleting one would lose its work."""

    list_display = ["name", "args", "attempts", "next_attempt_at", "error", "created_at"]
    list_filter = ["name"]
    search_fields = ["name"]
