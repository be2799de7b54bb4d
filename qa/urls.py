"""The qa app's REST routes under ``/api/v1/``."""

from django.urls import re_path

from . import api

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    re_path(r"^live/ticket/?$", api.LiveTicketApi.as_view(), name="live-ticket"),
    re_path(
        r"^projects/(?P<pk>\d+)/accuracy/?$",
        api.ProjectAccuracyApi.as_view(),
        name="project-accuracy",
    ),
    re_path(r"^projects/(?P<pk>\d+)/gold/?$", api.ProjectGoldApi.as_view(), name="project-gold"),
    re_path(
        r"^projects/(?P<pk>\d+)/gold/pool/?$",
        api.ProjectGoldPoolApi.as_view(),
        name="project-gold-pool",
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/accuracy/?$",
        api.AnnotatorAccuracyApi.as_view(),
        name="annotator-accuracy",
    ),
    re_path(r"^me/accuracy/?$", api.MyAccuracyApi.as_view(), name="my-accuracy"),
]
