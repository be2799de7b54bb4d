"""Quality rules and the actions they took, over REST (``qa.rules``)."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from config.api import validated
from config.openapi import error_response
from config.serializers import KnownFieldsOnly
from tasks.api.projects import Rate
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.tenancy import QA_LEAD, STAFF

from . import rules, selectors
from .models import QualityAction, QualityEffect, QualityMetric, QualityRule


class Number(serializers.FloatField):
    """A number; ``true`` and ``false`` are not numbers, whatever Python says."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class RuleUpdateIn(KnownFieldsOnly):
    # Ranges that depend on the metric and the action are checked by ``qa.rules``.
    threshold = Rate(required=False)
    window = serializers.IntegerField(required=False, min_value=1, max_value=rules.FAST_WINDOW_MAX)
    min_sample = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    fast_fraction = Number(required=False, min_value=0, max_value=1)
    action = serializers.ChoiceField(choices=QualityEffect.choices, required=False)
    parameter = Number(
        required=False,
        allow_null=True,
        help_text="k (levels) for `lower_skill`, r (a gold rate) for `raise_gold_rate`; "
        "null for the other actions.",
    )
    is_active = serializers.BooleanField(required=False)


class RuleIn(RuleUpdateIn):
    project = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The project it watches; null for an organization default, which applies to "
        "every project without a rule of its own (active or not) for the same metric.",
    )
    metric = serializers.ChoiceField(choices=QualityMetric.choices)
    threshold = Rate()
    action = serializers.ChoiceField(choices=QualityEffect.choices)


class RuleOut(serializers.ModelSerializer):
    class Meta:
        model = QualityRule
        fields = [
            "id",
            "project",
            "metric",
            "threshold",
            "window",
            "min_sample",
            "fast_fraction",
            "action",
            "parameter",
            "is_active",
            "created_by",
            "created_at",
            "updated_at",
        ]


class ActionOut(serializers.ModelSerializer):
    evidence = serializers.JSONField(help_text="The window's scores, or the figures, it read.")
    prior = serializers.JSONField(help_text="What undo restores; empty when nothing changed.")
    after = serializers.JSONField(help_text="What the action left.")

    class Meta:
        model = QualityAction
        fields = [
            "id",
            "rule",
            "annotator",
            "project",
            "metric",
            "value",
            "threshold",
            "evidence",
            "action",
            "parameter",
            "effect",
            "prior",
            "after",
            "created_at",
            "undone_at",
            "undone_by",
            "undo_reason",
        ]


def _service_fields(passed: dict) -> dict:
    fields = dict(passed)
    if "project" in fields:
        fields["project_id"] = fields.pop("project")
    return fields


RULE_EXAMPLE = OpenApiExample(
    "Suspend below 0.8 over the last 20 gold tasks",
    request_only=True,
    value={
        "project": 7,
        "metric": "gold_recent_mean",
        "threshold": 0.8,
        "window": 20,
        "min_sample": 10,
        "action": "suspend_project",
    },
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class QualityRuleListApi(OrganizationApi):
    """The organization's quality rules: per project, and defaults (``project`` null).

    A rule fires once when an annotator's metric crosses its threshold, with at least
    ``min_sample`` behind it, and again only after the metric came back. Gold metrics fire below
    the threshold, ``fast_submissions`` above it (the share of the last ``window`` submissions
    under ``fast_fraction`` of the project's median handling time).
    """

    roles = {"GET": STAFF, "POST": STAFF}

    @extend_schema(responses=RuleOut(many=True))
    def get(self, request):
        return self.paginated(selectors.quality_rule_list(member=self.member), RuleOut)

    @extend_schema(request=RuleIn, responses={201: RuleOut}, examples=[RULE_EXAMPLE])
    def post(self, request):
        organization = self.member.organization
        fields = validated(
            RuleIn(data=request.data),
            lambda passed: rules.quality_rule_check(
                organization=organization, fields=_service_fields(passed)
            ),
        )
        rule = rules.quality_rule_create(
            organization=organization, actor=request.user, **_service_fields(fields)
        )
        return Response(RuleOut(rule).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class QualityRuleDetailApi(OrganizationApi):
    """A quality rule. Its metric and project are fixed: make a new rule instead.

    Deleting it keeps the actions it took.
    """

    roles = {"GET": STAFF, "PATCH": STAFF, "DELETE": STAFF}

    @extend_schema(responses=RuleOut)
    def get(self, request, pk: int):
        return Response(RuleOut(selectors.quality_rule_get(member=self.member, rule_id=pk)).data)

    @extend_schema(request=RuleUpdateIn, responses=RuleOut)
    def patch(self, request, pk: int):
        rule = selectors.quality_rule_get(member=self.member, rule_id=pk)
        fields = validated(
            RuleUpdateIn(data=request.data, partial=True),
            lambda passed: rules.quality_rule_check(
                organization=rule.organization, fields=passed, rule=rule
            ),
        )
        rule = rules.quality_rule_update(rule=rule, actor=request.user, **fields)
        return Response(RuleOut(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        rules.quality_rule_delete(
            rule=selectors.quality_rule_get(member=self.member, rule_id=pk), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class ProjectQualityActionListApi(OrganizationApi):
    """What quality rules did in a project, newest first."""

    roles = {"GET": STAFF}

    @extend_schema(responses=ActionOut(many=True))
    def get(self, request, pk: int):
        qs = selectors.quality_action_list(member=self.member, project_id=pk)
        return self.paginated(qs, ActionOut)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class AnnotatorQualityActionListApi(OrganizationApi):
    """What quality rules did to an annotator, in every project, newest first."""

    roles = {"GET": STAFF}

    @extend_schema(responses=ActionOut(many=True))
    def get(self, request, pk: int):
        qs = selectors.quality_action_list(member=self.member, annotator_id=pk)
        return self.paginated(qs, ActionOut)


class UndoIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class QualityActionUndoApi(OrganizationApi):
    """Undo what a quality rule did: the membership, skill level, certifications or gold rate
    are put back exactly as they were, and the undo is audited with the reason.

    The rule does not fire again for the same crossing; it does after the annotator recovers
    and crosses again.
    """

    roles = {"POST": QA_LEAD}

    @extend_schema(
        request=UndoIn,
        responses={
            200: ActionOut,
            409: error_response(
                "Undone already (`already_undone`), or what the action changed was changed "
                "again since; the message names it and nothing is restored (`superseded`)."
            ),
        },
    )
    def post(self, request, pk: int):
        action = selectors.quality_action_get(member=self.member, action_id=pk)
        data = UndoIn(data=request.data)
        data.is_valid(raise_exception=True)
        action = rules.quality_action_undo(
            action=action, actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(ActionOut(action).data)
