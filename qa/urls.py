"""The qa app's REST routes under ``/api/v1/``."""

from django.urls import re_path

from . import api

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    re_path(r"^live/ticket/?$", api.LiveTicketApi.as_view(), name="live-ticket"),
]
