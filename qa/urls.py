"""The qa app's REST routes under ``/api/v1/``."""

from django.urls import re_path

from . import api

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    re_path(r"^live/ticket/?$", api.LiveTicketApi.as_view(), name="live-ticket"),
    re_path(r"^exams/?$", api.ExamListApi.as_view(), name="exam-list"),
    re_path(r"^exams/(?P<pk>\d+)/?$", api.ExamDetailApi.as_view(), name="exam-detail"),
    re_path(
        r"^exams/(?P<pk>\d+)/attempts/?$",
        api.ExamAttemptListApi.as_view(),
        name="exam-attempt-list",
    ),
    re_path(r"^me/exams/?$", api.OwnExamListApi.as_view(), name="my-exams"),
    re_path(
        r"^me/exams/(?P<pk>\d+)/attempts/?$",
        api.OwnExamAttemptStartApi.as_view(),
        name="my-exam-attempt-start",
    ),
    re_path(
        r"^me/exam-attempts/(?P<pk>\d+)/?$",
        api.OwnExamAttemptDetailApi.as_view(),
        name="my-exam-attempt",
    ),
    re_path(
        r"^me/exam-attempts/(?P<pk>\d+)/claim/?$",
        api.OwnExamAttemptClaimApi.as_view(),
        name="my-exam-attempt-claim",
    ),
    re_path(
        r"^me/exam-answers/(?P<pk>\d+)/submit/?$",
        api.OwnExamAnswerSubmitApi.as_view(),
        name="my-exam-answer-submit",
    ),
]
