from django.urls import re_path

from . import api

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    re_path(r"^auth/token/?$", api.TokenCreateApi.as_view(), name="auth-token"),
    re_path(r"^me/?$", api.MeApi.as_view(), name="me"),
    re_path(r"^members/?$", api.MemberListApi.as_view(), name="member-list"),
    re_path(r"^members/(?P<pk>\d+)/?$", api.MemberDetailApi.as_view(), name="member-detail"),
    re_path(r"^invitations/?$", api.InvitationListApi.as_view(), name="invitation-list"),
    re_path(r"^me/invitations/?$", api.MyInvitationListApi.as_view(), name="my-invitations"),
    re_path(
        r"^me/invitations/(?P<pk>\d+)/accept/?$",
        api.InvitationAcceptApi.as_view(),
        name="invitation-accept",
    ),
    re_path(
        r"^me/invitations/(?P<pk>\d+)/decline/?$",
        api.InvitationDeclineApi.as_view(),
        name="invitation-decline",
    ),
    re_path(r"^skills/?$", api.SkillListApi.as_view(), name="skill-list"),
    re_path(r"^annotators/?$", api.AnnotatorListApi.as_view(), name="annotator-list"),
    re_path(
        r"^annotators/(?P<pk>\d+)/?$", api.AnnotatorDetailApi.as_view(), name="annotator-detail"
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/suspend/?$",
        api.AnnotatorSuspendApi.as_view(),
        name="annotator-suspend",
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/reinstate/?$",
        api.AnnotatorReinstateApi.as_view(),
        name="annotator-reinstate",
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/offboard/?$",
        api.AnnotatorOffboardApi.as_view(),
        name="annotator-offboard",
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/skills/(?P<skill>[a-z_]+)/?$",
        api.AnnotatorSkillApi.as_view(),
        name="annotator-skill",
    ),
    re_path(r"^domains/?$", api.DomainListApi.as_view(), name="domain-list"),
    re_path(r"^domains/(?P<pk>\d+)/?$", api.DomainDetailApi.as_view(), name="domain-detail"),
    re_path(r"^certifications/?$", api.CertificationListApi.as_view(), name="certification-list"),
    re_path(
        r"^certifications/(?P<pk>\d+)/?$",
        api.CertificationDetailApi.as_view(),
        name="certification-detail",
    ),
    re_path(
        r"^certifications/(?P<pk>\d+)/suspend/?$",
        api.CertificationSuspendApi.as_view(),
        name="certification-suspend",
    ),
    re_path(
        r"^certifications/(?P<pk>\d+)/reinstate/?$",
        api.CertificationReinstateApi.as_view(),
        name="certification-reinstate",
    ),
    re_path(
        r"^certifications/(?P<pk>\d+)/revoke/?$",
        api.CertificationRevokeApi.as_view(),
        name="certification-revoke",
    ),
    re_path(
        r"^certifications/(?P<pk>\d+)/renew/?$",
        api.CertificationRenewApi.as_view(),
        name="certification-renew",
    ),
    re_path(r"^audit-events/?$", api.AuditEventListApi.as_view(), name="audit-event-list"),
]
