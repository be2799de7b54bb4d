"""The subject areas annotators are certified in."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from config.errors import Conflict, ErrorCode, ValidationFailed
from workforce.models import AuditVerb, Domain, Organization

from .audit import audit_record, model_update


def domain_check(*, organization: Organization, slug: str | None) -> None:
    """Refuse a new domain's slug that the organization uses already."""
    if slug is not None and Domain.objects.filter(organization=organization, slug=slug).exists():
        raise ValidationFailed(
            f"Domain {slug!r} exists.", fields={"slug": ["A domain with this slug exists."]}
        )


@transaction.atomic
def domain_create(
    *, organization: Organization, slug: str, name: str, description: str, actor: AbstractBaseUser
) -> Domain:
    """Add a subject area annotators can be certified in."""
    domain_check(organization=organization, slug=slug)
    domain = Domain.objects.create(
        organization=organization, slug=slug, name=name, description=description
    )
    audit_record(
        organization=organization,
        actor=actor,
        verb=AuditVerb.DOMAIN_CREATED,
        target=domain,
        after={"slug": slug, "name": name},
    )
    return domain


@transaction.atomic
def domain_update(*, domain: Domain, actor: AbstractBaseUser, **fields) -> Domain:
    """Rename or redescribe a domain; its slug is its identity and stays.

    Only what changed is saved and audited; a change to nothing writes no event.
    """
    editable = {name: fields[name] for name in ("name", "description") if name in fields}
    changes = model_update(domain, editable)
    if changes:
        audit_record(
            organization=domain.organization,
            actor=actor,
            verb=AuditVerb.DOMAIN_UPDATED,
            target=domain,
            changes=changes,
        )
    return domain


@transaction.atomic
def domain_delete(*, domain: Domain, actor: AbstractBaseUser) -> None:
    """Delete a domain nobody has ever been certified in and no project requires.

    Deleting a required domain would drop the requirement with it: anyone could then claim
    the project's tasks, and no audit event would say so. The projects are found through the
    reverse side of ``Project.required_domains``, so that workforce never imports tasks.
    """
    if domain.certifications.exists():
        raise Conflict(
            f"Domain {domain.slug!r} has certifications; it cannot be deleted.",
            code=ErrorCode.IN_USE,
        )
    requiring = sorted(domain.projects.values_list("name", flat=True)[:6])
    if requiring:
        shown = ", ".join(repr(name) for name in requiring[:5])
        more = " and more" if len(requiring) > 5 else ""
        raise Conflict(
            f"Domain {domain.slug!r} is required by projects {shown}{more}; "
            "remove the requirement from them first.",
            code=ErrorCode.IN_USE,
        )
    audit_record(
        organization=domain.organization,
        actor=actor,
        verb=AuditVerb.DOMAIN_DELETED,
        target=domain,
        before={"slug": domain.slug, "name": domain.name},
    )
    domain.delete()
