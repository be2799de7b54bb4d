"""Adding people to an organization."""

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from config.errors import Conflict, ErrorCode, ValidationFailed
from workforce.models import Annotator, AuditVerb, Member, Organization, Role

from .annotators import PROFILE_FIELDS, validate_profile
from .audit import audit_record, field_values

User = get_user_model()


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
    validate_profile(profile)
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
            code=ErrorCode.ALREADY_MEMBER,
            fields={"username": ["Already a member."]},
        )
    member = Member.objects.create(user=user, organization=organization, role=role)
    annotator = None
    if role == Role.ANNOTATOR:
        annotator = Annotator.objects.create(member=member, **profile)
    audit_record(
        organization=organization,
        actor=actor,
        verb=AuditVerb.MEMBER_CREATED,
        target=member,
        annotator=annotator,
        after={"username": username, "role": role}
        | (field_values(annotator, ["status", *PROFILE_FIELDS]) if annotator else {}),
    )
    return member
