"""Output shapes of the qa REST views."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tasks.openapi import LabelSchemaField, PayloadField
from tasks.serializers import AssignedTaskOut

from .models import Exam, ExamAnswer, ExamAttempt, ExamItem


class ExamItemOut(serializers.ModelSerializer):
    """An item with its gold answer: staff only."""

    answer = PayloadField(read_only=True)

    class Meta:
        model = ExamItem
        fields = ["id", "position", "data", "answer"]


class ExamOut(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    label_schema = LabelSchemaField(read_only=True)
    item_count = serializers.IntegerField(source="item_total", read_only=True)

    class Meta:
        model = Exam
        fields = [
            "id",
            "name",
            "instructions",
            "kind",
            "label_schema",
            "domain",
            "pass_threshold",
            "certification_days",
            "skill_level",
            "cooldown_hours",
            "max_attempts",
            "is_active",
            "item_count",
            "created_at",
            "updated_at",
        ]


class ExamDetailOut(ExamOut):
    items = ExamItemOut(many=True, read_only=True)

    class Meta(ExamOut.Meta):
        fields = [*ExamOut.Meta.fields, "items"]


class ExamAnswerScoreOut(serializers.ModelSerializer):
    """One item of an attempt as staff see it: the payload and its score against the answer."""

    payload = PayloadField(read_only=True)

    class Meta:
        model = ExamAnswer
        fields = [
            "id",
            "item",
            "position",
            "claimed_at",
            "submitted_at",
            "active_seconds",
            "payload",
            "score",
            "details",
        ]


class ExamAttemptStaffOut(serializers.ModelSerializer):
    annotator_username = serializers.CharField(source="annotator.member.user.username")
    answers = ExamAnswerScoreOut(many=True, read_only=True)

    class Meta:
        model = ExamAttempt
        fields = [
            "id",
            "exam",
            "annotator",
            "annotator_username",
            "status",
            "renewal",
            "item_count",
            "started_at",
            "finished_at",
            "score",
            "answers",
        ]


class OwnExamAttemptOut(serializers.ModelSerializer):
    """An attempt as its taker sees it: how far along, the overall score and the outcome;
    never a score per item, nor an answer."""

    answered = serializers.SerializerMethodField()
    passed = serializers.SerializerMethodField()

    class Meta:
        model = ExamAttempt
        fields = [
            "id",
            "exam",
            "status",
            "renewal",
            "item_count",
            "answered",
            "started_at",
            "finished_at",
            "score",
            "passed",
        ]

    def get_answered(self, obj) -> int:
        counts = self.context.get("answered")
        if counts is not None:
            return counts.get(obj.pk, 0)
        return obj.answers.filter(submitted_at__isnull=False).count()

    def get_passed(self, obj) -> bool | None:
        return None if obj.finished_at is None else obj.status == "passed"


class OwnExamOut(serializers.ModelSerializer):
    """An active exam and where the asking annotator stands with it (``context["states"]``)."""

    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    label_schema = LabelSchemaField(read_only=True)
    item_count = serializers.IntegerField(source="item_total", read_only=True)
    available = serializers.SerializerMethodField(
        help_text="Whether an attempt can start now; `reason` says why not."
    )
    reason = serializers.SerializerMethodField()
    attempt_in_progress = serializers.SerializerMethodField()
    cooldown_until = serializers.SerializerMethodField()
    attempts_used = serializers.SerializerMethodField(help_text="Failed attempts.")
    attempts_left = serializers.SerializerMethodField(help_text="None: no limit.")
    passed_at = serializers.SerializerMethodField()
    certification_expires_at = serializers.SerializerMethodField()
    renewal_due = serializers.SerializerMethodField(
        help_text="You hold the exam's certification and it expires within 30 days: a retake "
        "renews it."
    )

    class Meta:
        model = Exam
        # What staff read of an exam, but for its switch and bookkeeping, then your own state.
        fields = [
            *(f for f in ExamOut.Meta.fields if f not in ("is_active", "created_at", "updated_at")),
            "available",
            "reason",
            "attempt_in_progress",
            "cooldown_until",
            "attempts_used",
            "attempts_left",
            "passed_at",
            "certification_expires_at",
            "renewal_due",
        ]

    def _state(self, obj):
        return self.context["states"][obj.pk]

    def get_available(self, obj) -> bool:
        return self._state(obj).refusal() is None

    def get_reason(self, obj) -> str | None:
        refusal = self._state(obj).refusal()
        return None if refusal is None else refusal.code.value

    def get_attempt_in_progress(self, obj) -> int | None:
        return self._state(obj).in_progress

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_cooldown_until(self, obj):
        value = self._state(obj).cooldown_until
        return None if value is None else serializers.DateTimeField().to_representation(value)

    def get_attempts_used(self, obj) -> int:
        return self._state(obj).attempts_used

    def get_attempts_left(self, obj) -> int | None:
        return self._state(obj).attempts_left

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_passed_at(self, obj):
        value = self._state(obj).passed_at
        return None if value is None else serializers.DateTimeField().to_representation(value)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_certification_expires_at(self, obj):
        cert = self._state(obj).certification
        if cert is None or cert.expires_at is None:
            return None
        return serializers.DateTimeField().to_representation(cert.expires_at)

    def get_renewal_due(self, obj) -> bool:
        return self._state(obj).renewal_due


class ExamClaimedOut(serializers.Serializer):
    """The exam as a claimed item's ``project``: what the annotator needs to answer it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    instructions = serializers.CharField()
    label_schema = LabelSchemaField(read_only=True)


class ExamClaimOut(serializers.Serializer):
    """An exam item given out, shaped like the project claim (``ClaimOut``) so clients handle
    both alike: ``id`` is what ``POST /me/exam-answers/{id}/submit`` takes, ``task`` the item,
    ``project`` the exam. An exam has no lease: ``lease_expires_at`` is null."""

    id = serializers.IntegerField()
    status = serializers.SerializerMethodField()
    leased_at = serializers.DateTimeField(source="claimed_at")
    lease_expires_at = serializers.SerializerMethodField()
    task = serializers.SerializerMethodField()
    project = serializers.SerializerMethodField()
    attempt = serializers.IntegerField(source="attempt_id")
    position = serializers.IntegerField(help_text="0-based, in the exam's order.")
    item_count = serializers.IntegerField(source="attempt.item_count")

    def get_status(self, obj) -> str:
        return "active"

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_lease_expires_at(self, obj):
        return None

    @extend_schema_field(AssignedTaskOut)
    def get_task(self, obj) -> dict:
        return {"id": obj.item_id, "data": obj.item.data}

    @extend_schema_field(ExamClaimedOut)
    def get_project(self, obj) -> dict:
        exam = obj.attempt.exam
        return ExamClaimedOut(exam).data


class ExamAnswerOut(serializers.ModelSerializer):
    """A submitted item as its taker sees it: the payload, and the attempt as it stands (its
    score once the last item is in), never the item's own score."""

    payload = PayloadField(read_only=True)
    attempt = OwnExamAttemptOut(read_only=True)

    class Meta:
        model = ExamAnswer
        fields = ["id", "position", "payload", "active_seconds", "submitted_at", "attempt"]
