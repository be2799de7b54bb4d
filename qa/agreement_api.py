"""A project's agreement report and Dawid-Skene consensus over REST (``qa.agreement_report``)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.api import validated
from config.errors import Conflict
from config.openapi import error_response
from config.serializers import Prepared
from tasks.selectors import project_get
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.tenancy import STAFF

from . import agreement_report
from .task_agreement import CATEGORICAL

MAX_MIN_SHARED = 1_000_000


class AgreementQuery(serializers.Serializer):
    min_shared = serializers.IntegerField(
        required=False,
        default=agreement_report.DEFAULT_MIN_SHARED,
        min_value=1,
        max_value=MAX_MIN_SHARED,
    )


class CacheFields(Prepared):
    computed_at = serializers.DateTimeField()
    seconds = serializers.FloatField(help_text="How long building the report took.")
    cached = serializers.BooleanField(
        help_text="Answered from the report built at `computed_at`: no work arrived since."
    )


class MeanPairwiseOut(Prepared):
    tasks = serializers.IntegerField(help_text="Tasks with a stored agreement.")
    value = serializers.FloatField(
        allow_null=True, help_text="The mean of their pairwise agreement (mean `compare`)."
    )


class CohenPairOut(Prepared):
    a = serializers.IntegerField(help_text="Annotator id, the lower of the two.")
    b = serializers.IntegerField(help_text="Annotator id.")
    shared = serializers.IntegerField(help_text="Tasks both labelled.")
    kappa = serializers.FloatField(
        allow_null=True, help_text="Null where undefined (both used one same label throughout)."
    )


class FleissOut(Prepared):
    raters = serializers.IntegerField(help_text="The project's overlap.")
    tasks = serializers.IntegerField(help_text="Tasks with exactly that many labels.")
    kappa = serializers.FloatField(allow_null=True)


class KrippendorffOut(Prepared):
    nominal = serializers.FloatField(allow_null=True)
    ordinal = serializers.FloatField(
        allow_null=True, required=False, help_text="With an ordinal or interval `scale`."
    )
    interval = serializers.FloatField(
        allow_null=True, required=False, help_text="With an interval `scale`."
    )


class AnnotatorAgreementOut(Prepared):
    annotator = serializers.IntegerField()
    compared = serializers.IntegerField(help_text="Their tasks that have a consensus.")
    agreement = serializers.FloatField(
        allow_null=True,
        help_text="Categorical kinds: the share of their labels equal to the consensus; "
        "others: their mean `compare` against the consensus.",
    )


class AgreementReportOut(CacheFields):
    kind = serializers.CharField()
    categorical = serializers.BooleanField()
    tasks = serializers.IntegerField(help_text="Tasks measured.")
    mean_pairwise = MeanPairwiseOut()
    annotators = AnnotatorAgreementOut(many=True)
    min_shared = serializers.IntegerField(allow_null=True)
    cohen = CohenPairOut(many=True, allow_null=True)
    fleiss = FleissOut(allow_null=True)
    krippendorff = KrippendorffOut(allow_null=True)
    classes = serializers.ListField(child=serializers.CharField(), allow_null=True)
    confusion = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        allow_null=True,
        help_text="Label counts: rows the consensus class, columns the label given.",
    )


class DawidSkeneAnnotatorOut(Prepared):
    annotator = serializers.IntegerField()
    labels = serializers.IntegerField()
    confusion = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="P(label given, column | true class, row); each row sums to 1.",
    )


class DawidSkeneOut(CacheFields):
    tasks = serializers.IntegerField()
    classes = serializers.ListField(child=serializers.CharField())
    priors = serializers.ListField(child=serializers.FloatField())
    iterations = serializers.IntegerField()
    converged = serializers.BooleanField()
    annotators = DawidSkeneAnnotatorOut(many=True)


def _answer(report: agreement_report.Report) -> dict:
    return report.body | {
        "computed_at": report.computed_at,
        "seconds": report.seconds,
        "cached": report.cached,
    }


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class ProjectAgreementApi(OrganizationApi):
    """How much the project's annotators agree.

    Categorical kinds: Cohen's kappa for every annotator pair sharing at least `min_shared`
    tasks, Fleiss' kappa over the tasks with the project's overlap of labels, Krippendorff's
    alpha (nominal; ordinal and interval when the label schema's `scale` says so), each
    annotator's agreement with the consensus and the label confusion against it. Every kind:
    the mean pairwise agreement of the tasks and each annotator's mean score against the
    consensus. Built on demand and served from a cache until new work arrives.
    """

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "min_shared",
                {"type": "integer", "minimum": 1, "maximum": MAX_MIN_SHARED},
                default=agreement_report.DEFAULT_MIN_SHARED,
                description=f"Cohen's kappa only for pairs sharing at least this many tasks "
                f"(1 to {MAX_MIN_SHARED}).",
            )
        ],
        responses=AgreementReportOut,
    )
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        query = validated(AgreementQuery(data=request.query_params))
        report = agreement_report.project_agreement_report(
            project=project, min_shared=query["min_shared"]
        )
        return Response(AgreementReportOut(_answer(report)).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["quality"])
class ProjectDawidSkeneApi(OrganizationApi):
    """Dawid-Skene over the project's labels (categorical kinds): each annotator's confusion
    matrix, the class priors, the EM iterations and whether they converged. Built on demand and
    served from a cache until new work arrives."""

    roles = {"GET": STAFF}
    pagination_class = None

    @extend_schema(
        responses={
            200: DawidSkeneOut,
            409: error_response("The project's kind is not categorical (`conflict`)."),
        }
    )
    def get(self, request, pk: int):
        project = project_get(member=self.member, project_id=pk)
        if project.kind not in CATEGORICAL:
            raise Conflict(
                f"Dawid-Skene models labels from a fixed set; a {project.kind} project has none."
            )
        report = agreement_report.project_dawid_skene(project=project)
        return Response(DawidSkeneOut(_answer(report)).data)
