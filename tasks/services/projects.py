"""Creating and changing projects, and staffing them."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from config.errors import Conflict, ValidationFailed
from tasks.kinds import get_kind
from tasks.models import MAX_OVERLAP, Project, ProjectMember, ProjectRole, ProjectStatus
from workforce.models import Annotator, AnnotatorStatus, Domain, Organization
from workforce.services import audit_record

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
# Tasks carry one slot per unit of overlap and are validated against the kind at import.
FROZEN_WITH_TASKS = {"overlap", "kind"}


def _validate(fields: dict, kind: str) -> None:
    errors: dict[str, list[str]] = {}
    if "label_schema" in fields:
        issues = get_kind(kind).validate_schema(fields["label_schema"])
        for issue in issues:
            key = f"label_schema.{issue.path}" if issue.path else "label_schema"
            errors.setdefault(key, []).append(issue.message)
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
        verb="project.created",
        target=project,
        after={"name": name, "kind": kind, "overlap": project.overlap},
    )
    return project


@transaction.atomic
def project_update(*, project: Project, actor: AbstractBaseUser | None, **fields) -> Project:
    """Change a project's settings. Overlap is fixed once tasks exist."""
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValidationFailed(
            "Unknown fields.", fields={f: ["Cannot be changed."] for f in unknown}
        )
    _validate(fields, project.kind)
    project = Project.objects.select_for_update().get(pk=project.pk)
    frozen = [f for f in FROZEN_WITH_TASKS & set(fields) if fields[f] != getattr(project, f)]
    if frozen and project.tasks.exists():
        raise Conflict(
            f"{frozen[0]} cannot change once the project has tasks.",
            code="frozen",
            fields={frozen[0]: ["Fixed once tasks are imported."]},
        )
    if "status" in fields and fields["status"] not in ProjectStatus.values:
        raise ValidationFailed("Unknown status.", fields={"status": ["Unknown status."]})
    before = {f: str(getattr(project, f)) for f in fields if f != "required_domains"}
    domains = fields.pop("required_domains", None)
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()
    if domains is not None:
        project.required_domains.set(_domains(project.organization, domains))
    audit_record(
        organization=project.organization,
        actor=actor,
        verb="project.updated",
        target=project,
        before=before,
        after={f: str(getattr(project, f)) for f in before},
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
            verb="project.member_added",
            target=project,
            annotator=annotator,
            after={"project": project.pk, "role": role},
        )
    return members
