"""The tasks app's REST routes under ``/api/v1/``; the views are in ``tasks/api/``."""

from django.urls import re_path

from .api import import_export, projects, tasks, work

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    # An annotator's loop first: patterns are tried in order, and these are the hot ones.
    re_path(r"^claims/?$", work.ClaimApi.as_view(), name="claim"),
    re_path(r"^assignments/?$", work.AssignmentListApi.as_view(), name="assignment-list"),
    re_path(
        r"^assignments/(?P<pk>\d+)/?$",
        work.AssignmentDetailApi.as_view(),
        name="assignment-detail",
    ),
    re_path(
        r"^assignments/(?P<pk>\d+)/heartbeat/?$",
        work.AssignmentHeartbeatApi.as_view(),
        name="assignment-heartbeat",
    ),
    re_path(
        r"^assignments/(?P<pk>\d+)/release/?$",
        work.AssignmentReleaseApi.as_view(),
        name="assignment-release",
    ),
    re_path(
        r"^assignments/(?P<pk>\d+)/submit/?$",
        work.AssignmentSubmitApi.as_view(),
        name="assignment-submit",
    ),
    re_path(r"^annotations/?$", work.AnnotationListApi.as_view(), name="annotation-list"),
    re_path(
        r"^annotations/(?P<pk>\d+)/promote/?$",
        tasks.AnnotationPromoteApi.as_view(),
        name="annotation-promote",
    ),
    re_path(r"^projects/?$", projects.ProjectListApi.as_view(), name="project-list"),
    re_path(
        r"^projects/(?P<pk>\d+)/?$", projects.ProjectDetailApi.as_view(), name="project-detail"
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/members/?$",
        projects.ProjectMembersApi.as_view(),
        name="project-members",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/members/(?P<annotator_id>\d+)/?$",
        projects.ProjectMemberDetailApi.as_view(),
        name="project-member-detail",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/archive/?$",
        projects.ProjectArchiveApi.as_view(),
        name="project-archive",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/unarchive/?$",
        projects.ProjectUnarchiveApi.as_view(),
        name="project-unarchive",
    ),
    re_path(r"^projects/(?P<pk>\d+)/tasks/?$", tasks.TaskListApi.as_view(), name="task-list"),
    re_path(
        r"^projects/(?P<pk>\d+)/tasks/(?P<task_id>\d+)/?$",
        tasks.TaskDetailApi.as_view(),
        name="task-detail",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/tasks/(?P<task_id>\d+)/cancel/?$",
        tasks.TaskCancelApi.as_view(),
        name="task-cancel",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/staffing/?$",
        projects.ProjectStaffingApi.as_view(),
        name="project-staffing",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/tasks/import/?$",
        import_export.TaskImportApi.as_view(),
        name="project-import",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/imports/?$",
        import_export.TaskImportListApi.as_view(),
        name="project-import-list",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/imports/(?P<import_id>\d+)/?$",
        import_export.TaskImportDetailApi.as_view(),
        name="project-import-detail",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/export/?$",
        import_export.ProjectExportApi.as_view(),
        name="project-export",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/tasks/(?P<task_id>\d+)/gold/?$",
        tasks.TaskGoldApi.as_view(),
        name="task-gold",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/tasks/(?P<task_id>\d+)/gold/retire/?$",
        tasks.TaskGoldRetireApi.as_view(),
        name="task-gold-retire",
    ),
]
