"""Review policy and the review queue over REST (``qa.review_policy``, ``qa.reviews``)."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from config.api import validated
from config.errors import NotFound
from config.openapi import error_response
from config.parsers import FormParser, JSONParser
from config.serializers import Direct, Flat, KnownFieldsOnly, Prepared, date_time_out
from config.storable import BIGINT_MAX
from tasks import selectors as task_selectors
from tasks.api.projects import Rate
from tasks.models import Project
from tasks.openapi import PayloadField
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.models import MAX_SKILL_LEVEL, Role
from workforce.tenancy import STAFF

from . import review_policy, reviews, selectors
from .models import ReviewerRole, ReviewItem

# Who reviews: reviewers, and QA leads (who review at every layer).
REVIEWERS = (Role.REVIEWER, Role.QA_LEAD)


# ---------------------------------------------------------------------------------------------
# Review policy.


class LayerIn(KnownFieldsOnly):
    name = serializers.CharField(max_length=100)
    sample_rate = Rate(help_text="The base rate: newcomers' work is sampled at it.")
    floor_rate = Rate(
        required=False,
        default=0.0,
        help_text="The lowest rate, reached at the project's accuracy target; at most sample_rate.",
    )
    role = serializers.ChoiceField(
        choices=ReviewerRole.choices,
        default=ReviewerRole.REVIEWER,
        help_text="Who reviews here: reviewers (and QA leads), or QA leads only.",
    )
    min_skill_level = serializers.IntegerField(
        min_value=0, max_value=MAX_SKILL_LEVEL, default=0, help_text="In the project's kind."
    )
    required_domains = serializers.ListField(
        child=serializers.SlugField(max_length=64),
        default=list,
        max_length=50,
        help_text="Slugs of the domains a reviewer here needs a certification in force in.",
    )


class ErrorTagIn(KnownFieldsOnly):
    code = serializers.SlugField(max_length=64)
    description = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=2000
    )


class PolicyIn(KnownFieldsOnly):
    layers = LayerIn(
        many=True,
        max_length=review_policy.MAX_LAYERS,
        help_text="In review order: the first is layer 1. Matched to the current layers by "
        "position.",
    )
    error_tags = ErrorTagIn(many=True, max_length=review_policy.MAX_ERROR_TAGS)


class LayerOut(Prepared):
    position = serializers.IntegerField()
    name = serializers.CharField()
    sample_rate = serializers.FloatField()
    floor_rate = serializers.FloatField()
    role = serializers.ChoiceField(choices=ReviewerRole.choices)
    min_skill_level = serializers.IntegerField()
    required_domains = serializers.ListField(child=serializers.CharField())


class ErrorTagOut(Prepared):
    code = serializers.CharField()
    description = serializers.CharField()


class PolicyOut(Prepared):
    layers = LayerOut(many=True)
    error_tags = ErrorTagOut(many=True)


POLICY_EXAMPLE = OpenApiExample(
    "Two layers",
    request_only=True,
    value={
        "layers": [
            {"name": "Peer review", "sample_rate": 0.3, "floor_rate": 0.05, "role": "reviewer"},
            {
                "name": "QA audit",
                "sample_rate": 0.1,
                "floor_rate": 0.02,
                "role": "qa_lead",
                "min_skill_level": 3,
                "required_domains": ["medical-imaging"],
            },
        ],
        "error_tags": [
            dict(code="missed-object", description="An object in the image has no box."),
            dict(code="loose-box", description="A box is larger than its object."),
        ],
    },
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ReviewPolicyApi(OrganizationApi):
    """A project's review policy: its review layers in order, and its error taxonomy.

    ``PUT`` sets it whole. Layers are matched by position: the first entry changes layer 1 in
    place, and so on; entries past the current layers add layers, layers past the list's end
    are removed. A layer holding review items is never removed (409 `in_use`; set its rates to
    0 instead), nor a tag a verdict used; tags are matched by code. Audited.
    """

    roles = {"GET": (*STAFF, Role.REVIEWER), "PUT": STAFF}
    pagination_class = None

    @extend_schema(responses=PolicyOut)
    def get(self, request, pk: int):
        project = task_selectors.project_get(member=self.member, project_id=pk)
        return Response(PolicyOut(selectors.review_policy(project=project)).data)

    @extend_schema(
        request=PolicyIn,
        responses={
            200: PolicyOut,
            409: error_response(
                "A layer holding review items, or a tag verdicts used, would be removed "
                "(`in_use`), the project is archived (`invalid_status`), or an import is writing "
                "its tasks (`import_in_progress`)."
            ),
        },
        examples=[POLICY_EXAMPLE],
    )
    def put(self, request, pk: int):
        project = task_selectors.project_get(member=self.member, project_id=pk)
        fields = validated(
            PolicyIn(data=request.data),
            lambda passed: review_policy.review_policy_check(
                organization=project.organization,
                layers=passed.get("layers"),
                error_tags=passed.get("error_tags"),
            ),
        )
        policy = review_policy.review_policy_set(project=project, actor=request.user, **fields)
        return Response(PolicyOut(policy).data)


# ---------------------------------------------------------------------------------------------
# The review queue.


ClaimedLayerOut = inline_serializer(
    "ClaimedReviewLayer",
    {"position": serializers.IntegerField(), "name": serializers.CharField()},
)
ClaimedReviewProjectOut = inline_serializer(
    "ClaimedReviewProject",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "kind": serializers.CharField(),
        "instructions": serializers.CharField(),
        "label_schema": serializers.JSONField(),
        "error_tags": ErrorTagOut(many=True),
    },
)
ReviewedAnnotationOut = inline_serializer(
    "ReviewedAnnotation",
    {
        "id": serializers.IntegerField(),
        "version": serializers.IntegerField(),
        "payload": PayloadField(),
    },
)
ReviewedTaskOut = inline_serializer(
    "ReviewedTask", {"id": serializers.IntegerField(), "data": serializers.JSONField()}
)


class ReviewClaimOut(Direct):
    """A fresh review claim: the work to judge and what to judge it by; never who made it."""

    id = serializers.IntegerField(source="item_id")
    state = serializers.SerializerMethodField()
    leased_at = serializers.DateTimeField()
    lease_expires_at = serializers.DateTimeField()
    layer = serializers.SerializerMethodField()
    project = serializers.SerializerMethodField()
    task = serializers.SerializerMethodField()
    annotation = serializers.SerializerMethodField()

    def get_state(self, obj) -> str:
        return "leased"

    @extend_schema_field(ClaimedLayerOut)
    def get_layer(self, obj) -> dict:
        return {"position": obj.layer_position, "name": obj.layer_name}

    @extend_schema_field(ClaimedReviewProjectOut)
    def get_project(self, obj) -> dict:
        return {
            "id": obj.project_id,
            "name": obj.project_name,
            "kind": obj.kind,
            "instructions": obj.instructions,
            "label_schema": obj.label_schema,
            "error_tags": obj.error_tags,
        }

    @extend_schema_field(ReviewedTaskOut)
    def get_task(self, obj) -> dict:
        return {"id": obj.task_id, "data": obj.data}

    @extend_schema_field(ReviewedAnnotationOut)
    def get_annotation(self, obj) -> dict:
        return {"id": obj.annotation_id, "version": obj.version, "payload": obj.payload}

    def to_representation(self, instance):
        return {
            "id": instance.item_id,
            "state": self.get_state(instance),
            "leased_at": date_time_out(instance.leased_at),
            "lease_expires_at": date_time_out(instance.lease_expires_at),
            "layer": self.get_layer(instance),
            "project": self.get_project(instance),
            "task": self.get_task(instance),
            "annotation": self.get_annotation(instance),
        }


NoReviewClaimOut = inline_serializer(
    "NoReviewClaim",
    {
        "outcome": serializers.ChoiceField(
            choices=[
                reviews.ReviewClaimOutcome.AT_LIMIT,
                reviews.ReviewClaimOutcome.NOT_QUALIFIED,
                reviews.ReviewClaimOutcome.NO_LAYERS,
            ]
        ),
        "message": serializers.CharField(),
        "layers": inline_serializer(
            "NoReviewClaimLayer",
            {
                "project": serializers.IntegerField(),
                "layer": serializers.IntegerField(),
                "name": serializers.CharField(),
                "reasons": serializers.ListField(child=serializers.CharField()),
            },
            many=True,
        ),
    },
)


class ReviewItemOut(serializers.ModelSerializer):
    """A review item as its reviewer reads it: where it stands, not whose work it is."""

    layer = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "state",
            "project",
            "layer",
            "task",
            "annotation",
            "version",
            "arrived_at",
            "leased_at",
            "lease_expires_at",
        ]

    @extend_schema_field(ClaimedLayerOut)
    def get_layer(self, obj) -> dict:
        return {"position": obj.layer.position, "name": obj.layer.name}


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ReviewClaimApi(OrganizationApi):
    """Claim the next review item you may judge.

    ``layer`` is a position (1 for a project's first layer): with ``project``, that layer of
    that project; alone, that layer of every project. Without them, every layer you may review
    at, by project priority and deadline, later layers first; within a layer, a lapsed lease
    first, then the oldest waiting item. Never your own work, never an annotation you judged at
    another layer, never an item you released.

    201 with the item; 204 when nothing waits for you right now (the ``X-Reason`` header says
    so); 200 with ``outcome`` and ``message`` when you cannot claim at all: you hold as many
    reviews as you may (``at_limit``, the project's ``max_concurrent_tasks``), you lack the
    skill level or certifications of every layer you may review at (``not_qualified``, each
    layer with the reasons), or you may review at no layer of an active project
    (``no_layers``).
    """

    roles = {"POST": REVIEWERS}
    parser_classes = [JSONParser, FormParser]

    class ReviewClaimInput(KnownFieldsOnly, Flat):
        # Passed to the claim's SQL function as a bigint and an integer.
        project = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX
        )
        layer = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=review_policy.MAX_LAYERS,
            help_text="A layer's position: 1 for the first.",
        )

    @extend_schema(
        request=ReviewClaimInput, responses={201: ReviewClaimOut, 200: NoReviewClaimOut, 204: None}
    )
    def post(self, request):
        data = self.ReviewClaimInput(data=request.data)
        data.is_valid(raise_exception=True)
        project_id = data.validated_data.get("project")
        if (
            project_id is not None
            and not Project.objects.filter(
                pk=project_id, organization_id=self.member.organization_id
            ).exists()
        ):
            raise NotFound("No such project.")
        result = reviews.review_claim(
            member=self.member, project_id=project_id, layer=data.validated_data.get("layer")
        )
        if result.claimed is not None:
            return Response(ReviewClaimOut(result.claimed).data, status=status.HTTP_201_CREATED)
        if result.outcome == reviews.ReviewClaimOutcome.NONE_AVAILABLE:
            return Response(status=status.HTTP_204_NO_CONTENT, headers={"X-Reason": result.message})
        body = {"outcome": result.outcome, "message": result.message, "layers": result.layers or []}
        return Response(body, status=status.HTTP_200_OK)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ReviewListApi(OrganizationApi):
    """The review items you hold or judged, newest first."""

    roles = {"GET": REVIEWERS}

    @extend_schema(responses=ReviewItemOut(many=True))
    def get(self, request):
        return self.paginated(selectors.own_review_items(member=self.member), ReviewItemOut)


# What ends a review lease for its holder: it cannot be extended or given back after that.
REVIEW_LEASE_CONFLICT = error_response(
    "Your lease is over: it lapsed and the item went to someone else, or it ended (`lease_lost`); "
    "or you judged the item (`already_submitted`) or released it (`already_released`)."
)
ACCESS_ENDED_403 = error_response(
    "You may no longer review at the item's layer; your lease ended (`access_ended`)."
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ReviewHeartbeatApi(OrganizationApi):
    """Extend your lease on a review item by the project's lease length."""

    roles = {"POST": REVIEWERS}

    @extend_schema(
        request=None,
        responses={200: ReviewItemOut, 403: ACCESS_ENDED_403, 409: REVIEW_LEASE_CONFLICT},
    )
    def post(self, request, pk: int):
        item = selectors.review_item_get(member=self.member, item_id=pk)
        item = reviews.review_heartbeat(item=item, member=self.member)
        return Response(ReviewItemOut(item).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ReviewReleaseApi(OrganizationApi):
    """Give a review item back for someone else; you will not be offered it again."""

    roles = {"POST": REVIEWERS}

    @extend_schema(
        request=None,
        responses={200: ReviewItemOut, 403: ACCESS_ENDED_403, 409: REVIEW_LEASE_CONFLICT},
    )
    def post(self, request, pk: int):
        item = selectors.review_item_get(member=self.member, item_id=pk)
        item = reviews.review_release(item=item, member=self.member)
        return Response(ReviewItemOut(item).data)


# ---------------------------------------------------------------------------------------------
# What QA leads watch.


class ReviewQueueOut(Prepared):
    layer = serializers.IntegerField(help_text="The layer's position.")
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=ReviewerRole.choices)
    sample_rate = serializers.FloatField()
    floor_rate = serializers.FloatField()
    open = serializers.IntegerField(help_text="Items waiting for a reviewer.")
    leased = serializers.IntegerField(help_text="Items a reviewer holds under a live lease.")
    lapsed = serializers.IntegerField(help_text="Leases that lapsed: claimable again.")
    oldest_waiting_seconds = serializers.FloatField(
        allow_null=True,
        help_text="How long the longest-waiting item (open, or since its lease lapsed) has "
        "waited; null when none waits.",
    )
    sampled = serializers.IntegerField(help_text="Arrivals the layer sampled in the window.")
    skipped = serializers.IntegerField(help_text="Arrivals it did not sample in the window.")


# The longest window of arrivals the queue view counts: a week of one layer's rows.
MAX_WINDOW_HOURS = 168


class QueueWindow(serializers.Serializer):
    hours = serializers.IntegerField(
        required=False,
        default=24,
        min_value=1,
        max_value=MAX_WINDOW_HOURS,
        help_text="The window of arrivals counted as sampled and skipped, in hours.",
    )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ProjectReviewQueuesApi(OrganizationApi):
    """Each review layer's queue, in position order: what waits, what is held, how long the
    oldest item has waited, and the layer's sampling decisions over the last ``hours``."""

    roles = {"GET": STAFF}
    pagination_class = None  # one row per layer, at most review_policy.MAX_LAYERS

    @extend_schema(responses=ReviewQueueOut(many=True), parameters=[QueueWindow])
    def get(self, request, pk: int):
        project = task_selectors.project_get(member=self.member, project_id=pk)
        window = QueueWindow(data=request.query_params)
        window.is_valid(raise_exception=True)
        now = timezone.now()
        since = now - timedelta(hours=window.validated_data["hours"])
        queues = selectors.review_queues(project=project, now=now, since=since)
        return Response(ReviewQueueOut(queues, many=True).data)


class StaffingLayerOut(Prepared):
    layer = serializers.IntegerField(help_text="The layer's position.")
    name = serializers.CharField()
    qualified = serializers.BooleanField()
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="What keeps the reviewer off it, in words."
    )


class ReviewStaffingLoadOut(Prepared):
    live_reviews_here = serializers.IntegerField(help_text="Review leases held in the project.")
    project_max_concurrent_tasks = serializers.IntegerField()
    has_room = serializers.BooleanField()


class ReviewStaffingOut(Prepared):
    annotator = serializers.IntegerField(
        help_text="The reviewer's working profile: what POST /projects/{id}/members takes, with "
        'the role "reviewer".'
    )
    username = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField(help_text="Their working profile's status.")
    qualified = serializers.BooleanField(
        help_text="Active, and qualified at one of the project's reviewer layers at least."
    )
    skill_level = serializers.IntegerField(
        allow_null=True, help_text="In the project's kind; null without a skill row."
    )
    layers = StaffingLayerOut(many=True, help_text="Each layer reviewers review at.")
    is_member = serializers.BooleanField(help_text="An active reviewer of the project.")
    load = ReviewStaffingLoadOut()


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ProjectReviewStaffingApi(OrganizationApi):
    """The organization's reviewers ranked for the project's review: qualified first (at one of
    its ``reviewer`` layers, by the review claim's rule), with the reasons per layer, whether
    they review on the project, and their live review leases there. Annotators are ranked at
    ``GET /projects/{id}/staffing``; a manager adds a reviewer with ``POST
    /projects/{id}/members`` and the role ``reviewer``."""

    roles = {"GET": STAFF}
    pagination_class = None  # the ranking is read whole, best first

    @extend_schema(responses=ReviewStaffingOut(many=True))
    def get(self, request, pk: int):
        project = task_selectors.project_get(member=self.member, project_id=pk)
        rows = selectors.review_staffing(project=project, now=timezone.now())
        return Response(ReviewStaffingOut(rows, many=True).data)


class ReviewDecisionOut(serializers.ModelSerializer):
    """One layer's decision on one version: whether it sampled it, at which rate and why, and
    where its review stands."""

    layer = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "version",
            "layer",
            "sampled",
            "rate",
            "basis",
            "arrived_at",
            "state",
            "reviewer",
            "lease_expires_at",
            "verdict",
        ]

    @extend_schema_field(ClaimedLayerOut)
    def get_layer(self, obj) -> dict:
        return {"position": obj.layer.position, "name": obj.layer.name}

    def get_verdict(self, obj) -> str | None:
        # Read along (``select_related``); an item without a verdict has none.
        review = getattr(obj, "review", None)
        return review.verdict if review is not None else None


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class AnnotationReviewsApi(OrganizationApi):
    """Every layer's decision on each version of an annotation, oldest first."""

    roles = {"GET": STAFF}

    @extend_schema(responses=ReviewDecisionOut(many=True))
    def get(self, request, pk: int):
        items = selectors.annotation_review_items(member=self.member, annotation_id=pk)
        return self.paginated(items, ReviewDecisionOut)
