"""Reads of projects, tasks, assignments and annotations, scoped to what the member may see."""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
)
from django.shortcuts import get_object_or_404

from workforce.models import Annotator, Member, Role
from workforce.tenancy import STAFF

from .models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ProjectMember,
    Slot,
    SlotState,
    Task,
    TaskImport,
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
    tasks = (
        Task.objects.filter(project_id__in=project_ids)
        .values("project_id")
        .annotate(total=Count("id"), complete=Count("id", filter=Q(completed_at__isnull=False)))
    )
    for row in tasks:
        progress[row["project_id"]].update(tasks_total=row["total"], tasks_complete=row["complete"])
    slots = (
        Slot.objects.filter(project_id__in=project_ids)
        .values("project_id")
        .annotate(
            needed=Count("id"),
            submitted=Count("id", filter=Q(state=SlotState.DONE)),
            started=Count(
                "task_id",
                distinct=True,
                filter=Q(state__in=[SlotState.LEASED, SlotState.DONE])
                & Q(task__completed_at__isnull=True),
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


@dataclass(frozen=True, slots=True)
class ClaimCandidate:
    """One project an annotator works in, with what decides whether they may claim there."""

    id: int
    kind: str
    required_skill_level: int
    max_concurrent_tasks: int
    lease_seconds: int
    skill_level: int  # the annotator's level in the project's kind, -1 if none
    missing_domains: int  # required domains without a certification in force
    live: int  # the annotator's unexpired leases in the project

    @property
    def pk(self) -> int:
        return self.id

    @property
    def eligible(self) -> bool:
        return (
            self.skill_level >= self.required_skill_level
            and not self.missing_domains
            and self.live < self.max_concurrent_tasks
        )


@dataclass(frozen=True, slots=True)
class ClaimContext:
    status: str
    max_concurrent_tasks: int
    live: int  # unexpired leases across all projects
    candidates: list[ClaimCandidate]


# The eligibility read of the ``tasks_claim`` PostgreSQL function (migration tasks 0002), for the
# claim's Python path on SQLite; the claim tests run every rule through both. The certification
# test mirrors ``CertificationQuerySet.in_force``.
_CLAIM_CONTEXT_SQL = """
WITH me AS (
    SELECT w.id, w.status, w.max_concurrent_tasks FROM workforce_annotator w
    WHERE w.id = %(annotator)s{lock}
)
SELECT me.status, me.max_concurrent_tasks,
    (SELECT COUNT(*) FROM tasks_assignment a
     WHERE a.annotator_id = me.id AND a.status = 'active' AND a.lease_expires_at > %(now)s),
    p.id, p.kind, p.required_skill_level, p.max_concurrent_tasks, p.lease_seconds,
    COALESCE((SELECT k.level FROM workforce_annotatorskill k
              WHERE k.annotator_id = me.id AND k.skill = p.kind), -1),
    (SELECT COUNT(*) FROM tasks_project_required_domains rd
     WHERE rd.project_id = p.id AND NOT EXISTS (
         SELECT 1 FROM workforce_certification c
         WHERE c.annotator_id = me.id AND c.domain_id = rd.domain_id AND c.status = 'active'
           AND (c.expires_at IS NULL OR c.expires_at > %(now)s))),
    (SELECT COUNT(*) FROM tasks_assignment a
     WHERE a.annotator_id = me.id AND a.project_id = p.id AND a.status = 'active'
       AND a.lease_expires_at > %(now)s)
FROM me
LEFT JOIN tasks_projectmember m
    ON m.annotator_id = me.id AND m.is_active AND m.role = 'annotator'
LEFT JOIN tasks_project p
    ON p.id = m.project_id AND p.status = 'active' {project_filter}
ORDER BY p.priority DESC, p.deadline ASC NULLS LAST, p.id
"""


def claim_context(*, annotator_id: int, now: datetime, project_id: int | None) -> ClaimContext:
    """Lock the annotator's row and read everything a claim decides on, in one query.

    The lock serialises one annotator's concurrent claims so their limits hold; claims of
    other annotators never touch the row. Projects come in claim order: priority, then
    deadline (none last).
    """
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    project_filter = "AND p.id = %(project)s" if project_id is not None else ""
    sql = _CLAIM_CONTEXT_SQL.format(lock=lock, project_filter=project_filter)
    params = {"annotator": annotator_id, "now": now, "project": project_id}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    status, max_concurrent, live = rows[0][:3]
    candidates = [ClaimCandidate(*row[3:]) for row in rows if row[3] is not None]
    return ClaimContext(status, max_concurrent, live, candidates)


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


def own_assignment(*, member: Member, assignment_id: int) -> Assignment:
    """The member's own assignment: only its holder may heartbeat, release or submit it."""
    return get_object_or_404(
        Assignment.objects.select_related("project", "task"),
        pk=assignment_id,
        annotator__member=member,
    )


def annotation_list(*, member: Member) -> QuerySet[Annotation]:
    qs = Annotation.objects.filter(project__organization=member.organization).select_related(
        "annotator__member__user"
    )
    if member.role not in STAFF:
        qs = qs.filter(annotator__member=member)
    return qs


def staffing_candidates(*, project: Project, now: datetime) -> QuerySet[Annotator]:
    """Every annotator of the project's organization with what staffing needs, in few queries."""
    return (
        Annotator.objects.filter(member__organization_id=project.organization_id)
        .exclude(member__role__in=[Role.MANAGER])
        .select_related("member__user")
        .prefetch_related("skills", "certifications__domain")
        .annotate(
            live=Count(
                "assignments",
                filter=Q(assignments__status=AssignmentStatus.ACTIVE)
                & Q(assignments__lease_expires_at__gt=now),
            ),
            is_member=Exists(
                ProjectMember.objects.filter(
                    project=project, annotator=OuterRef("pk"), is_active=True
                )
            ),
        )
    )
