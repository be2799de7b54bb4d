"""The qa app's REST routes under ``/api/v1/``."""

from django.urls import re_path

from . import agreement_api, api, review_api, rules_api, stats_api, verdict_api

# Action routes accept an optional trailing slash: POST cannot follow an APPEND_SLASH redirect.
urlpatterns = [
    # A reviewer's loop first: patterns are tried in order, and these are the hot ones.
    re_path(r"^reviews/?$", review_api.ReviewListApi.as_view(), name="review-list"),
    re_path(r"^reviews/claim/?$", review_api.ReviewClaimApi.as_view(), name="review-claim"),
    re_path(
        r"^reviews/(?P<pk>\d+)/verdict/?$",
        verdict_api.ReviewVerdictApi.as_view(),
        name="review-verdict",
    ),
    re_path(
        r"^reviews/(?P<pk>\d+)/heartbeat/?$",
        review_api.ReviewHeartbeatApi.as_view(),
        name="review-heartbeat",
    ),
    re_path(
        r"^reviews/(?P<pk>\d+)/release/?$",
        review_api.ReviewReleaseApi.as_view(),
        name="review-release",
    ),
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
        r"^projects/(?P<pk>\d+)/agreement/?$",
        agreement_api.ProjectAgreementApi.as_view(),
        name="project-agreement",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/consensus/dawid-skene/?$",
        agreement_api.ProjectDawidSkeneApi.as_view(),
        name="project-dawid-skene",
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/accuracy/?$",
        api.AnnotatorAccuracyApi.as_view(),
        name="annotator-accuracy",
    ),
    re_path(r"^me/accuracy/?$", api.MyAccuracyApi.as_view(), name="my-accuracy"),
    re_path(
        r"^projects/(?P<pk>\d+)/stats/?$", stats_api.ProjectStatsApi.as_view(), name="project-stats"
    ),
    re_path(r"^stats/projects/?$", stats_api.ProjectsStatsApi.as_view(), name="projects-stats"),
    re_path(
        r"^annotators/(?P<pk>\d+)/stats/?$",
        stats_api.AnnotatorStatsApi.as_view(),
        name="annotator-stats",
    ),
    re_path(r"^me/stats/?$", stats_api.MyStatsApi.as_view(), name="my-stats"),
    re_path(
        r"^projects/(?P<pk>\d+)/annotators/(?P<annotator_id>\d+)/errors/?$",
        stats_api.AnnotatorErrorsApi.as_view(),
        name="project-annotator-errors",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/annotators/(?P<annotator_id>\d+)/gold-scores/?$",
        stats_api.AnnotatorGoldScoresApi.as_view(),
        name="project-annotator-gold-scores",
    ),
    re_path(r"^me/reviews/?$", verdict_api.OwnReviewListApi.as_view(), name="my-reviews"),
    re_path(r"^quality-rules/?$", rules_api.QualityRuleListApi.as_view(), name="quality-rules"),
    re_path(
        r"^quality-rules/(?P<pk>\d+)/?$",
        rules_api.QualityRuleDetailApi.as_view(),
        name="quality-rule-detail",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/quality-actions/?$",
        rules_api.ProjectQualityActionListApi.as_view(),
        name="project-quality-actions",
    ),
    re_path(
        r"^annotators/(?P<pk>\d+)/quality-actions/?$",
        rules_api.AnnotatorQualityActionListApi.as_view(),
        name="annotator-quality-actions",
    ),
    re_path(
        r"^quality-actions/(?P<pk>\d+)/undo/?$",
        rules_api.QualityActionUndoApi.as_view(),
        name="quality-action-undo",
    ),
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
    # Review policy, the review queue and what QA leads watch of it (qa.review_api).
    re_path(
        r"^projects/(?P<pk>\d+)/review-policy/?$",
        review_api.ReviewPolicyApi.as_view(),
        name="project-review-policy",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/review-staffing/?$",
        review_api.ProjectReviewStaffingApi.as_view(),
        name="project-review-staffing",
    ),
    re_path(
        r"^projects/(?P<pk>\d+)/review-queues/?$",
        review_api.ProjectReviewQueuesApi.as_view(),
        name="project-review-queues",
    ),
    re_path(
        r"^annotations/(?P<pk>\d+)/reviews/?$",
        review_api.AnnotationReviewsApi.as_view(),
        name="annotation-reviews",
    ),
]
