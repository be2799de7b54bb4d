"""Claims, assignments and annotations over REST: an annotator's work."""

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from config.openapi import error_response
from config.parsers import FormParser, JSONParser
from config.serializers import Flat
from config.storable import BIGINT_MAX
from tasks import selectors
from tasks.filters import AnnotationFilter, AssignmentFilter
from tasks.openapi import PayloadField
from tasks.serializers import AnnotationOut, AssignmentOut, ClaimOut
from tasks.services import claims
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi, annotator_of
from workforce.tenancy import ANNOTATOR, ANYONE


class NoClaimProject(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())


NoClaimOut = inline_serializer(
    "NoClaim",
    {
        "outcome": serializers.ChoiceField(
            choices=[
                claims.ClaimOutcome.AT_LIMIT,
                claims.ClaimOutcome.NOT_QUALIFIED,
                claims.ClaimOutcome.NO_PROJECTS,
            ]
        ),
        "message": serializers.CharField(),
        "projects": NoClaimProject(many=True),
    },
)


class NextClaimOut(serializers.Serializer):
    """The task a submit claimed for its annotator when asked (``next``), or why none."""

    outcome = serializers.ChoiceField(
        choices=[o for o in claims.ClaimOutcome if o != claims.ClaimOutcome.NOT_FOUND]
    )
    message = serializers.CharField(help_text="Why no task was claimed; empty when one was.")
    assignment = ClaimOut(allow_null=True, help_text="As `POST /claims/` answers it.")
    projects = NoClaimProject(many=True, help_text="For `not_qualified`: what keeps you off each.")


class SubmittedOut(AnnotationOut):
    next = NextClaimOut(required=False, help_text="Only when the submit asked for `next`.")


def next_claim_out(result: claims.ClaimResult) -> dict:
    return {
        "outcome": result.outcome,
        "message": result.message,
        "assignment": None if result.claimed is None else ClaimOut(result.claimed).data,
        "projects": result.projects or [],
    }


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class ClaimApi(OrganizationApi):
    """Claim the best task you may work on.

    201 with the task; 204 when nothing is open for you right now (the ``X-Reason`` header
    says so); 200 with ``outcome`` and ``message`` when you cannot claim at all: you hold as
    many tasks as you may (``at_limit``), you are not qualified for any of your projects
    (``not_qualified``, each project with the reasons), or you are on no active project
    (``no_projects``).
    """

    roles = {"POST": ANNOTATOR}
    token_in_statement = frozenset({"POST"})
    parser_classes = [JSONParser, FormParser]

    class ClaimInput(Flat):
        # Passed to the claim's SQL function as a bigint: a larger number would not match it.
        project = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX
        )

    @extend_schema(request=ClaimInput, responses={201: ClaimOut, 200: NoClaimOut, 204: None})
    def post(self, request):
        data = self.ClaimInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = data.validated_data.get("project")
        result = None
        if self.statement_token is not None:
            result = claims.claim_by_token(token=self.statement_token, project_id=project)
        if result is None:
            result = claims.claim_next(annotator=annotator_of(self.member), project_id=project)
        if result.claimed is not None:
            return Response(ClaimOut(result.claimed).data, status=status.HTTP_201_CREATED)
        if result.outcome == claims.ClaimOutcome.NONE_AVAILABLE:
            return Response(status=status.HTTP_204_NO_CONTENT, headers={"X-Reason": result.message})
        body = {
            "outcome": result.outcome,
            "message": result.message,
            "projects": result.projects or [],
        }
        return Response(body, status=status.HTTP_200_OK)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentListApi(OrganizationApi):
    """Assignments: annotators see their own, managers and QA leads the organization's. Work a
    reviewer sent back is active again, with the rejection in ``rework``."""

    roles = {"GET": ANYONE}
    filterset_class = AssignmentFilter

    @extend_schema(responses=AssignmentOut(many=True), filters=True)
    def get(self, request):
        return self.paginated(
            self.filtered(selectors.assignment_list(member=self.member)),
            AssignmentOut,
            lambda page: {"rework": selectors.assignment_rework_notes([a.pk for a in page])},
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentDetailApi(OrganizationApi):
    roles = {"GET": ANYONE}

    @extend_schema(responses=AssignmentOut)
    def get(self, request, pk: int):
        return Response(
            AssignmentOut(selectors.assignment_get(member=self.member, assignment_id=pk)).data
        )


# What ends an assignment for its holder: it cannot be extended or given back after that.
LEASE_CONFLICT = error_response(
    "The assignment is over: its lease lapsed and the task went to someone else (`lease_lost`), "
    "or it was submitted (`already_submitted`) or released (`already_released`)."
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentHeartbeatApi(OrganizationApi):
    """Extend your lease; 409 if it lapsed and the task went to someone else."""

    roles = {"POST": ANNOTATOR}

    @extend_schema(request=None, responses={200: AssignmentOut, 409: LEASE_CONFLICT})
    def post(self, request, pk: int):
        assignment = selectors.own_assignment(member=self.member, assignment_id=pk)
        assignment = claims.assignment_heartbeat(assignment=assignment)
        return Response(AssignmentOut(assignment).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentReleaseApi(OrganizationApi):
    """Give the task back for someone else; you will not be offered it again."""

    roles = {"POST": ANNOTATOR}

    @extend_schema(request=None, responses={200: AssignmentOut, 409: LEASE_CONFLICT})
    def post(self, request, pk: int):
        assignment = selectors.own_assignment(member=self.member, assignment_id=pk)
        assignment = claims.assignment_release(assignment=assignment)
        return Response(AssignmentOut(assignment).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentSubmitApi(OrganizationApi):
    """Submit your work. Sending the same payload again returns the same annotation."""

    roles = {"POST": ANNOTATOR}
    token_in_statement = frozenset({"POST"})
    parser_classes = [JSONParser]

    class SubmitInput(Flat):
        payload = PayloadField(help_text="The project's kind's payload.")
        # At most claims.MAX_ACTIVE_SECONDS, and never more than the assignment has lasted.
        active_seconds = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=claims.MAX_ACTIVE_SECONDS
        )
        next = serializers.BooleanField(
            default=False,
            help_text="Also claim your next task, as `POST /claims/` would, answered in `next`: "
            "one request per task. A submit sent again answers the task you hold instead.",
        )

    @extend_schema(
        request=SubmitInput,
        responses={
            201: SubmittedOut,
            200: SubmittedOut,
            409: error_response(
                "The lease was lost or the task released, or the work was submitted already "
                "with another payload (`lease_lost`, `already_released`, `already_submitted`)."
            ),
        },
        examples=[
            OpenApiExample(
                "Boxes",
                value={
                    "payload": {"boxes": [{"label": "car", "x": 10, "y": 20, "w": 50, "h": 30}]},
                    "active_seconds": 42,
                },
            )
        ],
    )
    def post(self, request, pk: int):
        assignment = None
        if self.statement_token is not None:
            assignment = selectors.own_assignment_by_token(self.statement_token, pk)
        if assignment is None:
            assignment = selectors.own_assignment(member=self.member, assignment_id=pk)
        data = self.SubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data.pop("next"):
            annotation, created, claimed = claims.assignment_submit_next(
                assignment=assignment, **data.validated_data
            )
            body = AnnotationOut(annotation).data
            body["next"] = next_claim_out(claimed)
        else:
            annotation, created = claims.assignment_submit(
                assignment=assignment, **data.validated_data
            )
            body = AnnotationOut(annotation).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AnnotationListApi(OrganizationApi):
    """Annotations: annotators see their own, managers and QA leads the organization's."""

    roles = {"GET": ANYONE}
    filterset_class = AnnotationFilter

    @extend_schema(responses=AnnotationOut(many=True), filters=True)
    def get(self, request):
        return self.paginated(
            self.filtered(selectors.annotation_list(member=self.member)), AnnotationOut
        )
