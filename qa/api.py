"""Quality's REST views: accuracy, gold health, exams, and the ticket that opens the live
socket."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import validated
from config.errors import ValidationFailed
from config.openapi import error_response
from config.parsers import JSONParser
from config.serializers import KnownFieldsOnly, Prepared
from tasks.openapi import LabelSchemaField, PayloadField
from tasks.selectors import project_get
from tasks.services.claims import MAX_ACTIVE_SECONDS
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi, annotator_of
from workforce.models import MAX_SKILL_LEVEL, Domain, Skill
from workforce.selectors import annotator_get
from workforce.tenancy import ANNOTATOR, ANYONE, STAFF

from . import exams, live_schema, selectors, tickets
from .gold import RECENT_N
from .models import ExamAnswer
from .serializers import (
    ExamAnswerOut,
    ExamAttemptStaffOut,
    ExamClaimOut,
    ExamDetailOut,
    ExamOut,
    OwnExamAttemptOut,
    OwnExamOut,
)


class LiveTicketOut(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
    url = serializers.CharField(help_text="The socket's path, ticket included.")


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["live"])
class LiveTicketApi(OrganizationApi):
    """A ticket to open the live-events WebSocket as yourself in this organization.

    Open ``/ws/orgs/<slug>/?ticket=<ticket>`` within a minute (``expires_at``); the token itself
    never goes in a URL. Ask for a new ticket for every connection.
    """

    roles = {"POST": ANYONE}

    @extend_schema(request=None, responses={201: LiveTicketOut})
    def post(self, request):
        ticket, expires_at = tickets.ticket_issue(member=self.member)
        slug = self.member.organization.slug
        body = {
            "ticket": ticket,
            "expires_at": expires_at,
            "url": f"/ws/orgs/{slug}/?ticket={ticket}",
        }
        return Response(LiveTicketOut(body).data, status=status.HTTP_201_CREATED)


class LiveSchemaApi(APIView):
    """The JSON Schema (draft 2020-12) of every message the live-events WebSocket sends:
    ``snapshot``, ``batch`` (each event type's ``data`` a definition of its own) and
    ``resync``. A client can check what it receives against it.

    A description beside the OpenAPI one (``/api/schema/``), served as that is: to anyone,
    and no operation of the API.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request):
        return Response(live_schema.SCHEMA)


class ReviewAccuracyOut(Prepared):
    """What reviewers' verdicts say of the work: each scores 1 for an accept, 0 for a reject,
    the kind's comparison with the correction for a correction."""

    reviewed = serializers.IntegerField(help_text="n: verdicts on the annotator's own work.")
    mean = serializers.FloatField(allow_null=True, help_text="k / n, k the sum of scores.")
    low = serializers.FloatField(allow_null=True, help_text="Lower bound of the interval.")
    high = serializers.FloatField(allow_null=True, help_text="Upper bound of the interval.")


class AccuracyOut(Prepared):
    """Accuracy as Assay always tells it: with its sample size and 95 % Wilson interval; gold
    accuracy, and review accuracy beside it (``review``)."""

    scored = serializers.IntegerField(help_text="n: gold tasks scored.")
    mean = serializers.FloatField(allow_null=True, help_text="k / n, k the sum of scores.")
    low = serializers.FloatField(allow_null=True, help_text="Lower bound of the interval.")
    high = serializers.FloatField(allow_null=True, help_text="Upper bound of the interval.")
    recent_mean = serializers.FloatField(
        allow_null=True, help_text=f"Mean of the latest {RECENT_N} scores (per project only)."
    )
    recent_n = serializers.IntegerField()
    review = ReviewAccuracyOut()


class AnnotatorAccuracyRowOut(AccuracyOut):
    annotator = serializers.IntegerField()
    username = serializers.CharField()


class ProjectAccuracyRowOut(AccuracyOut):
    project = serializers.IntegerField()
    name = serializers.CharField()


class KindAccuracyRowOut(AccuracyOut):
    kind = serializers.CharField()


class DomainAccuracyRowOut(AccuracyOut):
    domain = serializers.CharField()


class AccuracyRollupOut(serializers.Serializer):
    annotator = serializers.IntegerField()
    projects = ProjectAccuracyRowOut(many=True)
    kinds = KindAccuracyRowOut(many=True)
    domains = DomainAccuracyRowOut(many=True)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class ProjectAccuracyApi(OrganizationApi):
    """Every annotator's gold accuracy in the project, best lower bound first, with their
    review accuracy."""

    roles = {"GET": STAFF}

    @extend_schema(responses=AnnotatorAccuracyRowOut(many=True))
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        return self.paginated(selectors.project_accuracy(project=project), AnnotatorAccuracyRowOut)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class AnnotatorAccuracyApi(OrganizationApi):
    """An annotator's gold and review accuracy per project, and rolled up per kind and per
    domain."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=AccuracyRollupOut)
    def get(self, request, pk: int):
        annotator = annotator_get(member=self.member, annotator_id=pk)
        return Response(AccuracyRollupOut(selectors.annotator_accuracy(annotator=annotator)).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class MyAccuracyApi(OrganizationApi):
    """Your own accuracy: aggregates only. Gold checks count up to the end of the last day
    (UTC), so that no gold figure moves while you work; reviews of your work count at once."""

    roles = {"GET": ANNOTATOR}
    pagination_class = None

    @extend_schema(responses=AccuracyRollupOut)
    def get(self, request):
        annotator = annotator_of(self.member)
        return Response(AccuracyRollupOut(selectors.own_accuracy(annotator=annotator)).data)


class GoldTaskOut(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    gold_version = serializers.IntegerField()
    gold_retired_at = serializers.DateTimeField(allow_null=True)
    served = serializers.IntegerField(help_text="Annotators it was handed to.")
    scored = serializers.IntegerField()
    mean_score = serializers.FloatField(allow_null=True)
    best_scored = serializers.IntegerField(
        help_text="How many of the project's most accurate annotators were scored on it."
    )
    best_mean_score = serializers.FloatField(allow_null=True)
    exposure = serializers.FloatField(help_text="Served over the project's active annotators.")
    contested = serializers.BooleanField(help_text="Most of the most accurate fail it.")
    overexposed = serializers.BooleanField(
        help_text="Exposure above the project's gold_max_exposure."
    )

    def to_representation(self, task):
        health = self.context["health"][task.pk]
        return super().to_representation(
            {
                "id": task.pk,
                "external_id": task.external_id,
                "gold_version": task.gold_version,
                "gold_retired_at": task.gold_retired_at,
            }
            | health
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class ProjectGoldApi(OrganizationApi):
    """The project's gold tasks with their health: served, scored, mean score, the mean among
    the project's most accurate annotators, and the ``contested`` and ``overexposed`` flags."""

    roles = {"GET": STAFF}

    @extend_schema(responses=GoldTaskOut(many=True))
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        return self.paginated(
            selectors.gold_tasks(project=project),
            GoldTaskOut,
            lambda page: {"health": selectors.gold_health(project=project, tasks=page)},
        )


class GoldPoolOut(serializers.Serializer):
    gold_tasks = serializers.IntegerField(help_text="Gold tasks in service.")
    retired = serializers.IntegerField()
    annotators = serializers.IntegerField(help_text="Active annotators on the project.")
    annotators_who_saw_every_gold_task = serializers.IntegerField()
    ran_dry = serializers.BooleanField(
        help_text="Some annotator has seen every gold task in service (or none serves): "
        "their claims are regular work only."
    )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class ProjectGoldPoolApi(OrganizationApi):
    """Whether the project's gold pool is deep enough for its annotators."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=GoldPoolOut)
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        return Response(GoldPoolOut(selectors.gold_pool(project=project)).data)


# Exams: staff define them and read attempts; annotators take them.


class ExamItemFields(serializers.Serializer):
    data = serializers.DictField(help_text="The item, as a task's data of the exam's kind.")
    answer = PayloadField(help_text="The gold answer, a payload of the exam's kind.")


class ExamFields(KnownFieldsOnly):
    name = serializers.CharField(max_length=200)
    instructions = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Skill.choices)
    label_schema = LabelSchemaField()
    items = serializers.ListField(child=ExamItemFields(), min_length=1, max_length=exams.MAX_ITEMS)
    domain = serializers.SlugField(required=False, allow_null=True)
    pass_threshold = serializers.FloatField(min_value=0, max_value=1)
    certification_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=3650
    )
    skill_level = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_SKILL_LEVEL
    )
    cooldown_hours = serializers.IntegerField(required=False, min_value=0, max_value=24 * 365)
    max_attempts = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=1000
    )
    is_active = serializers.BooleanField(required=False)


class ExamUpdateFields(ExamFields):
    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=Skill.choices, required=False)
    label_schema = LabelSchemaField(required=False)
    items = serializers.ListField(
        child=ExamItemFields(), min_length=1, max_length=exams.MAX_ITEMS, required=False
    )
    pass_threshold = serializers.FloatField(min_value=0, max_value=1, required=False)


def _domain_of(member, fields: dict) -> None:
    """Replace the domain's slug in ``fields`` by the organization's domain, or refuse it."""
    if fields.get("domain") is None:
        return
    domain = Domain.objects.filter(organization=member.organization, slug=fields["domain"]).first()
    if domain is None:
        raise ValidationFailed("Unknown domain.", fields={"domain": ["Unknown domain."]})
    fields["domain"] = domain


EXAM_EXAMPLE = OpenApiExample(
    "Street scenes",
    request_only=True,
    value={
        "name": "Boxes on street scenes",
        "kind": "bbox",
        "label_schema": {"labels": [{"name": "car"}, {"name": "person"}]},
        "items": [
            {
                "data": {"image": "s3://exams/1.jpg", "width": 640, "height": 480},
                "answer": {"boxes": [{"label": "car", "x": 10, "y": 20, "w": 50, "h": 30}]},
            }
        ],
        "domain": "autonomous-driving",
        "pass_threshold": 0.8,
        "certification_days": 365,
        "skill_level": 3,
        "cooldown_hours": 24,
        "max_attempts": 3,
    },
)


def _exam_detail(member, pk: int) -> dict:
    return ExamDetailOut(selectors.exam_get(member=member, exam_id=pk)).data


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class ExamListApi(OrganizationApi):
    """Qualification exams, for managers and QA leads; ``POST`` creates one with its items.

    Each item's answer is checked by the exam's kind against the label schema and the item's
    data: a 400 names its path (``items[3].answer.boxes[0].x``).
    """

    roles = {"GET": STAFF, "POST": STAFF}
    parser_classes = [JSONParser]

    @extend_schema(responses=ExamOut(many=True))
    def get(self, request):
        return self.paginated(selectors.exam_list(member=self.member), ExamOut)

    @extend_schema(request=ExamFields, responses={201: ExamDetailOut}, examples=[EXAM_EXAMPLE])
    def post(self, request):
        fields = validated(ExamFields(data=request.data))
        _domain_of(self.member, fields)
        exam = exams.exam_create(
            organization=self.member.organization, actor=request.user, **fields
        )
        return Response(_exam_detail(self.member, exam.pk), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class ExamDetailApi(OrganizationApi):
    """An exam with its items and answers. ``PATCH`` changes it, ``is_active`` included; its
    kind, label schema and items are fixed once it was attempted (409 ``frozen``)."""

    roles = {"GET": STAFF, "PATCH": STAFF}
    parser_classes = [JSONParser]

    @extend_schema(responses=ExamDetailOut)
    def get(self, request, pk: int):
        return Response(_exam_detail(self.member, pk))

    @extend_schema(
        request=ExamUpdateFields,
        responses={
            200: ExamDetailOut,
            409: error_response("The exam was attempted: its content is fixed (`frozen`)."),
        },
    )
    def patch(self, request, pk: int):
        exam = selectors.exam_get(member=self.member, exam_id=pk)
        fields = validated(ExamUpdateFields(data=request.data, partial=True))
        _domain_of(self.member, fields)
        exams.exam_update(exam=exam, actor=request.user, **fields)
        return Response(_exam_detail(self.member, pk))


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class ExamAttemptListApi(OrganizationApi):
    """An exam's attempts, newest first, each with its items' payloads and scores."""

    roles = {"GET": STAFF}

    @extend_schema(responses=ExamAttemptStaffOut(many=True))
    def get(self, request, pk: int):
        return self.paginated(
            selectors.exam_attempt_list(member=self.member, exam_id=pk), ExamAttemptStaffOut
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class OwnExamListApi(OrganizationApi):
    """The active exams of your organization, and where you stand with each: whether you can
    start an attempt (``available``, else ``reason``: an error code of the start), your
    cooldown, attempts used and left, when you passed, and ``renewal_due`` when you hold its
    certification and it expires within 30 days (a retake renews it)."""

    roles = {"GET": ANNOTATOR}

    @extend_schema(responses=OwnExamOut(many=True))
    def get(self, request):
        annotator = annotator_of(self.member)
        return self.paginated(
            selectors.own_exam_list(member=self.member),
            OwnExamOut,
            lambda page: {"states": exams.exam_states(annotator=annotator, exams=page)},
        )


# Why an attempt cannot start.
START_CONFLICT = error_response(
    "An attempt is in progress (`attempt_in_progress`), the failed attempts reached the "
    "maximum (`attempts_exhausted`), the cooldown after a fail runs (`exam_cooldown`), you "
    "passed and your certification is not due for renewal (`already_passed`), or you are "
    "suspended (`annotator_not_active`)."
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class OwnExamAttemptStartApi(OrganizationApi):
    """Start an attempt at an exam; then claim its items one by one."""

    roles = {"POST": ANNOTATOR}

    @extend_schema(request=None, responses={201: OwnExamAttemptOut, 409: START_CONFLICT})
    def post(self, request, pk: int):
        annotator = annotator_of(self.member)
        exam = selectors.own_exam_get(member=self.member, exam_id=pk)
        attempt = exams.attempt_start(exam=exam, annotator=annotator)
        return Response(
            OwnExamAttemptOut(attempt, context={"answered": {}}).data,
            status=status.HTTP_201_CREATED,
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class OwnExamAttemptDetailApi(OrganizationApi):
    """Your attempt: how far along, and once finished its score and whether you passed."""

    roles = {"GET": ANNOTATOR}

    @extend_schema(responses=OwnExamAttemptOut)
    def get(self, request, pk: int):
        attempt = selectors.own_exam_attempt(member=self.member, attempt_id=pk)
        return Response(OwnExamAttemptOut(attempt).data)


ATTEMPT_FINISHED = error_response("The attempt was scored already (`attempt_finished`).")


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class OwnExamAttemptClaimApi(OrganizationApi):
    """The attempt's next item, shaped like ``POST /claims``; submit it at
    ``POST /me/exam-answers/{id}/submit``. Items come in order; the item given out and not yet
    answered is given again (200)."""

    roles = {"POST": ANNOTATOR}

    @extend_schema(
        request=None, responses={201: ExamClaimOut, 200: ExamClaimOut, 409: ATTEMPT_FINISHED}
    )
    def post(self, request, pk: int):
        attempt = selectors.own_exam_attempt(member=self.member, attempt_id=pk)
        answer, created = exams.attempt_claim(attempt=attempt)
        return Response(
            ExamClaimOut(answer).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["exams"])
class OwnExamAnswerSubmitApi(OrganizationApi):
    """Answer a claimed exam item, as ``POST /assignments/{id}/submit`` takes work.

    The payload is checked by the exam's kind (a 400 names each ``payload...`` path, and
    nothing is stored). The same payload again returns the stored answer; another is 409. The
    last item's answer scores the attempt: ``attempt`` then tells its score and outcome.
    """

    roles = {"POST": ANNOTATOR}
    parser_classes = [JSONParser]

    class ExamSubmitInput(serializers.Serializer):
        payload = PayloadField(help_text="The exam's kind's payload.")
        active_seconds = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=MAX_ACTIVE_SECONDS
        )

    @extend_schema(
        request=ExamSubmitInput,
        responses={
            201: ExamAnswerOut,
            200: ExamAnswerOut,
            409: error_response(
                "The item was answered with another payload (`already_submitted`), or the "
                "attempt is over (`attempt_finished`)."
            ),
        },
    )
    def post(self, request, pk: int):
        answer = selectors.own_exam_answer(member=self.member, answer_id=pk)
        data = self.ExamSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        answer, created = exams.answer_submit(
            answer=answer, actor=request.user, **data.validated_data
        )
        answered = ExamAnswer.objects.filter(
            attempt_id=answer.attempt_id, submitted_at__isnull=False
        ).count()
        body = ExamAnswerOut(answer, context={"answered": {answer.attempt_id: answered}}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
