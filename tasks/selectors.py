"""Reads of projects, tasks, assignments and annotations, scoped to what the member may see."""

from datetime import datetime

from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from workforce.models import Annotator, AnnotatorSkill, Certification, Member, Role
from workforce.selectors import STAFF_ROLES

from .models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ProjectMember,
    ProjectRole,
    ProjectStatus,
    Slot,
    SlotState,
    Task,
)


def project_list(*, member: Member) -> QuerySet[Project]:
    """Projects of the organization; annotators and reviewers see the ones they belong to."""
    qs = Project.objects.filter(organization=member.organization).prefetch_related(
        "required_domains"
    )
    if member.role not in STAFF_ROLES:
        qs = qs.filter(members__annotator__member=member, members__is_active=True)
    return qs


def project_get(*, member: Member, project_id: int) -> Project:
    return get_object_or_404(project_list(member=member), pk=project_id)


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


def claim_candidates(*, annotator: Annotator, now: datetime, project_id: int | None = None):
    """Projects the annotator works in, in claim order, with what decides eligibility.

    Each project carries ``skill_level`` (the annotator's level in the project's kind, -1 if
    none), ``missing_domains`` (required domains without a certification in force now) and
    ``live`` (the annotator's unexpired leases there). One query.
    """
    qs = Project.objects.filter(
        status=ProjectStatus.ACTIVE,
        members__annotator=annotator,
        members__is_active=True,
        members__role=ProjectRole.ANNOTATOR,
    )
    if project_id is not None:
        qs = qs.filter(pk=project_id)
    skill_level = AnnotatorSkill.objects.filter(annotator=annotator, skill=OuterRef("kind"))
    in_force = Certification.objects.in_force(now).filter(
        annotator=annotator, domain_id=OuterRef("domain_id")
    )
    missing = (
        Project.required_domains.through.objects.filter(project_id=OuterRef("pk"))
        .exclude(Exists(in_force))
        .values("project_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    live = (
        Assignment.objects.filter(
            annotator=annotator,
            project_id=OuterRef("pk"),
            status=AssignmentStatus.ACTIVE,
            lease_expires_at__gt=now,
        )
        .values("project_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    return qs.annotate(
        skill_level=Coalesce(Subquery(skill_level.values("level")[:1]), Value(-1)),
        missing_domains=Coalesce(Subquery(missing, output_field=IntegerField()), Value(0)),
        live=Coalesce(Subquery(live, output_field=IntegerField()), Value(0)),
    ).only("id", "kind", "required_skill_level", "max_concurrent_tasks", "lease_seconds")


def live_assignment_count(*, annotator: Annotator, now: datetime) -> int:
    return Assignment.objects.filter(
        annotator=annotator, status=AssignmentStatus.ACTIVE, lease_expires_at__gt=now
    ).count()


def assignment_list(*, member: Member) -> QuerySet[Assignment]:
    """Annotators see their own assignments; managers and QA leads see the organization's."""
    qs = Assignment.objects.filter(project__organization=member.organization).select_related(
        "task", "project", "annotator__member__user"
    )
    if member.role not in STAFF_ROLES:
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
    if member.role not in STAFF_ROLES:
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
