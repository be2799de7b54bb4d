"""The admin reads quality's tables; every change to them goes through the API's services (they
validate and audit), and the outbox is written only by the changes it tells about."""

from django.contrib import admin

from workforce.admin import ReadOnlyAdmin

from .models import (
    Accuracy,
    AgreementChanges,
    AgreementReport,
    AnnotatorHourStats,
    ErrorTag,
    Exam,
    ExamAnswer,
    ExamAttempt,
    ExamItem,
    GoldRescore,
    GoldScore,
    LiveEvent,
    QualityAction,
    QualityRule,
    QualityRuleState,
    Review,
    ReviewAccuracy,
    ReviewItem,
    ReviewLayer,
    StatsCursor,
    TaskAgreement,
    TaskConsensus,
)


@admin.register(LiveEvent)
class LiveEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "organization_id", "member_id", "staff", "created_at"]
    list_filter = ["type"]


@admin.register(GoldScore)
class GoldScoreAdmin(ReadOnlyAdmin):
    list_display = ["annotation_id", "task_id", "annotator_id", "score", "scored_at"]


@admin.register(GoldRescore)
class GoldRescoreAdmin(ReadOnlyAdmin):
    list_display = ["task_id", "version", "since"]


@admin.register(Accuracy)
class AccuracyAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "annotator_id", "scored", "score_sum", "updated_at"]


@admin.register(QualityRule)
class QualityRuleAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization_id", "project_id", "metric", "threshold", "action"]
    list_filter = ["metric", "action", "is_active"]


@admin.register(QualityRuleState)
class QualityRuleStateAdmin(ReadOnlyAdmin):
    list_display = ["rule_id", "annotator_id", "project_id"]


@admin.register(QualityAction)
class QualityActionAdmin(ReadOnlyAdmin):
    list_display = ["id", "rule_id", "annotator_id", "project_id", "effect", "undone_at"]


@admin.register(Exam)
class ExamAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization_id", "name", "kind", "domain_id", "is_active"]


@admin.register(ExamItem)
class ExamItemAdmin(ReadOnlyAdmin):
    list_display = ["id", "exam_id", "position"]


@admin.register(ExamAttempt)
class ExamAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "exam_id", "annotator_id", "status", "score", "started_at"]


@admin.register(ExamAnswer)
class ExamAnswerAdmin(ReadOnlyAdmin):
    list_display = ["id", "attempt_id", "item_id", "score", "submitted_at"]


@admin.register(ReviewLayer)
class ReviewLayerAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "position", "name", "sample_rate", "floor_rate", "role"]


@admin.register(ErrorTag)
class ErrorTagAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "code"]


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ["id", "annotation_id", "version", "layer_id", "sampled", "rate", "state"]
    list_filter = ["state", "basis"]


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["id", "annotation_id", "version", "layer_id", "reviewer_id", "verdict"]
    list_filter = ["verdict"]


@admin.register(ReviewAccuracy)
class ReviewAccuracyAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "annotator_id", "reviewed", "score_sum", "updated_at"]


@admin.register(TaskAgreement)
class TaskAgreementAdmin(ReadOnlyAdmin):
    list_display = ["task_id", "project_id", "annotations", "value", "seat_added", "computed_at"]


@admin.register(TaskConsensus)
class TaskConsensusAdmin(ReadOnlyAdmin):
    list_display = ["task_id", "project_id", "method", "confidence", "computed_at"]
    list_filter = ["method"]


@admin.register(AgreementReport)
class AgreementReportAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "name", "computed_at", "seconds"]


@admin.register(AnnotatorHourStats)
class AnnotatorHourStatsAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "annotator_id", "hour", "claimed", "submitted", "gold_scored"]


@admin.register(StatsCursor)
class StatsCursorAdmin(ReadOnlyAdmin):
    list_display = ["name", "position", "updated_at"]


@admin.register(AgreementChanges)
class AgreementChangesAdmin(ReadOnlyAdmin):
    list_display = ["project_id", "shard", "labels", "stored"]
