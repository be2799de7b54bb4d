"""Every write to the workforce registry. Each one validates, writes, and audits."""

import re
import zoneinfo
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, ValidationFailed

from .locks import lock_annotator, lock_certification, lock_certifications_to_expire
from .models import (
    MAX_SKILL_LEVEL,
    Annotator,
    AnnotatorSkill,
    AnnotatorStatus,
    AuditEvent,
    Certification,
    CertificationStatus,
    Domain,
    Member,
    Organization,
    Role,
    Skill,
    SkillSource,
)

User = get_user_model()

# BCP 47 primary language with an optional region, e.g. "en", "pt-BR".
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")


def audit_record(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    verb: str,
    target: Any,
    annotator: Annotator | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """Append one audit event; ``actor=None`` means the system did it."""
    return AuditEvent.objects.create(
        organization=organization,
        actor=actor,
        verb=verb,
        target_type=target._meta.model_name,
        target_id=target.pk,
        target_repr=str(target)[:200],
        annotator=annotator,
        before=before,
        after=after,
        reason=reason,
    )


@transaction.atomic
def organization_create(*, name: str, slug: str) -> Organization:
    """Create a tenant."""
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationFailed(
            f"An organization with slug {slug!r} exists.", fields={"slug": ["Already taken."]}
        )
    return Organization.objects.create(name=name, slug=slug)


def _require_reason(reason: str) -> None:
    if not reason.strip():
        raise ValidationFailed(
            "A reason is required.", fields={"reason": ["This field is required."]}
        )


def _annotator_snapshot(annotator: Annotator) -> dict:
    return {
        "status": annotator.status,
        "languages": list(annotator.languages),
        "timezone": annotator.timezone,
        "weekly_capacity_hours": annotator.weekly_capacity_hours,
        "max_concurrent_tasks": annotator.max_concurrent_tasks,
    }


def _validate_profile(fields: dict) -> None:
    errors: dict[str, list[str]] = {}
    languages = fields.get("languages")
    if languages is not None:
        bad = [code for code in languages if not LANGUAGE_RE.match(str(code))]
        if bad:
            errors["languages"] = [f"{bad[0]!r} is not a language code such as 'en' or 'pt-BR'."]
        elif len(set(languages)) != len(languages):
            errors["languages"] = ["Languages must not repeat."]
    tz = fields.get("timezone")
    if tz is not None and tz not in zoneinfo.available_timezones():
        errors["timezone"] = [f"{tz!r} is not an IANA time zone such as 'Europe/Berlin'."]
    hours = fields.get("weekly_capacity_hours")
    if hours is not None and not 0 <= hours <= 168:
        errors["weekly_capacity_hours"] = [f"{hours} is not between 0 and 168."]
    concurrent = fields.get("max_concurrent_tasks")
    if concurrent is not None and not 1 <= concurrent <= 1000:
        errors["max_concurrent_tasks"] = [f"{concurrent} is not between 1 and 1000."]
    if errors:
        raise ValidationFailed("Invalid annotator profile.", fields=errors)


@transaction.atomic
def member_create(
    *,
    organization: Organization,
    username: str,
    role: str,
    actor: AbstractBaseUser | None,
    email: str = "",
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
    profile: dict | None = None,
) -> Member:
    """Add a person to an organization; an annotator also gets a working profile.

    An existing user (matched by username) joins with the new role; otherwise a user is
    created. Without a password the user cannot log in until one is set.
    """
    if role not in Role.values:
        raise ValidationFailed(
            f"Unknown role {role!r}.",
            fields={"role": [f"Must be one of {', '.join(Role.values)}."]},
        )
    profile = profile or {}
    _validate_profile(profile)
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, email=email, first_name=first_name, last_name=last_name)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    elif Member.objects.filter(user=user, organization=organization).exists():
        raise Conflict(
            f"{username} is already a member of this organization.",
            code="already_member",
            fields={"username": ["Already a member."]},
        )
    member = Member.objects.create(user=user, organization=organization, role=role)
    annotator = None
    if role == Role.ANNOTATOR:
        annotator = Annotator.objects.create(member=member, **profile)
    audit_record(
        organization=organization,
        actor=actor,
        verb="member.created",
        target=member,
        annotator=annotator,
        after={"username": username, "role": role}
        | (_annotator_snapshot(annotator) if annotator else {}),
    )
    return member


@transaction.atomic
def annotator_update(
    *, annotator: Annotator, actor: AbstractBaseUser, reason: str = "", **fields
) -> Annotator:
    """Change an annotator's languages, time zone, capacity or concurrency limit."""
    allowed = {"languages", "timezone", "weekly_capacity_hours", "max_concurrent_tasks"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationFailed(
            "Unknown fields.", fields={name: ["Cannot be changed here."] for name in unknown}
        )
    _validate_profile(fields)
    annotator = lock_annotator(annotator.pk)
    before = _annotator_snapshot(annotator)
    for name, value in fields.items():
        setattr(annotator, name, value)
    annotator.save()
    after = _annotator_snapshot(annotator)
    if after != before:
        audit_record(
            organization=annotator.member.organization,
            actor=actor,
            verb="annotator.updated",
            target=annotator,
            annotator=annotator,
            before=before,
            after=after,
            reason=reason,
        )
    return annotator


# Which statuses each status action may start from.
_STATUS_TRANSITIONS = {
    "suspend": ({AnnotatorStatus.ACTIVE}, AnnotatorStatus.SUSPENDED),
    "reinstate": ({AnnotatorStatus.SUSPENDED}, AnnotatorStatus.ACTIVE),
    "offboard": ({AnnotatorStatus.ACTIVE, AnnotatorStatus.SUSPENDED}, AnnotatorStatus.OFFBOARDED),
}


@transaction.atomic
def annotator_set_status(
    *, annotator: Annotator, action: str, actor: AbstractBaseUser | None, reason: str
) -> Annotator:
    """Suspend, reinstate or offboard an annotator. A reason is required and audited."""
    _require_reason(reason)
    allowed_from, target = _STATUS_TRANSITIONS[action]
    annotator = lock_annotator(annotator.pk)
    if annotator.status not in allowed_from:
        raise Conflict(
            f"Cannot {action} an annotator who is {annotator.status}.", code="invalid_status"
        )
    before = annotator.status
    annotator.status = target
    annotator.save(update_fields=["status", "updated_at"])
    audit_record(
        organization=annotator.member.organization,
        actor=actor,
        verb=f"annotator.{action}",
        target=annotator,
        annotator=annotator,
        before={"status": before},
        after={"status": target},
        reason=reason,
    )
    return annotator


@transaction.atomic
def annotator_skill_set(
    *,
    annotator: Annotator,
    skill: str,
    level: int,
    source: str,
    actor: AbstractBaseUser | None,
    reason: str = "",
) -> AnnotatorSkill:
    """Set an annotator's level in one skill, creating the skill row if needed."""
    errors: dict[str, list[str]] = {}
    if skill not in Skill.values:
        errors["skill"] = [f"Unknown skill {skill!r}; one of {', '.join(Skill.values)}."]
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_SKILL_LEVEL:
        errors["level"] = [f"{level!r} is not a whole number from 0 to {MAX_SKILL_LEVEL}."]
    if source not in SkillSource.values:
        errors["source"] = [f"Unknown source {source!r}."]
    if errors:
        raise ValidationFailed("Invalid skill level.", fields=errors)
    # Lock the annotator so two concurrent level changes cannot both read the same "before".
    annotator = lock_annotator(annotator.pk)
    row = AnnotatorSkill.objects.filter(annotator=annotator, skill=skill).first()
    before = {"skill": skill, "level": row.level, "source": row.source} if row else None
    if row is None:
        row = AnnotatorSkill(annotator=annotator, skill=skill)
    row.level, row.source, row.set_by, row.set_at = level, source, actor, timezone.now()
    row.save()
    audit_record(
        organization=annotator.member.organization,
        actor=actor,
        verb="skill.set",
        target=annotator,
        annotator=annotator,
        before=before,
        after={"skill": skill, "level": level, "source": source},
        reason=reason,
    )
    return row


@transaction.atomic
def domain_create(
    *, organization: Organization, slug: str, name: str, description: str, actor: AbstractBaseUser
) -> Domain:
    """Add a subject area annotators can be certified in."""
    if Domain.objects.filter(organization=organization, slug=slug).exists():
        raise ValidationFailed(
            f"Domain {slug!r} exists.", fields={"slug": ["A domain with this slug exists."]}
        )
    domain = Domain.objects.create(
        organization=organization, slug=slug, name=name, description=description
    )
    audit_record(
        organization=organization,
        actor=actor,
        verb="domain.created",
        target=domain,
        after={"slug": slug, "name": name},
    )
    return domain


@transaction.atomic
def domain_update(*, domain: Domain, actor: AbstractBaseUser, **fields) -> Domain:
    """Rename or redescribe a domain; its slug is its identity and stays."""
    before = {"name": domain.name, "description": domain.description}
    for name in ("name", "description"):
        if name in fields:
            setattr(domain, name, fields[name])
    domain.save()
    audit_record(
        organization=domain.organization,
        actor=actor,
        verb="domain.updated",
        target=domain,
        before=before,
        after={"name": domain.name, "description": domain.description},
    )
    return domain


@transaction.atomic
def domain_delete(*, domain: Domain, actor: AbstractBaseUser) -> None:
    """Delete a domain nobody has ever been certified in."""
    if domain.certifications.exists():
        raise Conflict(
            f"Domain {domain.slug!r} has certifications; it cannot be deleted.", code="in_use"
        )
    audit_record(
        organization=domain.organization,
        actor=actor,
        verb="domain.deleted",
        target=domain,
        before={"slug": domain.slug, "name": domain.name},
    )
    domain.delete()


def _certification_snapshot(certification: Certification) -> dict:
    return {
        "domain": certification.domain.slug,
        "status": certification.status,
        "issued_at": certification.issued_at.isoformat(),
        "expires_at": certification.expires_at.isoformat() if certification.expires_at else None,
    }


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "The expiry must be in the future.",
            fields={"expires_at": [f"{expires_at.isoformat()} is not in the future."]},
        )


def _audit_certification(
    certification: Certification, *, verb: str, actor, before: dict | None, reason: str
) -> None:
    audit_record(
        organization=certification.domain.organization,
        actor=actor,
        verb=verb,
        target=certification,
        annotator=certification.annotator,
        before=before,
        after=_certification_snapshot(certification),
        reason=reason,
    )


@transaction.atomic
def certification_issue(
    *,
    annotator: Annotator,
    domain: Domain,
    issued_by: AbstractBaseUser | None,
    evidence: str,
    expires_at: datetime | None,
    reason: str = "",
) -> Certification:
    """Certify an annotator in a domain, or re-certify after a revocation or expiry.

    A certification that is in force or suspended is not issued again: renew or reinstate it.
    """
    now = timezone.now()
    if not evidence.strip():
        raise ValidationFailed(
            "Evidence is required.", fields={"evidence": ["Say what proves the qualification."]}
        )
    _check_expiry(expires_at, now)
    if domain.organization_id != annotator.member.organization_id:
        raise ValidationFailed("Unknown domain.", fields={"domain": ["Not found."]})
    annotator = lock_annotator(annotator.pk)
    existing = Certification.objects.filter(annotator=annotator, domain=domain).first()
    before = None
    if existing is not None:
        existing = lock_certification(existing.pk, at=now)
        state = existing.state
        if state in (CertificationStatus.ACTIVE, CertificationStatus.SUSPENDED):
            raise Conflict(
                f"{annotator} already holds a {state} certification in {domain.slug}.",
                code="already_certified",
            )
        before = _certification_snapshot(existing)
        certification = existing
    else:
        certification = Certification(annotator=annotator, domain=domain)
    certification.status = CertificationStatus.ACTIVE
    certification.issued_at = now
    certification.expires_at = expires_at
    certification.issued_by = issued_by
    certification.evidence = evidence
    try:
        with transaction.atomic():
            certification.save()
    except IntegrityError as exc:  # a concurrent issue won the unique constraint
        raise Conflict(
            "A certification was issued concurrently.", code="already_certified"
        ) from exc
    _audit_certification(
        certification, verb="certification.issued", actor=issued_by, before=before, reason=reason
    )
    return certification


# For each action: the effective statuses it may start from and the status it leaves.
_CERTIFICATION_TRANSITIONS = {
    "suspend": ({CertificationStatus.ACTIVE}, CertificationStatus.SUSPENDED),
    "reinstate": ({CertificationStatus.SUSPENDED}, CertificationStatus.ACTIVE),
    "revoke": (
        {CertificationStatus.ACTIVE, CertificationStatus.SUSPENDED, CertificationStatus.EXPIRED},
        CertificationStatus.REVOKED,
    ),
}


@transaction.atomic
def certification_set_status(
    *, certification: Certification, action: str, actor: AbstractBaseUser | None, reason: str
) -> Certification:
    """Suspend, reinstate or revoke a certification. A reason is required and audited."""
    _require_reason(reason)
    allowed_from, target = _CERTIFICATION_TRANSITIONS[action]
    now = timezone.now()
    certification = lock_certification(certification.pk, at=now)
    state = certification.state
    if state not in allowed_from:
        raise Conflict(f"Cannot {action} a certification that is {state}.", code="invalid_status")
    if (
        action == "reinstate"
        and certification.expires_at is not None
        and certification.expires_at <= now
    ):
        raise Conflict(
            f"The certification expired on {certification.expires_at:%Y-%m-%d}; renew it instead.",
            code="expired",
        )
    before = _certification_snapshot(certification)
    certification.status = target
    certification.save(update_fields=["status", "updated_at"])
    _audit_certification(
        certification, verb=f"certification.{action}", actor=actor, before=before, reason=reason
    )
    return certification


@transaction.atomic
def certification_renew(
    *,
    certification: Certification,
    expires_at: datetime | None,
    actor: AbstractBaseUser | None,
    evidence: str = "",
    reason: str = "",
) -> Certification:
    """Extend a certification. An expired one becomes active; a suspended one stays suspended."""
    now = timezone.now()
    _check_expiry(expires_at, now)
    certification = lock_certification(certification.pk, at=now)
    if certification.status == CertificationStatus.REVOKED:
        raise Conflict(
            "A revoked certification cannot be renewed; issue a new one.", code="revoked"
        )
    before = _certification_snapshot(certification)
    if certification.state == CertificationStatus.EXPIRED:
        certification.status = CertificationStatus.ACTIVE
    certification.expires_at = expires_at
    if evidence.strip():
        certification.evidence = evidence
    certification.save()
    _audit_certification(
        certification, verb="certification.renewed", actor=actor, before=before, reason=reason
    )
    return certification


def certifications_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Record every certification past its expiry as expired; return how many changed.

    Safe to run twice or concurrently: rows are taken with SKIP LOCKED and only rows still
    ``active`` change, so each expiry is recorded and audited exactly once.
    """
    now = now or timezone.now()
    changed = 0
    while True:
        with transaction.atomic():
            batch = lock_certifications_to_expire(now=now, limit=batch_size)
            if not batch:
                return changed
            for certification in batch:
                before = _certification_snapshot(certification)
                certification.status = CertificationStatus.EXPIRED
                certification.save(update_fields=["status", "updated_at"])
                _audit_certification(
                    certification,
                    verb="certification.expired",
                    actor=None,
                    before=before,
                    reason=f"Expired on {certification.expires_at.isoformat()}.",
                )
            changed += len(batch)
