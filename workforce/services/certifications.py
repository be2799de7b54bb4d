"""Certifications: issuing, suspending, reinstating, revoking, renewing and expiring them.

Each event records the certification's state before and after as a whole, so that the log of
one certification reads as a chain: every event's ``before`` is the ``after`` of the one before.
"""

from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors, ValidationFailed
from workforce.locks import lock_annotator, lock_certification, lock_certifications_to_expire
from workforce.models import Annotator, AuditVerb, Certification, CertificationStatus, Domain

from .audit import audit_record, field_values, require_reason


def _certification_snapshot(certification: Certification) -> dict:
    return {"domain": certification.domain.slug} | field_values(
        certification, ["status", "issued_at", "expires_at"]
    )


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed(
            "The expiry must be in the future.",
            fields={"expires_at": [f"{expires_at.isoformat()} is not in the future."]},
        )


def certification_check(
    *, evidence: str | None, expires_at: datetime | None, now: datetime | None = None
) -> None:
    """Refuse the evidence and expiry of a certification to issue, naming both if both are bad.

    ``evidence`` None is not judged (the request's own was refused already).
    """
    problems = FieldErrors()
    if evidence is not None and not evidence.strip():
        problems.add("evidence", "Say what proves the qualification.")
    with problems.collect():
        _check_expiry(expires_at, now or timezone.now())
    problems.raise_if_any("Invalid certification.")


def _audit_certification(
    certification: Certification,
    *,
    verb: AuditVerb,
    actor: AbstractBaseUser | None,
    before: dict | None,
    reason: str,
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
    certification_check(evidence=evidence, expires_at=expires_at, now=now)
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
                code=ErrorCode.ALREADY_CERTIFIED,
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
            "A certification was issued concurrently.", code=ErrorCode.ALREADY_CERTIFIED
        ) from exc
    _audit_certification(
        certification,
        verb=AuditVerb.CERTIFICATION_ISSUED,
        actor=issued_by,
        before=before,
        reason=reason,
    )
    return certification


# For each action: the effective statuses it may start from, the status it leaves, its verb.
_CERTIFICATION_TRANSITIONS = {
    "suspend": (
        {CertificationStatus.ACTIVE},
        CertificationStatus.SUSPENDED,
        AuditVerb.CERTIFICATION_SUSPENDED,
    ),
    "reinstate": (
        {CertificationStatus.SUSPENDED},
        CertificationStatus.ACTIVE,
        AuditVerb.CERTIFICATION_REINSTATED,
    ),
    "revoke": (
        {CertificationStatus.ACTIVE, CertificationStatus.SUSPENDED, CertificationStatus.EXPIRED},
        CertificationStatus.REVOKED,
        AuditVerb.CERTIFICATION_REVOKED,
    ),
}


@transaction.atomic
def certification_set_status(
    *, certification: Certification, action: str, actor: AbstractBaseUser | None, reason: str
) -> Certification:
    """Suspend, reinstate or revoke a certification. A reason is required and audited."""
    require_reason(reason)
    allowed_from, target, verb = _CERTIFICATION_TRANSITIONS[action]
    now = timezone.now()
    certification = lock_certification(certification.pk, at=now)
    state = certification.state
    if state not in allowed_from:
        raise Conflict(
            f"Cannot {action} a certification that is {state}.", code=ErrorCode.INVALID_STATUS
        )
    if (
        action == "reinstate"
        and certification.expires_at is not None
        and certification.expires_at <= now
    ):
        raise Conflict(
            f"The certification expired on {certification.expires_at:%Y-%m-%d}; renew it instead.",
            code=ErrorCode.CERTIFICATION_EXPIRED,
        )
    before = _certification_snapshot(certification)
    certification.status = target
    certification.save(update_fields=["status", "updated_at"])
    _audit_certification(certification, verb=verb, actor=actor, before=before, reason=reason)
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
            "A revoked certification cannot be renewed; issue a new one.",
            code=ErrorCode.CERTIFICATION_REVOKED,
        )
    before = _certification_snapshot(certification)
    if certification.state == CertificationStatus.EXPIRED:
        certification.status = CertificationStatus.ACTIVE
    certification.expires_at = expires_at
    if evidence.strip():
        certification.evidence = evidence
    certification.save()
    _audit_certification(
        certification,
        verb=AuditVerb.CERTIFICATION_RENEWED,
        actor=actor,
        before=before,
        reason=reason,
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
                    verb=AuditVerb.CERTIFICATION_EXPIRED,
                    actor=None,
                    before=before,
                    reason=f"Expired on {certification.expires_at.isoformat()}.",
                )
            changed += len(batch)
