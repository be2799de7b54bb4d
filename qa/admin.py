"""The admin reads the live-event outbox; only the relay's readers and the prune job use it."""

from django.contrib import admin

from workforce.admin import ReadOnlyAdmin

from .models import LiveEvent


@admin.register(LiveEvent)
class LiveEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "organization_id", "member_id", "staff", "created_at"]
    list_filter = ["type"]
