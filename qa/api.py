"""Quality's REST views: accuracy, gold health, and the ticket that opens the live socket."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from tasks.selectors import project_get
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi, annotator_of
from workforce.selectors import annotator_get
from workforce.tenancy import ANNOTATOR, ANYONE, STAFF

from . import selectors, tickets
from .gold import RECENT_N


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


class AccuracyOut(serializers.Serializer):
    """Accuracy as Assay always tells it: with its sample size and 95 % Wilson interval."""

    scored = serializers.IntegerField(help_text="n: gold tasks scored.")
    mean = serializers.FloatField(allow_null=True, help_text="k / n, k the sum of scores.")
    low = serializers.FloatField(allow_null=True, help_text="Lower bound of the interval.")
    high = serializers.FloatField(allow_null=True, help_text="Upper bound of the interval.")
    recent_mean = serializers.FloatField(
        allow_null=True, help_text=f"Mean of the latest {RECENT_N} scores (per project only)."
    )
    recent_n = serializers.IntegerField()


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
    """Every annotator's gold accuracy in the project, best lower bound first."""

    roles = {"GET": STAFF}

    @extend_schema(responses=AnnotatorAccuracyRowOut(many=True))
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        return self.paginated(selectors.project_accuracy(project=project), AnnotatorAccuracyRowOut)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class AnnotatorAccuracyApi(OrganizationApi):
    """An annotator's gold accuracy per project, and rolled up per kind and per domain."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(responses=AccuracyRollupOut)
    def get(self, request, pk: int):
        annotator = annotator_get(member=self.member, annotator_id=pk)
        return Response(AccuracyRollupOut(selectors.annotator_accuracy(annotator=annotator)).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class MyAccuracyApi(OrganizationApi):
    """Your own gold accuracy: aggregates only, counting gold checks up to the end of the last
    day (UTC), so that no figure moves while you work."""

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
