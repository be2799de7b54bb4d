"""An annotator's working profile, status and skill levels."""

import re
import zoneinfo

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors, ValidationFailed
from workforce.locks import lock_annotator
from workforce.models import (
    MAX_SKILL_LEVEL,
    Annotator,
    AnnotatorSkill,
    AnnotatorStatus,
    AuditVerb,
    Skill,
    SkillSource,
)

from .audit import audit_record, model_update, require_reason

# BCP 47 primary language with an optional region, e.g. "en", "pt-BR".
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")

# What a manager may change about an annotator's profile, and what the audit log shows of it.
PROFILE_FIELDS = ("languages", "timezone", "weekly_capacity_hours", "max_concurrent_tasks")


def validate_profile(fields: dict) -> None:
    """Refuse profile values an annotator cannot work with, naming each bad field."""
    errors: dict[str, list[str]] = {}
    languages = fields.get("languages")
    if languages is not None:
        bad = [code for code in languages if not LANGUAGE_RE.match(str(code))]
        if bad:
            errors["languages"] = [
                f"{code!r} is not a language code such as 'en' or 'pt-BR'." for code in bad
            ]
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
def annotator_update(
    *, annotator: Annotator, actor: AbstractBaseUser, reason: str = "", **fields
) -> Annotator:
    """Change an annotator's languages, time zone, capacity or concurrency limit.

    Only what changed is saved and audited; a change to nothing writes no event.
    """
    problems = FieldErrors()
    for name in sorted(set(fields) - set(PROFILE_FIELDS)):
        problems.add(name, "Cannot be changed here.")
    with problems.collect():
        validate_profile(fields)
    problems.raise_if_any("Invalid annotator profile.")
    annotator = lock_annotator(annotator.pk)
    changes = model_update(annotator, fields)
    if changes:
        audit_record(
            organization=annotator.member.organization,
            actor=actor,
            verb=AuditVerb.ANNOTATOR_UPDATED,
            target=annotator,
            annotator=annotator,
            changes=changes,
            reason=reason,
        )
    return annotator


# For each status action: the statuses it may start from, the status it leaves, and its verb.
_STATUS_TRANSITIONS = {
    "suspend": (
        {AnnotatorStatus.ACTIVE},
        AnnotatorStatus.SUSPENDED,
        AuditVerb.ANNOTATOR_SUSPENDED,
    ),
    "reinstate": (
        {AnnotatorStatus.SUSPENDED},
        AnnotatorStatus.ACTIVE,
        AuditVerb.ANNOTATOR_REINSTATED,
    ),
    "offboard": (
        {AnnotatorStatus.ACTIVE, AnnotatorStatus.SUSPENDED},
        AnnotatorStatus.OFFBOARDED,
        AuditVerb.ANNOTATOR_OFFBOARDED,
    ),
}


@transaction.atomic
def annotator_set_status(
    *, annotator: Annotator, action: str, actor: AbstractBaseUser | None, reason: str
) -> Annotator:
    """Suspend, reinstate or offboard an annotator. A reason is required and audited."""
    require_reason(reason)
    allowed_from, target, verb = _STATUS_TRANSITIONS[action]
    annotator = lock_annotator(annotator.pk)
    if annotator.status not in allowed_from:
        raise Conflict(
            f"Cannot {action} an annotator who is {annotator.status}.",
            code=ErrorCode.INVALID_STATUS,
        )
    before = annotator.status
    annotator.status = target
    annotator.save(update_fields=["status", "updated_at"])
    audit_record(
        organization=annotator.member.organization,
        actor=actor,
        verb=verb,
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
        verb=AuditVerb.SKILL_SET,
        target=annotator,
        annotator=annotator,
        before=before,
        after={"skill": skill, "level": level, "source": source},
        reason=reason,
    )
    return row
