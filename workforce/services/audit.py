"""The audit log: who changed what about a person or a project, when and why.

Every service that changes a person's qualifications or a project's settings appends one
event through ``audit_record``. An update records only what it changed, as JSON values
(``field_values`` and ``changed_fields``), so the log reads the same whichever service wrote it.
"""

import datetime
import json
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model

from config.errors import ValidationFailed
from workforce.models import Annotator, AuditEvent, AuditVerb, Organization


def audit_record(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    verb: AuditVerb,
    target: Model,
    annotator: Annotator | None = None,
    before: dict | None = None,
    after: dict | None = None,
    changes: dict[str, tuple[Any, Any]] | None = None,
    reason: str = "",
) -> AuditEvent:
    """Append one audit event; ``actor=None`` means the system did it.

    ``changes`` (from ``changed_fields``) records an update: each changed field's value before
    in ``before`` and after in ``after``. Otherwise ``before`` and ``after`` are given as they are.
    """
    if changes is not None:
        before = {name: old for name, (old, _new) in changes.items()}
        after = {name: new for name, (_old, new) in changes.items()}
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


def require_reason(reason: str) -> None:
    """Refuse a change that must say why (a suspension, a revocation) without a reason."""
    if not reason.strip():
        raise ValidationFailed(
            "A reason is required.", fields={"reason": ["This field is required."]}
        )


class _Encoder(DjangoJSONEncoder):
    """Django's JSON encoder, keeping every digit of a moment, in UTC.

    Django's drops microseconds below the millisecond, so two moments could read as one and a
    change go unrecorded; and the same moment in two offsets must not read as a change.
    """

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime) and o.tzinfo is not None:
            return o.astimezone(datetime.UTC).isoformat()
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def json_value(value: Any) -> Any:
    """``value`` as the JSON the audit log stores: moments and dates ISO 8601, decimals as
    strings, JSON fields as they are."""
    return json.loads(json.dumps(value, cls=_Encoder))


def field_values(instance: Model, fields: Iterable[str]) -> dict[str, Any]:
    """Read ``fields`` of ``instance`` as JSON values, as they stand now.

    A foreign key reads as the related row's id; a many-to-many field as the sorted slugs of
    the related rows (their ids when they have no slug), read from the database.
    """
    values = {}
    for name in fields:
        field = instance._meta.get_field(name)
        if field.many_to_many:
            related = field.related_model
            key = "slug" if any(f.name == "slug" for f in related._meta.fields) else "pk"
            rows = getattr(instance, name).order_by().values_list(key, flat=True)
            values[name] = json_value(sorted(rows))
        elif field.is_relation:
            values[name] = json_value(getattr(instance, field.attname))
        else:
            values[name] = json_value(getattr(instance, name))
    return values


def model_update(instance: Model, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set ``values`` on ``instance``, save the fields that changed, and return the changes.

    A many-to-many field takes a list of related rows. Only changed columns are written, with
    ``updated_at``; the result (from ``changed_fields``) is what ``audit_record`` records.
    """
    before = field_values(instance, values)
    related = {}
    for name, value in values.items():
        if instance._meta.get_field(name).many_to_many:
            related[name] = value
        else:
            setattr(instance, name, value)
    for name, rows in related.items():
        getattr(instance, name).set(rows)
    changes = changed_fields(instance, before)
    columns = [name for name in changes if name not in related]
    if columns:
        instance.save(update_fields=[*columns, "updated_at"])
    return changes


def changed_fields(instance: Model, before: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (before, after)}`` for each field of ``before`` whose value changed since.

    ``before`` comes from ``field_values`` on the same instance, read before the update. An
    empty result means the update changed nothing, and then nothing is audited.
    """
    after = field_values(instance, before)
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}
