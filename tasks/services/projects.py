"""Creating and changing projects, and staffing them."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Max, Min
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors, NotFound, ValidationFailed
from tasks import selectors
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
from tasks.locks import lock_project, lock_project_overlap, lock_seats, seats_run
from tasks.models import (
    MAX_OVERLAP,
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ProjectMember,
    ProjectRole,
    ProjectStatus,
    SlotState,
    Task,
)
from tasks.services.tasks import project_leases_end
from workforce.models import Annotator, AnnotatorStatus, AuditVerb, Domain, Organization
from workforce.queue import catch_up, enqueue
from workforce.services import audit_record, model_update

# Fields a project update may change besides its kind (which ``project_update`` takes apart).
EDITABLE = {
    "name",
    "client",
    "instructions",
    "label_schema",
    "required_skill_level",
    "required_domains",
    "overlap",
    "gold_rate",
    "newcomer_gold_rate",
    "newcomer_gold_tasks",
    "gold_max_exposure",
    "accuracy_target",
    "agreement_threshold",
    "overlap_max",
    "lease_seconds",
    "max_concurrent_tasks",
    "priority",
    "deadline",
    "status",
}
# Tasks whose seats are added in one transaction when the overlap is raised.
SEATS_BATCH_SIZE = 2_000
# Projects seated by one run of the catch-up; the next run takes the rest.
SEATS_CATCH_UP_LIMIT = 20


def project_check(
    *, organization: Organization, kind: str | None, fields: dict, unknown_reason: str
) -> list[Domain]:
    """Refuse project settings that cannot be, naming every bad field at once.

    Return the required domains the slugs name. ``kind`` is None when the request's own kind
    was refused: the label schema cannot be judged then. ``unknown_reason`` is what a field not
    in ``EDITABLE`` is told.
    """
    problems = FieldErrors()
    for name in sorted(set(fields) - EDITABLE):
        problems.add(name, unknown_reason)
    if kind is not None and "label_schema" in fields:
        issues = get_kind(kind).validate_schema(fields["label_schema"])
        problems.update(issues_by_path(issue.under("label_schema") for issue in issues))
    if "overlap" in fields and not 1 <= fields["overlap"] <= MAX_OVERLAP:
        problems.add("overlap", f"{fields['overlap']} is not between 1 and {MAX_OVERLAP}.")
    if "gold_rate" in fields and not 0 <= fields["gold_rate"] <= 1:
        problems.add("gold_rate", f"{fields['gold_rate']} is not between 0 and 1.")
    if "newcomer_gold_rate" in fields and not 0 <= fields["newcomer_gold_rate"] <= 1:
        problems.add(
            "newcomer_gold_rate", f"{fields['newcomer_gold_rate']} is not between 0 and 1."
        )
    if "newcomer_gold_tasks" in fields and not 0 <= fields["newcomer_gold_tasks"] <= 1000:
        problems.add("newcomer_gold_tasks", "Must be between 0 and 1000.")
    if "gold_max_exposure" in fields and not 0 < fields["gold_max_exposure"] <= 1:
        problems.add("gold_max_exposure", "Must be above 0 and at most 1.")
    if "accuracy_target" in fields and not 0.5 <= fields["accuracy_target"] <= 1:
        problems.add("accuracy_target", "Must be between 0.5 and 1.")
    if "agreement_threshold" in fields and not 0 <= fields["agreement_threshold"] <= 1:
        problems.add("agreement_threshold", "Must be between 0 and 1.")
    if "overlap_max" in fields and not 1 <= fields["overlap_max"] <= MAX_OVERLAP:
        problems.add("overlap_max", f"{fields['overlap_max']} is not between 1 and {MAX_OVERLAP}.")
    if "required_skill_level" in fields and not 0 <= fields["required_skill_level"] <= 5:
        problems.add("required_skill_level", f"{fields['required_skill_level']} is not 0 to 5.")
    if "lease_seconds" in fields and not 60 <= fields["lease_seconds"] <= 7 * 86_400:
        problems.add("lease_seconds", "Must be between 60 seconds and 7 days.")
    if "max_concurrent_tasks" in fields and not 1 <= fields["max_concurrent_tasks"] <= 1000:
        problems.add("max_concurrent_tasks", "Must be between 1 and 1000.")
    if "status" in fields and fields["status"] not in ProjectStatus.values:
        problems.add("status", "Unknown status.")
    elif fields.get("status") == ProjectStatus.ARCHIVED:
        # Archiving ends live leases and is audited as such: POST .../archive does it.
        problems.add("status", "Archive a project with POST /api/v1/projects/{id}/archive.")
    slugs = fields.get("required_domains") or []
    domains = list(Domain.objects.filter(organization=organization, slug__in=slugs))
    for slug in sorted(set(slugs) - {d.slug for d in domains}):
        problems.add("required_domains", f"Unknown domain {slug!r}.")
    problems.raise_if_any("Invalid project.")
    return domains


@transaction.atomic
def project_create(
    *, organization: Organization, actor: AbstractBaseUser | None, name: str, kind: str, **fields
) -> Project:
    """Create a project; its label schema is validated by its kind."""
    fields.setdefault("label_schema", {})
    domains = project_check(
        organization=organization, kind=kind, fields=fields, unknown_reason="Unknown field."
    )
    fields.pop("required_domains", None)
    project = Project(organization=organization, name=name, kind=kind, **fields)
    project.seated_overlap = project.overlap  # no task yet: nothing to seat
    project.save(force_insert=True)
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
    kind = fields.pop("kind", project.kind)
    domains = project_check(
        organization=project.organization,
        kind=kind,
        fields=fields,
        unknown_reason="Cannot be changed.",
    )
    project = lock_project(project.pk)
    if project.status == ProjectStatus.ARCHIVED:
        raise Conflict(
            "The project is archived; unarchive it to change its settings.",
            code=ErrorCode.INVALID_STATUS,
        )
    has_tasks = project.tasks.exists()
    if kind != project.kind:
        _kind_change_check(project, kind, fields, has_tasks=has_tasks)
        fields["kind"] = kind
    if "label_schema" in fields and fields["label_schema"] != project.label_schema:
        _schema_change_check(project, fields["label_schema"])
    if fields.get("status") == ProjectStatus.DRAFT and project.status != ProjectStatus.DRAFT:
        _draft_check(project)
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
    elif not has_tasks:
        fields["seated_overlap"] = overlap  # no task to seat, whichever way it moves
    if "required_domains" in fields:
        fields["required_domains"] = domains
    changes = model_update(project, fields)
    changes.pop("seated_overlap", None)  # bookkeeping that follows the overlap: not a setting
    if changes:
        audit_record(
            organization=project.organization,
            actor=actor,
            verb=AuditVerb.PROJECT_UPDATED,
            target=project,
            changes=changes,
        )
    return project


def _kind_change_check(project: Project, kind: str, fields: dict, *, has_tasks: bool) -> None:
    """Refuse a new kind once tasks exist (they were validated for the kind at import), and
    a new kind the label schema does not fit."""
    if has_tasks:
        raise ValidationFailed(
            "The kind cannot change once the project has tasks.",
            fields={"kind": [f"Fixed at {project.kind!r} once tasks are imported."]},
        )
    if "label_schema" not in fields:
        issues = get_kind(kind).validate_schema(project.label_schema)
        if issues:
            raise ValidationFailed(
                f"The label schema does not fit the kind {kind!r}.",
                fields=issues_by_path(issue.under("label_schema") for issue in issues),
            )


def _schema_change_check(project: Project, schema: dict) -> None:
    """Refuse a label schema that would orphan stored work (annotations and gold answers).

    Stored payloads name labels (and relation types) by name: removing or renaming one that
    work uses would leave payloads no kind method, score or export can read. Changes that remove
    no name read nothing; the others ask PostgreSQL once (``selectors.names_outside_schema``).
    """
    kind = get_kind(project.kind)
    before, after = kind.schema_names(project.label_schema), kind.schema_names(schema)
    frozen = kind.frozen_schema_fields(project.label_schema, schema)
    if frozen and _has_stored_work(project):
        raise Conflict(
            f"label_schema.{frozen[0]} cannot change once work is stored.",
            code=ErrorCode.IN_USE,
            fields={f"label_schema.{key}": ["Stored annotations depend on it."] for key in frozen},
        )
    if not any(before[key] - after[key] for key in before):
        return
    in_use = selectors.names_outside_schema(project=project, schema=schema)
    if in_use:
        names = ", ".join(repr(name) for key in sorted(in_use) for name in in_use[key])
        raise Conflict(
            f"Stored annotations or gold answers use {names}; they cannot leave the schema.",
            code=ErrorCode.IN_USE,
            fields={
                f"label_schema.{key}": [f"In use by stored work: {', '.join(used)}."]
                for key, used in in_use.items()
            },
        )


def _has_stored_work(project: Project) -> bool:
    return (
        Annotation.objects.filter(project=project).exists()
        or Task.objects.filter(project=project, gold_answer__isnull=False).exists()
    )


def _draft_check(project: Project) -> None:
    """A draft project is one nobody works on: refuse it while work is claimed or submitted."""
    live = (AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED)
    if Assignment.objects.filter(project=project, status__in=live).exists():
        raise Conflict(
            "The project has claimed or submitted work; it cannot go back to draft.",
            fields={"status": ["Work is in progress; pause the project instead."]},
        )


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
    problems = FieldErrors()
    if role not in ProjectRole.values:
        problems.add("role", f"Unknown role {role!r}.")
    for annotator in annotators:
        if annotator.status == AnnotatorStatus.OFFBOARDED:
            problems.add("annotators", f"{annotator} is offboarded and cannot join projects.")
    problems.raise_if_any("Invalid staffing.")
    if project.status == ProjectStatus.ARCHIVED:
        raise Conflict(
            "The project is archived; unarchive it to staff it.", code=ErrorCode.INVALID_STATUS
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
    # What every task has its seats for once this run ends: the overlap as it is now (a later
    # raise is seated by its own run). Tasks imported after the raise come with every seat;
    # those that exist now are the work.
    with seats_run(project.pk):
        target = Project.objects.values_list("overlap", flat=True).get(pk=project.pk)
        ids = Task.objects.filter(project=project).aggregate(first=Min("pk"), last=Max("pk"))
        added = _seats_add(project, ids["first"], ids["last"]) if ids["first"] is not None else 0
        with transaction.atomic():
            lock_project_overlap(project.pk)  # waited for, as each batch waits
            seating = Project.objects.filter(pk=project.pk, seated_overlap__lt=target)
            seating.update(seated_overlap=target)
    return added


def project_seats_catch_up(*, limit: int = SEATS_CATCH_UP_LIMIT) -> int:
    """Give their seats to the projects whose raised overlap is not seated yet (the run of
    ``tasks.add_overlap_seats`` failed, or its message was lost); return how many were."""
    behind = Project.objects.filter(seated_overlap__lt=F("overlap")).order_by("pk")

    def seat(project_id: int) -> bool:
        with seats_run(project_id, alone=True) as alone:
            if alone:  # else a run is live (the raise's own job, likely): it seats the project
                project_seats_add(project=Project.objects.get(pk=project_id))
            return alone

    return catch_up(
        list(behind.values_list("pk", flat=True)[:limit]),
        seat,
        "The seats of project %s could not be added",
    )


def _seats_add(project: Project, first: int, last: int) -> int:
    added = 0
    # Ranges of ids rather than "the next N tasks": a bounded range keeps every plan on the
    # primary key, where ORDER BY ... LIMIT could be planned as a sort of the whole project.
    while first <= last:
        after = first + SEATS_BATCH_SIZE - 1
        with transaction.atomic():
            # Behind an import, which holds the project until its file is written: waited for
            # however long, since a batch given up would leave its tasks short of seats.
            overlap = lock_project_overlap(project.pk)
            tasks = Task.objects.filter(project=project, pk__gte=first, pk__lte=after)
            # A cancelled task gets no new seat: nobody is to be served it again.
            # Nor a gold task: it has no seats.
            batch = dict(
                tasks.filter(cancelled_at__isnull=True, is_gold=False).values_list("pk", "priority")
            )
            if not batch:
                # Other projects' tasks in between: go straight to this project's next one.
                later = Task.objects.filter(project=project, pk__gt=after)
                first = later.aggregate(next=Min("pk"))["next"] or last + 1
                continue
            # Locked, waiting for claims in flight: a claim taking a task's last seat either
            # commits first (and its seat reads as taken here) or finds the new seat after.
            seats = lock_seats(project.pk, first, after)
            top_seat = {task: (seat, state) for task, seat, state in seats}
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
                for task, (top, state) in top_seat.items()
                if task in batch
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


@transaction.atomic
def project_member_remove(
    *, project: Project, annotator: Annotator, actor: AbstractBaseUser | None, reason: str = ""
) -> ProjectMember:
    """Take an annotator off a project: their live leases there end at once.

    The membership is kept inactive, as history (adding them again reactivates it); their
    submitted work stays. Removing someone no longer active answers the membership unchanged.
    """
    member = ProjectMember.objects.filter(project=project, annotator=annotator).first()
    if member is None:
        raise NotFound(f"{annotator} is not a member of this project.")
    # A conditional update, so that of two removals at once only one is audited; the database
    # ends the annotator's leases in the project in this same statement (``access.sql``).
    removed = ProjectMember.objects.filter(pk=member.pk, is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )
    member.refresh_from_db()
    if not removed:
        return member
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_MEMBER_REMOVED,
        target=project,
        annotator=annotator,
        before={"project": project.pk, "role": member.role, "is_active": True},
        after={"project": project.pk, "is_active": False},
        reason=reason,
    )
    return member


@transaction.atomic
def project_archive(
    *, project: Project, actor: AbstractBaseUser | None, reason: str = ""
) -> Project:
    """Archive a project: nobody claims its tasks, live leases on it end, its settings and tasks
    stay as they are (a 409 answers changes), and it still exports.

    ``project_unarchive`` brings it back paused, so that work resumes only when a manager
    activates it. Archiving an archived project answers it unchanged.
    """
    project = lock_project(project.pk)
    if project.status == ProjectStatus.ARCHIVED:
        return project
    changes = model_update(project, {"status": ProjectStatus.ARCHIVED})
    # The claim serves active projects only; a lease taken before is ended here, its slot open
    # again for when the project comes back.
    ended = project_leases_end(project_id=project.pk)
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_ARCHIVED,
        target=project,
        before={"status": changes["status"][0]},
        after={"status": changes["status"][1], "leases_ended": len(ended)},
        reason=reason,
    )
    return project


@transaction.atomic
def project_unarchive(
    *, project: Project, actor: AbstractBaseUser | None, reason: str = ""
) -> Project:
    """Bring an archived project back, paused: a manager activates it when work resumes."""
    project = lock_project(project.pk)
    if project.status != ProjectStatus.ARCHIVED:
        raise Conflict(
            f"The project is {project.status}, not archived.", code=ErrorCode.INVALID_STATUS
        )
    changes = model_update(project, {"status": ProjectStatus.PAUSED})
    audit_record(
        organization=project.organization,
        actor=actor,
        verb=AuditVerb.PROJECT_UNARCHIVED,
        target=project,
        changes=changes,
        reason=reason,
    )
    return project
