"""Projects, import and export, staffing, claims, assignments and annotations over REST."""

from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from config.errors import NotFound, ValidationFailed
from config.views import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.models import Annotator, Skill
from workforce.selectors import annotator_list
from workforce.tenancy import ANNOTATOR, ANYONE, MANAGER, STAFF

from . import selectors
from .exports import export_project
from .filters import AnnotationFilter, AssignmentFilter
from .imports import FORMATS, guess_format
from .models import ProjectRole, ProjectStatus
from .serializers import (
    AnnotationOut,
    AnnotatorProjectOut,
    AssignmentOut,
    ClaimOut,
    ProjectMemberOut,
    ProjectOut,
    TaskImportOut,
)
from .services import claims, imports, projects
from .staffing import staffing_rank


def _annotator_of(member) -> Annotator:
    annotator = getattr(member, "annotator", None)
    if annotator is None:
        raise NotFound("You have no annotator profile.", code="no_annotator_profile")
    return annotator


class ProjectFields(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    client = serializers.CharField(max_length=200, required=False, allow_blank=True)
    instructions = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Skill.choices)
    label_schema = serializers.JSONField(required=False)
    required_skill_level = serializers.IntegerField(required=False, min_value=0, max_value=5)
    required_domains = serializers.ListField(child=serializers.SlugField(), required=False)
    overlap = serializers.IntegerField(required=False)
    gold_rate = serializers.FloatField(required=False)
    lease_seconds = serializers.IntegerField(required=False)
    max_concurrent_tasks = serializers.IntegerField(required=False)
    priority = serializers.IntegerField(required=False, min_value=-1000, max_value=1000)
    deadline = serializers.DateTimeField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=ProjectStatus.choices, required=False)


class ProjectUpdateFields(ProjectFields):
    kind = None
    name = serializers.CharField(max_length=200, required=False)


PROJECT_EXAMPLE = OpenApiExample(
    "Street scenes",
    request_only=True,
    value={
        "name": "Street scenes batch 7",
        "client": "Acme Mobility",
        "kind": "bbox",
        "label_schema": {"labels": [{"name": "car"}, {"name": "pedestrian"}]},
        "required_skill_level": 3,
        "required_domains": ["autonomous-driving"],
        "overlap": 3,
        "gold_rate": 0.05,
        "lease_seconds": 1800,
        "priority": 10,
        "deadline": "2027-01-31T00:00:00Z",
        "status": "active",
    },
)


def _project_serializer(member):
    return ProjectOut if member.role in STAFF else AnnotatorProjectOut


def _project_out(member, pk: int) -> dict:
    project = selectors.project_get(member=member, project_id=pk)
    progress = selectors.project_progress([project.pk])
    return _project_serializer(member)(project, context={"progress": progress}).data


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectListApi(OrganizationApi):
    """Projects with their progress; annotators see the projects they belong to."""

    roles = {"GET": ANYONE, "POST": MANAGER}

    @extend_schema(responses=ProjectOut(many=True))
    def get(self, request):
        return self.paginated(
            selectors.project_list(member=self.member),
            _project_serializer(self.member),
            lambda page: {"progress": selectors.project_progress([p.pk for p in page])},
        )

    @extend_schema(request=ProjectFields, responses={201: ProjectOut}, examples=[PROJECT_EXAMPLE])
    def post(self, request):
        data = ProjectFields(data=request.data)
        data.is_valid(raise_exception=True)
        project = projects.project_create(
            organization=self.member.organization, actor=request.user, **data.validated_data
        )
        return Response(_project_out(self.member, project.pk), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectDetailApi(OrganizationApi):
    """A project with its progress. ``PATCH`` changes its settings.

    Once the project has tasks its overlap can be raised but not lowered (409). A background
    job then gives every task the new seats, so ``annotations_needed`` grows as it runs.
    """

    roles = {"GET": ANYONE, "PATCH": MANAGER}

    @extend_schema(responses=ProjectOut)
    def get(self, request, pk: int):
        return Response(_project_out(self.member, pk))

    @extend_schema(request=ProjectUpdateFields, responses=ProjectOut)
    def patch(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        data = ProjectUpdateFields(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        projects.project_update(project=project, actor=request.user, **data.validated_data)
        return Response(_project_out(self.member, pk))


class MembersInput(serializers.Serializer):
    annotators = serializers.ListField(child=serializers.IntegerField(), min_length=1)
    role = serializers.ChoiceField(choices=ProjectRole.choices, default=ProjectRole.ANNOTATOR)


def _add_members(view: OrganizationApi, project_id: int):
    project = selectors.project_get(member=view.member, project_id=project_id)
    data = MembersInput(data=view.request.data)
    data.is_valid(raise_exception=True)
    ids = set(data.validated_data["annotators"])
    found = list(annotator_list(member=view.member).filter(pk__in=ids))
    missing = sorted(ids - {a.pk for a in found})
    if missing:
        raise ValidationFailed(
            "Unknown annotator.", fields={"annotators": [f"Unknown annotator {missing[0]}."]}
        )
    members = projects.project_members_add(
        project=project, annotators=found, role=data.validated_data["role"], actor=view.request.user
    )
    return Response(ProjectMemberOut(members, many=True).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectMembersApi(OrganizationApi):
    roles = {"GET": STAFF, "POST": MANAGER}

    @extend_schema(responses=ProjectMemberOut(many=True))
    def get(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        return self.paginated(selectors.project_members(project=project), ProjectMemberOut)

    @extend_schema(
        request=MembersInput,
        responses={201: ProjectMemberOut(many=True)},
        examples=[OpenApiExample("Add", value={"annotators": [4, 5], "role": "annotator"})],
    )
    def post(self, request, pk: int):
        return _add_members(self, pk)


StaffingRow = inline_serializer(
    "StaffingRow",
    {
        "annotator": serializers.IntegerField(),
        "username": serializers.CharField(),
        "name": serializers.CharField(),
        "status": serializers.CharField(),
        "qualified": serializers.BooleanField(),
        "reasons": serializers.ListField(child=serializers.CharField()),
        "skill_level": serializers.IntegerField(allow_null=True),
        "is_member": serializers.BooleanField(),
        "load": serializers.DictField(),
        "accuracy": serializers.FloatField(allow_null=True),
    },
    many=True,
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectStaffingApi(OrganizationApi):
    """Annotators ranked for the project: qualified first, with the reasons others are not."""

    roles = {"GET": STAFF, "POST": MANAGER}

    @extend_schema(responses=StaffingRow)
    def get(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        return Response(staffing_rank(project=project, now=timezone.now()))

    @extend_schema(request=MembersInput, responses={201: ProjectMemberOut(many=True)})
    def post(self, request, pk: int):
        return _add_members(self, pk)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskImportApi(OrganizationApi):
    """Import tasks from an uploaded JSON array, JSON Lines or CSV file, in the background.

    ``on_error=abort`` (default) imports nothing if any row is invalid: every row is checked
    before the answer, and a file with an invalid row is a 400 naming the rows. ``skip`` imports
    the valid rows and reports the others. Rows whose ``external_id`` exists are left unchanged,
    so re-importing is safe. The answer is 202 with the import, which
    ``GET /api/v1/projects/{id}/imports/{import}`` follows until it is ``done`` or ``failed``.
    While the job broker is down the import stays ``queued``; it runs once the broker is back.
    """

    roles = {"POST": MANAGER}
    parser_classes = [MultiPartParser, FormParser]

    class TaskImportInput(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=FORMATS, required=False)
        on_error = serializers.ChoiceField(
            choices=[imports.OnError.ABORT, imports.OnError.SKIP], default=imports.OnError.ABORT
        )

    @extend_schema(request={"multipart/form-data": TaskImportInput}, responses={202: TaskImportOut})
    def post(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        data = self.TaskImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        fmt = data.validated_data.get("format") or guess_format(upload.name)
        if fmt is None:
            raise ValidationFailed(
                "Cannot tell the file's format.",
                fields={"format": ["Say json, jsonl or csv, or name the file with that suffix."]},
            )
        job, refused = imports.task_import_start(
            project=project,
            upload=upload,
            fmt=fmt,
            on_error=data.validated_data["on_error"],
            actor=request.user,
        )
        if refused is not None:
            error = {
                "code": "invalid_rows",
                "message": f"{refused.invalid} of {refused.rows} rows are invalid; "
                "nothing was imported.",
                "fields": {
                    "file": [f"row {e.row}: {e.field}: {e.message}" for e in refused.errors[:50]]
                },
            }
            return Response(
                {"error": error, "report": refused.as_dict()}, status=status.HTTP_400_BAD_REQUEST
            )
        # Without a broker the job ran already (the embedded defaults): answer with its outcome.
        job.refresh_from_db()
        location = reverse("project-import-detail", kwargs={"pk": pk, "import_id": job.pk})
        return Response(
            TaskImportOut(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskImportListApi(OrganizationApi):
    """The project's imports, newest first."""

    roles = {"GET": STAFF}

    @extend_schema(responses=TaskImportOut(many=True))
    def get(self, request, pk: int):
        jobs = selectors.task_import_list(member=self.member, project_id=pk)
        return self.paginated(jobs, TaskImportOut)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskImportDetailApi(OrganizationApi):
    """One import: its progress while it runs, its report once it is done."""

    roles = {"GET": STAFF}

    @extend_schema(responses=TaskImportOut)
    def get(self, request, pk: int, import_id: int):
        job = selectors.task_import_get(member=self.member, project_id=pk, import_id=import_id)
        return Response(TaskImportOut(job).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class ProjectExportApi(OrganizationApi):
    """Stream the project's annotated tasks in one of its kind's formats."""

    roles = {"GET": STAFF}

    @extend_schema(
        parameters=[OpenApiParameter("format", str, description="jsonl, coco, conll, spacy")],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        fmt = request.query_params.get("format", "jsonl")
        chunks, media_type, filename = export_project(project, fmt)
        response = StreamingHttpResponse(chunks, content_type=media_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


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
        "projects": inline_serializer(
            "NoClaimProject",
            {
                "project": serializers.IntegerField(),
                "name": serializers.CharField(),
                "reasons": serializers.ListField(child=serializers.CharField()),
            },
            many=True,
        ),
    },
)


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
    parser_classes = [JSONParser, FormParser]

    class ClaimInput(serializers.Serializer):
        project = serializers.IntegerField(required=False, allow_null=True)

    @extend_schema(request=ClaimInput, responses={201: ClaimOut, 200: NoClaimOut, 204: None})
    def post(self, request):
        data = self.ClaimInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = claims.claim_next(
            annotator=_annotator_of(self.member), project_id=data.validated_data.get("project")
        )
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
    roles = {"GET": ANYONE}
    filterset_class = AssignmentFilter

    @extend_schema(responses=AssignmentOut(many=True), filters=True)
    def get(self, request):
        return self.paginated(
            self.filtered(selectors.assignment_list(member=self.member)), AssignmentOut
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentDetailApi(OrganizationApi):
    roles = {"GET": ANYONE}

    @extend_schema(responses=AssignmentOut)
    def get(self, request, pk: int):
        return Response(
            AssignmentOut(selectors.assignment_get(member=self.member, assignment_id=pk)).data
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentHeartbeatApi(OrganizationApi):
    """Extend your lease; 409 if it lapsed and the task went to someone else."""

    roles = {"POST": ANNOTATOR}

    @extend_schema(request=None, responses=AssignmentOut)
    def post(self, request, pk: int):
        assignment = selectors.own_assignment(member=self.member, assignment_id=pk)
        assignment = claims.assignment_heartbeat(assignment=assignment)
        return Response(AssignmentOut(assignment).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentReleaseApi(OrganizationApi):
    """Give the task back for someone else; you will not be offered it again."""

    roles = {"POST": ANNOTATOR}

    @extend_schema(request=None, responses=AssignmentOut)
    def post(self, request, pk: int):
        assignment = selectors.own_assignment(member=self.member, assignment_id=pk)
        assignment = claims.assignment_release(assignment=assignment)
        return Response(AssignmentOut(assignment).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["work"])
class AssignmentSubmitApi(OrganizationApi):
    """Submit your work. Sending the same payload again returns the same annotation."""

    roles = {"POST": ANNOTATOR}
    parser_classes = [JSONParser]

    class SubmitInput(serializers.Serializer):
        payload = serializers.JSONField()
        active_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=0)

    @extend_schema(
        request=SubmitInput,
        responses={201: AnnotationOut, 200: AnnotationOut},
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
        assignment = selectors.own_assignment(member=self.member, assignment_id=pk)
        data = self.SubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        annotation, created = claims.assignment_submit(
            assignment=assignment, actor=request.user, **data.validated_data
        )
        return Response(
            AnnotationOut(annotation).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


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
