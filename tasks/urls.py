from django.urls import re_path

from . import api

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    re_path(r"^projects/?$", api.ProjectListApi.as_view(), name="project-list"),
    re_path(r"^projects/(?P<pk>\d+)/?$", api.ProjectDetailApi.as_view(), name="project-detail"),
    re_path(
        r"^projects/(?P<pk>\d+)/members/?$",
        api.ProjectMembersApi.as_view(),
        name="project-members",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/staffing/?$",
        api.ProjectStaffingApi.as_view(),
        name="project-staffing",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/tasks/import/?$",
        api.TaskImportApi.as_view(),
        name="project-import",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/imports/?$",
        api.TaskImportListApi.as_view(),
        name="project-import-list",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/imports/(?P<import_id>\d+)/?$",
        api.TaskImportDetailApi.as_view(),
        name="project-import-detail",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/export/?$", api.ProjectExportApi.as_view(), name="project-export"
    ),
    re_path(r"^claims/?$", api.ClaimApi.as_view(), name="claim"),
    re_path(r"^assignments/?$", api.AssignmentListApi.as_view(), name="assignment-list"),
    re_path(
        r"^assignments/(?P<pk>\d+)/?$",
        api.AssignmentDetailApi.as_view(),
        name="assignment-detail",
    ),
    re_path(
        r"^assignments/(?P<pk>\d+)/heartbeat/?$",
        api.AssignmentHeartbeatApi.as_view(),
        name="assignment-heartbeat",
    ),
    re_path(
        r"^assignments/(?P<pk>\d+)/release/?$",
        api.AssignmentReleaseApi.as_view(),
        name="assignment-release",
    ),
    re_path(
        r"^assignments/(?P<pk>\d+)/submit/?$",
        api.AssignmentSubmitApi.as_view(),
        name="assignment-submit",
    ),
    re_path(r"^annotations/?$", api.AnnotationListApi.as_view(), name="annotation-list"),
]
