"""Projects, their members and staffing over REST."""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from config.api import validated
from config.errors import ValidationFailed
from config.openapi import error_response
from config.serializers import KnownFieldsOnly
from tasks import selectors
from tasks.models import MAX_OVERLAP, SETTABLE_PROJECT_STATUSES, ProjectRole
from tasks.openapi import LabelSchemaField
from tasks.serializers import AnnotatorProjectOut, ProjectMemberOut, ProjectOut
from tasks.services import projects
from tasks.staffing import staffing_rank
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.models import Skill
from workforce.selectors import annotator_list
from workforce.tenancy import ANYONE, MANAGER, STAFF


class Rate(serializers.FloatField):
    """A number from 0 to 1; ``true`` and ``false`` are not numbers, whatever Python says."""

    def __init__(self, min_value=0, **kwargs):
        super().__init__(min_value=min_value, max_value=1, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProjectFields(serializers.Serializer):
    # The ranges below are the ones tasks.services.projects checks, stated for the schema.
    name = serializers.CharField(max_length=200)
    client = serializers.CharField(max_length=200, required=False, allow_blank=True)
    instructions = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Skill.choices)
    # Every kind's schema lists its labels, so a project cannot go without one.
    label_schema = LabelSchemaField()
    required_skill_level = serializers.IntegerField(required=False, min_value=0, max_value=5)
    required_domains = serializers.ListField(child=serializers.SlugField(), required=False)
    overlap = serializers.IntegerField(required=False, min_value=1, max_value=MAX_OVERLAP)
    gold_rate = Rate(required=False)
    newcomer_gold_rate = Rate(required=False)
    newcomer_gold_tasks = serializers.IntegerField(required=False, min_value=0, max_value=1000)
    gold_max_exposure = Rate(required=False)
    accuracy_target = Rate(required=False, min_value=0.5)
    agreement_threshold = Rate(required=False)
    overlap_max = serializers.IntegerField(required=False, min_value=1, max_value=MAX_OVERLAP)
    lease_seconds = serializers.IntegerField(required=False, min_value=60, max_value=7 * 86_400)
    max_concurrent_tasks = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    priority = serializers.IntegerField(required=False, min_value=-1000, max_value=1000)
    deadline = serializers.DateTimeField(required=False, allow_null=True)
    # Archiving has its own operation (``POST .../archive``), which ends live leases.
    status = serializers.ChoiceField(choices=SETTABLE_PROJECT_STATUSES, required=False)


class ProjectUpdateFields(KnownFieldsOnly, ProjectFields):
    # Changes only while the project has no tasks; the service says so otherwise.
    kind = serializers.ChoiceField(choices=Skill.choices, required=False)
    name = serializers.CharField(max_length=200, required=False)
    label_schema = LabelSchemaField(required=False)


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
        organization = self.member.organization
        fields = validated(
            ProjectFields(data=request.data),
            lambda passed: projects.project_check(
                organization=organization,
                kind=passed.pop("kind", None),
                fields={k: v for k, v in passed.items() if k != "name"},
                unknown_reason="Unknown field.",
            ),
        )
        project = projects.project_create(organization=organization, actor=request.user, **fields)
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

    @extend_schema(
        request=ProjectUpdateFields,
        responses={
            200: ProjectOut,
            409: error_response(
                "The change does not fit the project's work: a setting fixed once tasks exist "
                "(`frozen`), labels or keypoints stored work uses (`in_use`), or a return to "
                "draft with work in progress (`conflict`), an archived project "
                "(`invalid_status`), or an import writing its tasks (`import_in_progress`)."
            ),
        },
    )
    def patch(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        fields = validated(
            ProjectUpdateFields(data=request.data, partial=True),
            lambda passed: projects.project_check(
                organization=project.organization,
                kind=passed.pop("kind", project.kind),
                fields=passed,
                unknown_reason="Cannot be changed.",
            ),
        )
        projects.project_update(project=project, actor=request.user, **fields)
        return Response(_project_out(self.member, pk))


# Staffing an archived project waits until it is unarchived.
ARCHIVED_409 = error_response("The project is archived (`invalid_status`).")


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
            "Unknown annotator.",
            fields={"annotators": [f"Unknown annotator {pk}." for pk in missing]},
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
        responses={201: ProjectMemberOut(many=True), 409: ARCHIVED_409},
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
        "accuracy": inline_serializer(
            "StaffingAccuracy",
            {
                "kind": serializers.DictField(
                    allow_null=True,
                    help_text="Accuracy in the project's kind: scored, mean, low, high "
                    "(the 95 % Wilson interval); null where nothing was scored.",
                ),
                "domains": serializers.DictField(
                    help_text="The same, per required domain where known, by slug."
                ),
            },
        ),
    },
    many=True,
)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectStaffingApi(OrganizationApi):
    """Annotators ranked for the project: qualified first, with the reasons others are not.

    The members whose role is annotator, whom the claim serves; reviewers are ranked for the
    project's review at ``GET /projects/{id}/review-staffing``."""

    roles = {"GET": STAFF, "POST": MANAGER}
    pagination_class = None  # the ranking is read whole, best first

    @extend_schema(responses=StaffingRow)
    def get(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        return Response(staffing_rank(project=project, now=timezone.now()))

    @extend_schema(
        request=MembersInput, responses={201: ProjectMemberOut(many=True), 409: ARCHIVED_409}
    )
    def post(self, request, pk: int):
        return _add_members(self, pk)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectMemberDetailApi(OrganizationApi):
    """``DELETE`` takes an annotator off the project: their live leases there end at once.

    The membership stays, inactive, as history; adding them again reactivates it. Their
    submitted work stays.
    """

    roles = {"DELETE": MANAGER}

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, annotator_id: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        annotator = get_object_or_404(annotator_list(member=self.member), pk=annotator_id)
        projects.project_member_remove(project=project, annotator=annotator, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ArchiveInput(serializers.Serializer):
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectArchiveApi(OrganizationApi):
    """Archive the project: nobody claims its tasks and live leases on it end; its settings and
    tasks are read-only (409) until it is unarchived; it still exports. Archiving again answers
    the archived project."""

    roles = {"POST": MANAGER}

    @extend_schema(
        request=ArchiveInput,
        responses={
            200: ProjectOut,
            409: error_response("An import is writing the project's tasks (`import_in_progress`)."),
        },
    )
    def post(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        data = ArchiveInput(data=request.data)
        data.is_valid(raise_exception=True)
        projects.project_archive(project=project, actor=request.user, **data.validated_data)
        return Response(_project_out(self.member, pk))


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["projects"])
class ProjectUnarchiveApi(OrganizationApi):
    """Bring an archived project back, ``paused``: activate it (``PATCH``) when work resumes.
    A project that is not archived is a 409."""

    roles = {"POST": MANAGER}

    @extend_schema(
        request=ArchiveInput,
        responses={
            200: ProjectOut,
            409: error_response(
                "The project is not archived (`invalid_status`), or an import is writing its "
                "tasks (`import_in_progress`)."
            ),
        },
    )
    def post(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        data = ArchiveInput(data=request.data)
        data.is_valid(raise_exception=True)
        projects.project_unarchive(project=project, actor=request.user, **data.validated_data)
        return Response(_project_out(self.member, pk))
