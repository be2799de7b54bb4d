"""Creating and changing projects, and staffing them."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Max, Min

from config.errors import Conflict, ErrorCode, ValidationFailed
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
from tasks.locks import lock_project, lock_project_overlap, lock_seats
from tasks.models import (
    MAX_OVERLAP,
    Project,
    ProjectMember,
    ProjectRole,
    ProjectStatus,
    SlotState,
    Task,
)
from workforce.models import Annotator, AnnotatorStatus, AuditVerb, Domain, Organization
from workforce.queue import enqueue
from workforce.services import audit_record, model_update

# Fields a project update may change, and those frozen once the project has tasks.
EDITABLE = {
    "name",
    "client",
    "instructions",
    "label_schema",
    "required_skill_level",
    "required_domains",
    "overlap",
    "gold_rate",
    "lease_seconds",
    "max_concurrent_tasks",
    "priority",
    "deadline",
    "status",
}
# Tasks are validated against the kind at import.
FROZEN_WITH_TASKS = {"kind"}
# Tasks whose seats are added in one transaction when the overlap is raised.
SEATS_BATCH_SIZE = 2_000


def _validate(fields: dict, kind: str) -> None:
    errors: dict[str, list[str]] = {}
    if "label_schema" in fields:
        issues = get_kind(kind).validate_schema(fields["label_schema"])
        errors.update(issues_by_path(issue.under("label_schema") for issue in issues))
    if "overlap" in fields and not 1 <= fields["overlap"] <= MAX_OVERLAP:
        errors["overlap"] = [f"{fields['overlap']} is not between 1 and {MAX_OVERLAP}."]
    if "gold_rate" in fields and not 0 <= fields["gold_rate"] <= 1:
        errors["gold_rate"] = [f"{fields['gold_rate']} is not between 0 and 1."]
    if "required_skill_level" in fields and not 0 <= fields["required_skill_level"] <= 5:
        errors["required_skill_level"] = [f"{fields['required_skill_level']} is not 0 to 5."]
    if "lease_seconds" in fields and not 60 <= fields["lease_seconds"] <= 7 * 86_400:
        errors["lease_seconds"] = ["Must be between 60 seconds and 7 days."]
    if "max_concurrent_tasks" in fields and not 1 <= fields["max_concurrent_tasks"] <= 1000:
        errors["max_concurrent_tasks"] = ["Must be between 1 and 1000."]
    if errors:
        raise ValidationFailed("Invalid project.", fields=errors)


def _domains(organization: Organization, slugs: list[str]) -> list[Domain]:
    domains = list(Domain.objects.filter(organization=organization, slug__in=slugs))
    unknown = sorted(set(slugs) - {d.slug for d in domains})
    if unknown:
        raise ValidationFailed(
            "Unknown domain.", fields={"required_domains": [f"Unknown domain {unknown[0]!r}."]}
        )
    return domains


@transaction.atomic
def project_create(
    *, organization: Organization, actor: AbstractBaseUser | None, name: str, kind: str, **fields
) -> Project:
    """Create a project; its label schema is validated by its kind."""
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={f: ["Unknown field."] for f in unknown})
    fields.setdefault("label_schema", {})
    _validate(fields, kind)
    domains = _domains(organization, fields.pop("required_domains", []))
    project = Project.objects.create(organization=organization, name=name, kind=kind, **fields)
    project.required_domains.set(domains)
    audit_record(
        organization=organization,
        actor=actor,
        verb=AuditVerb.PROJECT_CREATED,
        target=project,
        after={"name": name, "kind": kind, "overlap": project.overlap},
    )
    return project


@transaction.atomic
def project_update(*, project: Project, actor: AbstractBaseUser | None, **fields) -> Project:
    """Change a project's settings.

    Once tasks exist the overlap can only grow: the job ``tasks.add_overlap_seats`` then gives
    every task its new seats (once the broker is back, should it be down). Fewer would take
    seats from work already started.
    """
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValidationFailed(
            "Unknown fields.", fields={f: ["Cannot be changed."] for f in unknown}
        )
    _validate(fields, project.kind)
    project = lock_project(project.pk)
    has_tasks = project.tasks.exists()
    frozen = [f for f in FROZEN_WITH_TASKS & set(fields) if fields[f] != getattr(project, f)]
    if frozen and has_tasks:
        raise Conflict(
            f"{frozen[0]} cannot change once the project has tasks.",
            code=ErrorCode.FROZEN,
            fields={frozen[0]: ["Fixed once tasks are imported."]},
        )
    overlap = fields.get("overlap", project.overlap)
    if has_tasks and overlap < project.overlap:
        raise Conflict(
            "The overlap can only grow once the project has tasks.",
            code=ErrorCode.FROZEN,
            fields={"overlap": [f"Tasks have {project.overlap} seats each; it cannot go lower."]},
        )
    if has_tasks and overlap > project.overlap:
        # Imported here: the jobs module imports these services.
        from tasks.jobs import add_overlap_seats

        enqueue(add_overlap_seats, project.pk)
    if "status" in fields and fields["status"] not in ProjectStatus.values:
        raise ValidationFailed("Unknown status.", fields={"status": ["Unknown status."]})
    if "required_domains" in fields:
        fields["required_domains"] = _domains(project.organization, fields["required_domains"])
    changes = model_update(project, fields)
    if changes:
        audit_record(
            organization=project.organization,
            actor=actor,
            verb=AuditVerb.PROJECT_UPDATED,
            target=project,
            changes=changes,
        )
    return project


@transaction.atomic
def project_members_add(
    *,
    project: Project,
    annotators: list[Annotator],
    role: str,
    actor: AbstractBaseUser | None,
) -> list[ProjectMember]:
    """Staff a project: add annotators (or reactivate them) in a role.

    Qualification is not required to join (a manager may staff ahead of a certification);
    the claim checks it every time.
    """
    if role not in ProjectRole.values:
        raise ValidationFailed("Unknown role.", fields={"role": [f"Unknown role {role!r}."]})
    for annotator in annotators:
        if annotator.status == AnnotatorStatus.OFFBOARDED:
            raise ValidationFailed(
                "Offboarded annotators cannot join projects.",
                fields={"annotators": [f"{annotator} is offboarded."]},
            )
    members = []
    for annotator in sorted(annotators, key=lambda a: a.pk):
        member, _created = ProjectMember.objects.update_or_create(
            project=project, annotator=annotator, defaults={"role": role, "is_active": True}
        )
        members.append(member)
        audit_record(
            organization=project.organization,
            actor=actor,
            verb=AuditVerb.PROJECT_MEMBER_ADDED,
            target=project,
            annotator=annotator,
            after={"project": project.pk, "role": role},
        )
    return members


_INSERT_SEAT = (
    "INSERT INTO tasks_slot (task_id, project_id, seat, state, task_priority) "
    "VALUES (%s, %s, %s, %s, %s)"
)


def project_seats_add(*, project: Project) -> int:
    """Give every task of the project a seat for each unit of its overlap; return seats added.

    Runs in batches of tasks, each in a transaction of its own, and can run again at any time:
    it adds only what is missing. A new seat opens at once if the seat before it was already
    taken, as a claim would have opened it; the others wait their turn. A task that was complete
    needs the new seats filled, so it is complete no longer.
    """
    # Tasks imported after the raise come with every seat; those that exist now are the work.
    ids = Task.objects.filter(project=project).aggregate(first=Min("pk"), last=Max("pk"))
    if ids["first"] is None:
        return 0
    added, first = 0, ids["first"]
    # Ranges of ids rather than "the next N tasks": a bounded range keeps every plan on the
    # primary key, where ORDER BY ... LIMIT could be planned as a sort of the whole project.
    while first <= ids["last"]:
        after = first + SEATS_BATCH_SIZE - 1
        with transaction.atomic():
            overlap = lock_project_overlap(project.pk)
            tasks = Task.objects.filter(project=project, pk__gte=first, pk__lte=after)
            batch = dict(tasks.values_list("pk", "priority"))
            if not batch:
                # Other projects' tasks in between: go straight to this project's next one.
                later = Task.objects.filter(project=project, pk__gt=after)
                first = later.aggregate(next=Min("pk"))["next"] or ids["last"] + 1
                continue
            # Locked, waiting for claims in flight: a claim taking a task's last seat either
            # commits first (and its seat reads as taken here) or finds the new seat after.
            seats = lock_seats(project.pk, first, after)
            last = {task: (seat, state) for task, seat, state in seats}
            new = [
                (
                    task,
                    project.pk,
                    seat,
                    SlotState.OPEN
                    if seat == top + 1 and state in (SlotState.LEASED, SlotState.DONE)
                    else SlotState.WAITING,
                    batch[task],
                )
                for task, (top, state) in last.items()
                for seat in range(top + 1, overlap)
            ]
            with connection.cursor() as cursor:
                # Rows, not model instances: building and compiling 2,000 Slot objects per batch
                # was most of the job's time. The driver sends them in one pipeline.
                cursor.executemany(_INSERT_SEAT, new)
            # The range keeps the planner on the primary key; the list alone read the table.
            reopened = Task.objects.filter(pk__gte=first, pk__lte=after, completed_at__isnull=False)
            reopened.filter(pk__in={row[0] for row in new}).update(completed_at=None)
            added += len(new)
        first = after + 1
    return added
