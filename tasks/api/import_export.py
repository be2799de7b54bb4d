"""Task imports and the project's export over REST."""

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from config.errors import ErrorCode, ValidationFailed
from config.openapi import error_response
from config.parsers import FormParser, MultiPartParser
from tasks import selectors
from tasks.exports import export_project, merge_rules
from tasks.openapi import EXPORT_FORMAT_PARAMETER, EXPORT_RESPONSES
from tasks.serializers import TaskImportOut
from tasks.services import imports
from tasks.task_files import FORMATS, guess_format
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.tenancy import MANAGER, STAFF


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskImportApi(OrganizationApi):
    """Import tasks from an uploaded JSON array, JSON Lines or CSV file, in the background.

    Every row is checked before the answer, in either mode (a million JSON Lines rows take a
    few seconds), and the job then imports the checked rows without reading the file again.
    ``on_error=abort`` (default) imports nothing if any row is invalid: a file with an invalid
    row is a 400 naming the rows. ``skip`` imports the valid rows and reports the others. Rows whose ``external_id`` exists are left unchanged,
    so re-importing is safe; an id twice in one file is an invalid row. An empty file, or a JSON
    file that is not an array, is a 400 in either mode (``tasks.task_files`` says what else a
    row error is). The answer is 202 with the import, which
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

    @extend_schema(
        request={"multipart/form-data": TaskImportInput},
        responses={
            202: TaskImportOut,
            409: error_response("The project is archived (`invalid_status`); nothing was kept."),
        },
    )
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
        task_import, refused = imports.task_import_start(
            project=project,
            upload=upload,
            fmt=fmt,
            on_error=data.validated_data["on_error"],
            actor=request.user,
        )
        if refused is not None:
            error = {
                "code": ErrorCode.INVALID_ROWS,
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
        task_import.refresh_from_db()
        location = reverse("project-import-detail", kwargs={"pk": pk, "import_id": task_import.pk})
        return Response(
            TaskImportOut(task_import).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": location},
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskImportListApi(OrganizationApi):
    """The project's imports, newest first."""

    roles = {"GET": STAFF}

    @extend_schema(responses=TaskImportOut(many=True))
    def get(self, request, pk: int):
        task_imports = selectors.task_import_list(member=self.member, project_id=pk)
        return self.paginated(task_imports, TaskImportOut)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskImportDetailApi(OrganizationApi):
    """One import: its progress while it runs, its report once it is done."""

    roles = {"GET": STAFF}

    @extend_schema(responses=TaskImportOut)
    def get(self, request, pk: int, import_id: int):
        task_import = selectors.task_import_get(
            member=self.member, project_id=pk, import_id=import_id
        )
        return Response(TaskImportOut(task_import).data)


def _export_description() -> str:
    rules = "\n".join(f"- `{kind}`: {rule}" for kind, rule in merge_rules().items())
    return (
        "Stream the project's annotated tasks in one of its kind's formats.\n\n"
        "Every task whose seats are all submitted goes out once with its final answer; with "
        "`include_incomplete=true` every task with submitted work does, and gold tasks only "
        "with `include_gold=true`. Work sent back for rework does not count until it is "
        "submitted again.\n\n"
        "The final answer is what review made final (the last version a reviewer accepted or "
        "corrected, while it is still the annotation's current version; of a task with several "
        "annotators, the one of the most recent such verdict), else the task's consensus, else "
        "its annotators' payloads merged by the "
        "kind, else its one annotation. A JSON Lines row names it as `source` (`review`, "
        "`consensus`, `merge`, `annotation`), and also says whether its task is `complete` and "
        "which `annotators` (ids, in submission order) worked on it.\n\n"
        "The kinds merge with equal weights and a quorum of more than half of the "
        "annotators:\n\n" + rules
    )


class ExportInput(serializers.Serializer):
    format = serializers.CharField(required=False, default="jsonl")
    include_incomplete = serializers.BooleanField(required=False, default=False)
    include_gold = serializers.BooleanField(required=False, default=False)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class ProjectExportApi(OrganizationApi):
    """Stream the project's annotated tasks in one of its kind's formats."""

    roles = {"GET": STAFF}

    @extend_schema(
        description=_export_description(),
        parameters=[
            EXPORT_FORMAT_PARAMETER,
            OpenApiParameter(
                "include_incomplete",
                bool,
                default=False,
                description="Tasks with some of their seats still open too.",
            ),
            OpenApiParameter("include_gold", bool, default=False, description="Gold tasks too."),
        ],
        responses={
            **EXPORT_RESPONSES,
            409: error_response(
                "The export could not be written whole: annotations use labels the label schema "
                "lacks (`conflict`). Nothing was sent."
            ),
        },
    )
    def get(self, request, pk: int):
        project = selectors.project_get(member=self.member, project_id=pk)
        options = ExportInput(data=request.query_params)
        options.is_valid(raise_exception=True)
        options = dict(options.validated_data)
        chunks, media_type, filename = export_project(project, options.pop("format"), **options)
        response = StreamingHttpResponse(chunks, content_type=media_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
