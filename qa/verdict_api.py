"""Verdicts over REST: a reviewer judges the item they hold; an annotator reads the verdicts on
their own work.

What the author reads of a verdict: the verdict, the tags with their descriptions, the comment,
the layer, the correction for a correction, when, and the task and assignment. Not who gave it:
a verdict is the layer's word on the work, and a name would invite arguing with the person
rather than fixing the work (and pressure on reviewers who reject). QA leads and managers see
the reviewer (``review.completed``, the admin).
"""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from config.openapi import error_response
from config.parsers import JSONParser
from tasks.openapi import PayloadField
from tasks.serializers import ReworkTagOut
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.models import Role
from workforce.tenancy import ANYONE

from . import selectors, verdicts
from .models import Review, Verdict


class VerdictOut(serializers.ModelSerializer):
    """A verdict as its reviewer reads it back, with what followed it: the next layer's item
    when another layer samples the version (``next_item``), ``final`` when none does, or where
    rejected work went (``rework``: ``author`` or ``pool``)."""

    corrected_payload = PayloadField(read_only=True, allow_null=True)
    next_item = serializers.SerializerMethodField()
    final = serializers.SerializerMethodField()
    rework = serializers.SerializerMethodField()

    class Meta:
        model = Review
        fields = [
            "id",
            "item",
            "annotation",
            "version",
            "layer",
            "verdict",
            "tags",
            "comment",
            "corrected_payload",
            "score",
            "details",
            "created_at",
            "next_item",
            "final",
            "rework",
        ]

    def get_next_item(self, obj) -> int | None:
        judgement = self.context["judgement"]
        return judgement.next_item.pk if judgement.next_item else None

    def get_final(self, obj) -> bool:
        return obj.verdict != Verdict.REJECT and self.context["judgement"].next_item is None

    def get_rework(self, obj) -> str | None:
        rework = self.context["judgement"].rework
        if rework is None:
            return None
        return "author" if rework.to_author else "pool"


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class ReviewVerdictApi(OrganizationApi):
    """Give your verdict on the review item you hold.

    ``accept`` takes no tags and no payload; ``reject`` needs at least one tag of the project's
    error taxonomy and a comment, and sends the work back to its annotator; ``correct`` needs a
    ``corrected_payload`` valid for the project's kind and unlike the version judged, which
    becomes the annotation's next version. A 400 names each bad field (``tags[1]``,
    ``corrected_payload.boxes[0].w``) and changes nothing.
    """

    roles = {"POST": (Role.REVIEWER, Role.QA_LEAD)}
    parser_classes = [JSONParser]

    class VerdictInput(serializers.Serializer):
        verdict = serializers.ChoiceField(choices=Verdict.choices)
        tags = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, max_length=100
        )
        comment = serializers.CharField(
            required=False, allow_blank=True, max_length=10_000, trim_whitespace=False
        )
        corrected_payload = PayloadField(
            required=False, allow_null=True, help_text="For `correct` only: the fixed payload."
        )

    @extend_schema(
        request=VerdictInput,
        responses={
            201: VerdictOut,
            409: error_response(
                "You do not hold the item's lease (`lease_lost`), you judged it already "
                "(`already_submitted`) or released it (`already_released`)."
            ),
        },
        examples=[
            OpenApiExample(
                "Reject",
                value={"verdict": "reject", "tags": ["missed-object"], "comment": "A car is "
                       "missing on the left."},
            )
        ],
    )  # fmt: skip
    def post(self, request, pk: int):
        item = selectors.review_item_get(member=self.member, item_id=pk)
        data = self.VerdictInput(data=request.data)
        data.is_valid(raise_exception=True)
        judgement = verdicts.review_judge(item=item, reviewer=self.member, **data.validated_data)
        body = VerdictOut(judgement.review, context={"judgement": judgement}).data
        return Response(body, status=status.HTTP_201_CREATED)


class OwnReviewOut(serializers.ModelSerializer):
    """A verdict on your work. ``corrected_payload`` is the reviewer's fix, for a correction."""

    layer = serializers.CharField(source="layer.name")
    tags = serializers.SerializerMethodField()
    corrected_payload = PayloadField(read_only=True, allow_null=True)
    task = serializers.IntegerField(source="task_id")
    assignment = serializers.IntegerField(source="assignment_id")

    class Meta:
        model = Review
        fields = [
            "id",
            "verdict",
            "tags",
            "comment",
            "layer",
            "corrected_payload",
            "created_at",
            "project",
            "task",
            "assignment",
            "annotation",
            "version",
        ]

    @extend_schema_field(ReworkTagOut(many=True))
    def get_tags(self, obj) -> list[dict]:
        described = self.context["tags"]
        return [
            {"code": tag, "description": described.get((obj.project_id, tag), "")}
            for tag in obj.tags
        ]


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["reviews"])
class OwnReviewListApi(OrganizationApi):
    """The verdicts on your own work, newest first (not who gave them: see the module's note).

    Work sent back for rework is also in your assignments, active again with its ``rework``.
    """

    roles = {"GET": ANYONE}

    @extend_schema(responses=OwnReviewOut(many=True))
    def get(self, request):
        return self.paginated(
            selectors.own_reviews(member=self.member),
            OwnReviewOut,
            lambda page: {"tags": selectors.tag_descriptions(r.project_id for r in page)},
        )
