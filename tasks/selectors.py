"""Reads of projects, tasks, assignments and annotations, scoped to what the member may see."""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
from django.http import Http404
from django.shortcuts import get_object_or_404

from config.rows import JoinedRows
from tasks.kinds import get_kind
from workforce.models import Annotator, Member, Role
from workforce.tenancy import STAFF, TOKEN_ANNOTATOR_SQL

from . import events
from .models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ProjectMember,
    ProjectRole,
    Slot,
    SlotState,
    Task,
    TaskImport,
    TaskStatus,
)


def project_list(*, member: Member) -> QuerySet[Project]:
    """Projects of the organization; annotators and reviewers see the ones they belong to."""
    qs = Project.objects.filter(organization=member.organization).prefetch_related(
        "required_domains"
    )
    if member.role not in STAFF:
        qs = qs.filter(members__annotator__member=member, members__is_active=True)
    return qs


def project_get(*, member: Member, project_id: int) -> Project:
    return get_object_or_404(project_list(member=member), pk=project_id)


def task_import_list(*, member: Member, project_id: int) -> QuerySet[TaskImport]:
    project = project_get(member=member, project_id=project_id)
    return TaskImport.objects.filter(project=project).select_related("created_by")


def task_import_get(*, member: Member, project_id: int, import_id: int) -> TaskImport:
    return get_object_or_404(task_import_list(member=member, project_id=project_id), pk=import_id)


def project_progress(project_ids: list[int]) -> dict[int, dict]:
    """Task and annotation counts per project, in two grouped queries whatever the page size."""
    progress = {
        pid: {
            "tasks_total": 0,
            "tasks_complete": 0,
            "tasks_in_progress": 0,
            "annotations_needed": 0,
            "annotations_submitted": 0,
        }
        for pid in project_ids
    }
    # Gold tasks are no part of the work: they have no seats either.
    tasks = (
        Task.objects.filter(project_id__in=project_ids, is_gold=False)
        .values("project_id")
        .annotate(total=Count("id"), complete=Count("id", filter=Q(completed_at__isnull=False)))
    )
    for row in tasks:
        progress[row["project_id"]].update(tasks_total=row["total"], tasks_complete=row["complete"])
    slots = (
        Slot.objects.filter(project_id__in=project_ids)
        .values("project_id")
        .annotate(
            # A cancelled task's closed seats are needed no more.
            needed=Count("id", filter=~Q(state=SlotState.CLOSED)),
            submitted=Count("id", filter=Q(state=SlotState.DONE)),
            started=Count(
                "task_id",
                distinct=True,
                filter=Q(state__in=[SlotState.LEASED, SlotState.DONE])
                & Q(task__completed_at__isnull=True)
                & Q(task__cancelled_at__isnull=True),
            ),
        )
    )
    for row in slots:
        progress[row["project_id"]].update(
            annotations_needed=row["needed"],
            annotations_submitted=row["submitted"],
            tasks_in_progress=row["started"],
        )
    return progress


def project_members(*, project: Project) -> QuerySet[ProjectMember]:
    return project.members.select_related("annotator__member__user").order_by("id")


def with_task_status(tasks: QuerySet[Task]) -> QuerySet[Task]:
    """Annotate ``status``: a ``TaskStatus``, read from the task and its seats.

    Started means a seat leased (lapsed or not) or submitted, as the project's progress counts
    ``tasks_in_progress``.
    """
    started = Exists(
        Slot.objects.filter(task=OuterRef("pk"), state__in=[SlotState.LEASED, SlotState.DONE])
    )
    return tasks.annotate(
        status=Case(
            When(cancelled_at__isnull=False, then=Value(TaskStatus.CANCELLED)),
            When(completed_at__isnull=False, then=Value(TaskStatus.COMPLETE)),
            When(started, then=Value(TaskStatus.IN_PROGRESS)),
            default=Value(TaskStatus.OPEN),
            output_field=CharField(),
        )
    )


def task_list(*, member: Member, project_id: int) -> QuerySet[Task]:
    """The project's tasks for staff, and for reviewers on projects they belong to.

    Each row has its status; a task's data and gold answer stay in the database (the detail
    has them), and its seats are counted per page (``task_seat_counts``), so that neither the
    count nor a page joins a million tasks' seats. Annotators never list tasks: the view
    refuses them.
    """
    project = project_get(member=member, project_id=project_id)
    tasks = Task.objects.filter(project=project).defer("data", "gold_answer")
    return with_task_status(tasks).order_by("id")


def task_seat_counts(task_ids: list[int]) -> dict[int, dict[str, int]]:
    """Each task's seats counted by state, in one grouped query whatever the number of tasks."""
    counts = {task: dict.fromkeys(SlotState.values, 0) for task in task_ids}
    rows = (
        Slot.objects.filter(task_id__in=task_ids)
        .values_list("task_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for task, state, n in rows:
        counts[task][state] = n
    return counts


def task_get(*, member: Member, project_id: int, task_id: int) -> Task:
    """One task of the project with its seats and everyone who held it, in three queries.

    The annotations' payloads are not read: the annotation list has them.
    """
    project = project_get(member=member, project_id=project_id)
    holders = (
        Assignment.objects.select_related("annotator__member__user", "annotation")
        .defer("annotation__payload")
        .order_by("leased_at", "id")
    )
    tasks = (
        Task.objects.filter(project=project)
        .select_related("project__organization")
        .prefetch_related(
            Prefetch("slots", queryset=Slot.objects.order_by("seat")),
            Prefetch("assignments", queryset=holders),
        )
    )
    return get_object_or_404(with_task_status(tasks), pk=task_id)


@dataclass(frozen=True, slots=True)
class Qualification:
    """What ``tasks_qualification`` says of one annotator and one project."""

    qualified: bool
    skill_level: int | None  # the annotator's level in the project's kind; None without a row
    unmet: dict[int, str | None]  # required domain id -> state of the certification held there


_QUALIFICATIONS_SQL = """
SELECT a.id, p.id, q.qualified, q.skill_level, q.unmet
FROM unnest(%s::bigint[]) AS a(id)
CROSS JOIN unnest(%s::bigint[]) AS p(id)
CROSS JOIN LATERAL tasks_qualification(a.id, p.id, %s) AS q
"""


def qualifications(
    *, annotator_ids: list[int], project_ids: list[int], now: datetime
) -> dict[tuple[int, int], Qualification]:
    """Read eligibility as the claim decides it, for every (annotator, project) pair given.

    One query whatever the number of pairs; keys are ``(annotator id, project id)``.
    """
    with connection.cursor() as cursor:
        cursor.execute(_QUALIFICATIONS_SQL, [annotator_ids, project_ids, now])
        rows = cursor.fetchall()
    # Django leaves jsonb undecoded on raw cursors.
    return {
        (annotator, project): Qualification(
            qualified, level, {int(domain): state for domain, state in json.loads(unmet).items()}
        )
        for annotator, project, qualified, level, unmet in rows
    }


def assignment_list(*, member: Member) -> QuerySet[Assignment]:
    """Annotators see their own assignments; managers and QA leads see the organization's."""
    qs = Assignment.objects.filter(project__organization=member.organization).select_related(
        "task", "project", "annotator__member__user"
    )
    if member.role not in STAFF:
        qs = qs.filter(annotator__member=member)
    return qs


def assignment_get(*, member: Member, assignment_id: int) -> Assignment:
    return get_object_or_404(assignment_list(member=member), pk=assignment_id)


# An assignment with the project and task a submit validates against, in one prepared statement.
# The project's and task's timestamps and the gold answer are left unread: nothing that acts on
# an assignment uses them (gold scoring reads its task again, in the submit's transaction).
_OWN_TABLES = [(Assignment, "a"), (Project, "p"), (Task, "t")]
_OWN_UNREAD = {
    "p": ("created_at", "updated_at", "deadline"),
    "t": ("created_at", "completed_at", "cancelled_at", "gold_retired_at", "gold_answer"),
}
_OWN = JoinedRows(_OWN_TABLES, deferred=_OWN_UNREAD)
# The same with its holder, as an answer names them, for a request whose token the read
# authenticates: what the request would otherwise have read first.
_OWN_HELD = JoinedRows(
    [*_OWN_TABLES, (Annotator, "w"), (Member, "m"), (get_user_model(), "u")],
    deferred={
        **_OWN_UNREAD,
        "w": ("created_at", "updated_at", "languages"),
        "m": ("created_at", "updated_at"),
        "u": ("password", "last_login", "date_joined", "first_name", "last_name", "email"),
    },
)


def _own_sql(rows: JoinedRows, where: str) -> str:
    # Every name comes from the models; the ids and the token are parameters. The last column
    # says whether a fresh submission there would have work left for its transaction
    # (``events.submitted_reacts``), so that a submit in such a project goes straight to one.
    return (
        f"SELECT {rows.columns}, {events.submitted_reacts('a.project_id')} "  # noqa: S608
        f"FROM {rows.table('a')} a "
        f"JOIN {rows.table('p')} p ON p.id = a.project_id "
        f"JOIN {rows.table('t')} t ON t.id = a.task_id {where}"
    )


@functools.cache
def _own_sqls(_submitted: events.SubmittedSql | None) -> tuple[str, str]:
    """The two reads of an assignment by its holder, by annotator and by token; built again
    when another app says how it reacts to a submission."""
    return (
        _own_sql(_OWN, "WHERE a.id = %(assignment)s AND a.annotator_id = %(annotator)s"),
        _own_sql(
            _OWN_HELD,
            f"JOIN {_OWN_HELD.table('w')} w ON w.id = a.annotator_id "
            f"JOIN {_OWN_HELD.table('m')} m ON m.id = w.member_id "
            f"JOIN {_OWN_HELD.table('u')} u ON u.id = m.user_id "
            f"WHERE a.id = %(assignment)s AND a.annotator_id = {TOKEN_ANNOTATOR_SQL}",
        ),
    )


def own_assignment(*, member: Member, assignment_id: int) -> Assignment:
    """The member's own assignment, with its project and task: only its holder may heartbeat,
    release or submit it; ``submission_reacts`` tells its submit whether the project reacts to
    a submission in its transaction.

    Its holder is the member's annotator profile, which the request has already read: it is
    attached as it is, so that what is answered about the assignment reads nothing again.
    """
    annotator = getattr(member, "annotator", None)
    with connection.cursor() as cursor:
        cursor.execute(
            _own_sqls(events.submitted_sql())[0],
            {"assignment": assignment_id, "annotator": annotator.pk if annotator else None},
        )
        row = cursor.fetchone()
    if row is None:
        raise Http404("No Assignment matches the given query.")
    assignment, assignment.project, assignment.task = _OWN.instances(row[:-1])
    assignment.annotator, assignment.submission_reacts = annotator, row[-1]
    return assignment


def own_assignment_by_token(token: dict, assignment_id: int) -> Assignment | None:
    """``own_assignment`` for the annotator a request's token acts as with one of the roles the
    request allows (``TOKEN_ANNOTATOR_SQL``'s parameters), found in the same statement. None
    when there is no such annotator or it holds no such assignment: the caller authenticates
    the request, as every other, and asks ``own_assignment``, which says why."""
    with connection.cursor() as cursor:
        cursor.execute(_own_sqls(events.submitted_sql())[1], {**token, "assignment": assignment_id})
        row = cursor.fetchone()
    if row is None:
        return None
    assignment, assignment.project, assignment.task, annotator, member, user = _OWN_HELD.instances(
        row[:-1]
    )
    assignment.annotator, annotator.member, member.user = annotator, member, user
    assignment.submission_reacts = row[-1]
    return assignment


# Why work is back with its annotator is quality's to say, and ``tasks`` never imports ``qa``:
# qa registers its reader in ``QaConfig.ready()``. It takes assignment ids and answers, for each
# one whose work a reviewer rejected and that was not resubmitted since, the rejection (the
# shape of ``serializers.ReworkOut``).
ReworkReader = Callable[[list[int]], dict[int, dict]]
_rework_reader: ReworkReader | None = None


def rework_reader_set(reader: ReworkReader) -> None:
    global _rework_reader
    _rework_reader = reader


def assignment_rework_notes(assignment_ids: list[int]) -> dict[int, dict]:
    """The rejection behind each given assignment that is back for rework, in a fixed number of
    queries whatever the number of assignments."""
    if _rework_reader is None or not assignment_ids:
        return {}
    return _rework_reader(assignment_ids)


def annotation_list(*, member: Member) -> QuerySet[Annotation]:
    qs = Annotation.objects.filter(project__organization=member.organization).select_related(
        "annotator__member__user"
    )
    if member.role not in STAFF:
        qs = qs.filter(annotator__member=member)
    return qs


def annotation_get(*, member: Member, annotation_id: int) -> Annotation:
    """One annotation the member may see, with its task and project."""
    qs = annotation_list(member=member).select_related("task__project__organization")
    return get_object_or_404(qs, pk=annotation_id)


def staffing_candidates(*, project: Project, now: datetime) -> QuerySet[Annotator]:
    """Every annotator of the project's organization with what staffing needs, in few queries.

    Annotators: the members whose role is ``annotator``, the only ones the claim serves.
    Reviewers have a working profile too (for the skills and certifications review layers
    ask for), but they are no annotation capacity: they are staffed for review
    (``qa.selectors.review_staffing``).

    ``live`` counts unexpired leases everywhere, ``live_here`` those in the project, and
    ``is_member`` says whether they are an active annotator on it, as the claim reads them.
    """
    live = Q(assignments__status=AssignmentStatus.ACTIVE) & Q(assignments__lease_expires_at__gt=now)
    return (
        Annotator.objects.filter(
            member__organization_id=project.organization_id, member__role=Role.ANNOTATOR
        )
        .select_related("member__user")
        .prefetch_related("certifications")
        .annotate(
            live=Count("assignments", filter=live),
            live_here=Count("assignments", filter=live & Q(assignments__project=project)),
            is_member=Exists(
                ProjectMember.objects.filter(
                    project=project,
                    annotator=OuterRef("pk"),
                    is_active=True,
                    role=ProjectRole.ANNOTATOR,
                )
            ),
        )
    )


# The names stored work uses, per schema list, that ``allowed`` lacks: every annotation's payload
# and every gold answer of the project, read through the kind's paths in one pass over each
# table (the CTE is inlined, so each table is scanned once whatever the number of paths).
_NAMES_OUTSIDE_SQL = """
WITH work AS (
    SELECT payload AS doc FROM tasks_annotation WHERE project_id = %(project)s
    UNION ALL
    SELECT gold_answer FROM tasks_task
    WHERE %(gold)s AND project_id = %(project)s AND gold_answer IS NOT NULL
)
SELECT DISTINCT paths.list, name #>> '{}'
FROM work
CROSS JOIN (SELECT * FROM unnest(%(lists)s::text[], %(paths)s::jsonpath[], %(allowed)s::jsonb[]))
    AS paths(list, path, allowed)
CROSS JOIN LATERAL jsonb_path_query(work.doc, paths.path) AS name
WHERE NOT paths.allowed ? (name #>> '{}')
"""


def names_outside_schema(
    *, project: Project, schema: dict, gold: bool = True
) -> dict[str, list[str]]:
    """Return the names the project's stored work uses that ``schema`` lacks, by schema list.

    Stored work is every annotation and, with ``gold``, every gold answer. Empty when
    ``schema`` keeps them all:
    a schema change that would orphan work, or an export that would meet a name it cannot
    write, is told apart before anything changes or is sent.
    """
    kind = get_kind(project.kind)
    names = kind.schema_names(schema)
    lists = list(kind.label_paths)
    params = {
        "project": project.pk,
        "gold": gold,
        "lists": lists,
        "paths": [kind.label_paths[key] for key in lists],
        # jsonb arrays of names, so that ``?`` tests membership (SQL has no array of arrays).
        "allowed": [json.dumps(sorted(names[key])) for key in lists],
    }
    outside: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_NAMES_OUTSIDE_SQL, params)
        for key, name in sorted(cursor.fetchall()):
            outside.setdefault(key, []).append(name)
    return outside
