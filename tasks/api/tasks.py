"""A project's tasks for staff over REST: list, detail, cancel, delete, and gold."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from config.errors import ValidationFailed
from config.openapi import error_response
from tasks import selectors
from tasks.filters import TaskFilter
from tasks.openapi import PayloadField
from tasks.serializers import (
    QaLeadTaskDetailOut,
    ReviewerTaskDetailOut,
    ReviewerTaskRowOut,
    TaskDetailOut,
    TaskRowOut,
)
from tasks.services import gold, tasks
from workforce.api_base import ORGANIZATION_PARAMETER, OrganizationApi
from workforce.models import Role
from workforce.tenancy import MANAGER, STAFF

# Reviewers read the tasks of the projects they belong to; whether a task is gold is not theirs.
READERS = (*STAFF, Role.REVIEWER)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskListApi(OrganizationApi):
    """The project's tasks, by id, with their status and seats counted by state.

    ``status`` is ``open`` (no seat taken), ``in_progress`` (a seat leased or submitted),
    ``complete`` (every seat submitted) or ``cancelled``. Managers and QA leads also filter by
    ``gold``; reviewers neither see nor filter it.
    """

    roles = {"GET": READERS}
    filterset_class = TaskFilter

    @extend_schema(responses=TaskRowOut(many=True), filters=True)
    def get(self, request, pk: int):
        reviewer = self.member.role == Role.REVIEWER
        if reviewer and "gold" in request.query_params:
            raise ValidationFailed(
                "Reviewers cannot filter by gold.", fields={"gold": ["Not available to reviewers."]}
            )
        qs = self.filtered(selectors.task_list(member=self.member, project_id=pk))
        return self.paginated(
            qs,
            ReviewerTaskRowOut if reviewer else TaskRowOut,
            lambda page: {"seats": selectors.task_seat_counts([task.pk for task in page])},
        )


def _detail_serializer(role: str) -> type[TaskDetailOut]:
    """Only QA leads read a gold answer; reviewers do not learn that a task is gold."""
    return {Role.QA_LEAD: QaLeadTaskDetailOut, Role.REVIEWER: ReviewerTaskDetailOut}.get(
        role, TaskDetailOut
    )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskDetailApi(OrganizationApi):
    """A task: its data, status, seats with their state, and everyone who held it and when.

    QA leads also read ``gold_answer``. ``DELETE`` removes a task nobody holds or submitted
    (409 otherwise: cancel it instead, which keeps the submitted work).
    """

    roles = {"GET": READERS, "DELETE": MANAGER}

    @extend_schema(responses=QaLeadTaskDetailOut)
    def get(self, request, pk: int, task_id: int):
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        return Response(_detail_serializer(self.member.role)(task).data)

    @extend_schema(
        responses={
            204: None,
            409: error_response(
                "Someone holds the task or submitted work for it: cancel it instead (`in_use`); "
                "or the project is archived (`invalid_status`)."
            ),
        }
    )
    def delete(self, request, pk: int, task_id: int):
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        tasks.task_delete(task=task, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["tasks"])
class TaskCancelApi(OrganizationApi):
    """Stop serving a task: its seats nobody submitted close, live leases on it end at once.

    Submitted work stays (in the export too). Cancelling again answers the cancelled task; a
    complete task is a 409.
    """

    roles = {"POST": MANAGER}

    @extend_schema(
        request=CancelInput,
        responses={
            200: TaskDetailOut,
            409: error_response(
                "The task is complete, or its project archived (`invalid_status`)."
            ),
        },
    )
    def post(self, request, pk: int, task_id: int):
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        tasks.task_cancel(task=task, actor=request.user, **data.validated_data)
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        return Response(TaskDetailOut(task).data)


class GoldInput(serializers.Serializer):
    answer = PayloadField(help_text="The correct payload, of the project's kind.")
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


GOLD_409 = error_response("The task is cancelled, or its project archived (`invalid_status`).")


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["gold"])
class TaskGoldApi(OrganizationApi):
    """Make a task gold with its correct answer, or correct a gold task's answer.

    The answer is validated by the project's kind (400 naming each ``answer`` path). A regular
    task made gold loses its seats: a live lease on it ends as a cancel ends it, and work
    submitted on it is scored against the answer by a job, as after any correction.
    """

    roles = {"POST": STAFF}

    @extend_schema(request=GoldInput, responses={200: QaLeadTaskDetailOut, 409: GOLD_409})
    def post(self, request, pk: int, task_id: int):
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        data = GoldInput(data=request.data)
        data.is_valid(raise_exception=True)
        gold.task_gold_set(task=task, actor=request.user, **data.validated_data)
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        return Response(_detail_serializer(self.member.role)(task).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["gold"])
class TaskGoldRetireApi(OrganizationApi):
    """Stop serving a gold task; its scores stay. Setting its answer again serves it again."""

    roles = {"POST": STAFF}

    @extend_schema(
        request=CancelInput,
        responses={
            200: QaLeadTaskDetailOut,
            409: error_response("The task is not gold, or its project archived."),
        },
    )
    def post(self, request, pk: int, task_id: int):
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        gold.task_gold_retire(task=task, actor=request.user, **data.validated_data)
        task = selectors.task_get(member=self.member, project_id=pk, task_id=task_id)
        return Response(_detail_serializer(self.member.role)(task).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["gold"])
class AnnotationPromoteApi(OrganizationApi):
    """Make an annotation's task gold with the annotation as its answer; its author is not
    scored on it."""

    roles = {"POST": STAFF}

    @extend_schema(request=CancelInput, responses={200: QaLeadTaskDetailOut, 409: GOLD_409})
    def post(self, request, pk: int):
        annotation = selectors.annotation_get(member=self.member, annotation_id=pk)
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        task = gold.annotation_promote(
            annotation=annotation, actor=request.user, **data.validated_data
        )
        task = selectors.task_get(member=self.member, project_id=task.project_id, task_id=task.pk)
        return Response(_detail_serializer(self.member.role)(task).data)
