"""Adding people to an organization.

An account a manager creates belongs to that organization: its login name carries the
organization's slug (``alice`` in ``acme`` logs in as ``alice@acme``). ``alice`` in ``globex`` is
another account, so a manager can neither reach nor detect an account of another tenant: the
name is looked up nowhere but in the manager's own organization, and every request does the
same work whoever else exists. A name a manager types cannot contain ``@``, so no typed name is
another organization's login. Accounts made outside the API (``createsuperuser``, the admin)
keep the login they were given.
"""

import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors, NotFound, ValidationFailed
from workforce.locks import lock_member_with_managers
from workforce.models import (
    LOGIN_SEPARATOR,
    Annotator,
    AuditVerb,
    Invitation,
    InvitationStatus,
    Member,
    Organization,
    Role,
)

from .annotators import PROFILE_FIELDS, validate_profile
from .audit import audit_record, field_values, model_update

User = get_user_model()

# What a manager may type as a username: Django's username characters without ``@``, which
# separates the name from the organization in the login.
USERNAME_RE = re.compile(r"^[\w.+-]+\Z")


# Roles whose members get a working profile: annotators, and reviewers, whose skill levels and
# certifications review layers ask for and whom projects take on as reviewers through it.
PROFILE_ROLES = (Role.ANNOTATOR, Role.REVIEWER)


def member_login(*, organization: Organization, username: str) -> str:
    """The login name of the account ``username`` in ``organization``: ``alice@acme``."""
    return f"{username}{LOGIN_SEPARATOR}{organization.slug}"


def validate_username(*, organization: Organization, username: str) -> None:
    """Refuse a name that is not a plain username or makes a login too long for an account."""
    longest = User._meta.get_field(User.USERNAME_FIELD).max_length - len(organization.slug) - 1
    if LOGIN_SEPARATOR in username:
        reason = "Must not contain '@': the login adds '@' and the organization itself."
    elif not USERNAME_RE.match(username):
        reason = "Use letters, digits and . + - _ only."
    elif len(username) > longest:
        reason = f"At most {longest} characters in this organization."
    else:
        return
    raise ValidationFailed(f"Invalid username {username!r}.", fields={"username": [reason]})


def member_check(
    *,
    organization: Organization,
    role: str | None,
    username: str | None = None,
    profile: dict | None = None,
) -> None:
    """Refuse a new member's role, username or working profile, naming every bad field at once.

    A field given as None is not judged (it was refused already, or is not asked for).
    """
    problems = FieldErrors()
    if role is not None and role not in Role.values:
        problems.add("role", f"Must be one of {', '.join(Role.values)}.")
    if username is not None:
        with problems.collect():
            validate_username(organization=organization, username=username)
    with problems.collect():
        validate_profile(profile or {})
    problems.raise_if_any("Invalid member.")


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
    """Create an account of the organization, with its membership; an annotator or a reviewer
    also gets a working profile.

    The account logs in as ``<username>@<organization slug>``. Without a password it cannot log
    in until one is set. A username already used in this organization is a conflict; one used
    in another organization is no concern of this one (it is another login).
    """
    member_check(organization=organization, role=role, username=username, profile=profile)
    profile = profile or {}
    login = member_login(organization=organization, username=username)
    user = User(username=login, email=email, first_name=first_name, last_name=last_name)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        # A savepoint: a name taken (even by a concurrent request) is a conflict, not a 500.
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        raise Conflict(
            f"{username} is already a member of this organization.",
            code=ErrorCode.ALREADY_MEMBER,
            fields={"username": ["Already taken in this organization."]},
        ) from exc
    return _member_add(
        organization=organization, user=user, role=role, actor=actor, profile=profile
    )


@transaction.atomic
def member_join(
    *,
    organization: Organization,
    user: AbstractBaseUser,
    role: str,
    actor: AbstractBaseUser | None,
    profile: dict | None = None,
) -> Member:
    """Add an existing account to an organization, as its owner agreed to.

    For a person who works for several organizations: called when they accept an invitation
    (``invitation_answer``), or by an operator at their request. No API lets a manager name an
    account to attach. The person keeps their login; the organization sees the whole login as
    their username.
    """
    member_check(organization=organization, role=role, profile=profile)
    profile = profile or {}
    if Member.objects.filter(user=user, organization=organization).exists():
        raise Conflict(
            f"{user.get_username()} is already a member of this organization.",
            code=ErrorCode.ALREADY_MEMBER,
            fields={"username": ["Already a member."]},
        )
    return _member_add(
        organization=organization, user=user, role=role, actor=actor, profile=profile
    )


def _member_add(
    *,
    organization: Organization,
    user: AbstractBaseUser,
    role: str,
    actor: AbstractBaseUser | None,
    profile: dict,
) -> Member:
    member = Member.objects.create(user=user, organization=organization, role=role)
    annotator = None
    if role in PROFILE_ROLES:
        annotator = Annotator.objects.create(member=member, **profile)
    audit_record(
        organization=organization,
        actor=actor,
        verb=AuditVerb.MEMBER_CREATED,
        target=member,
        annotator=annotator,
        after={"username": member.username, "role": role}
        | (field_values(annotator, ["status", *PROFILE_FIELDS]) if annotator else {}),
    )
    return member


# How long an invitation stays open.
INVITATION_DAYS = 14
# What a login may look like: Django's username characters (``@`` included).
LOGIN_RE = re.compile(r"^[\w.@+-]+\Z")


@transaction.atomic
def invitation_create(
    *, organization: Organization, login: str, role: str, actor: AbstractBaseUser | None
) -> Invitation:
    """Offer ``role`` in the organization to whoever holds ``login``.

    Nothing is looked up: the answer, and the work behind it, are the same whether the login
    exists or not. A login already invited and not yet answered is a conflict, which tells the
    manager only about their own organization's invitations.
    """
    problems = FieldErrors()
    if role not in Role.values:
        problems.add("role", f"Must be one of {', '.join(Role.values)}.")
    max_length = User._meta.get_field(User.USERNAME_FIELD).max_length
    if not LOGIN_RE.match(login) or len(login) > max_length:
        problems.add("login", f"A login: letters, digits and @ . + - _, at most {max_length}.")
    problems.raise_if_any("Invalid invitation.")
    # An open invitation that lapsed is closed first; answered ones stay as history.
    Invitation.objects.filter(
        organization=organization,
        login=login,
        status=InvitationStatus.PENDING,
        expires_at__lte=timezone.now(),
    ).update(status=InvitationStatus.EXPIRED)
    invitation = Invitation(
        organization=organization,
        login=login,
        role=role,
        invited_by=actor,
        expires_at=timezone.now() + timedelta(days=INVITATION_DAYS),
    )
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError as exc:
        raise Conflict(
            f"{login} has an open invitation already.",
            fields={"login": ["Already invited; the invitation is open."]},
        ) from exc
    return invitation


@transaction.atomic
def invitation_answer(
    *, invitation: Invitation, user: AbstractBaseUser, accept: bool
) -> Member | None:
    """Accept (join with the offered role) or decline an invitation addressed to ``user``.

    The caller found the invitation among the user's own (``selectors.invitations_for``).
    Joining is audited as any new member is, with the person themself as the actor.
    """
    if invitation.login != user.get_username():
        raise NotFound("No such invitation.")
    now = timezone.now()
    # A conditional update: of two answers at once, the second waits for the first's row and
    # then finds the invitation no longer open.
    answered = Invitation.objects.filter(
        pk=invitation.pk, status=InvitationStatus.PENDING, expires_at__gt=now
    ).update(
        status=InvitationStatus.ACCEPTED if accept else InvitationStatus.DECLINED,
        answered_at=now,
        updated_at=now,
    )
    if not answered:
        raise Conflict("The invitation is not open any more.", code=ErrorCode.INVALID_STATUS)
    if not accept:
        return None
    return member_join(
        organization=invitation.organization, user=user, role=invitation.role, actor=user
    )


@transaction.atomic
def member_role_change(
    *, member: Member, role: str, actor: AbstractBaseUser | None, reason: str = ""
) -> Member:
    """Give a member another role in the organization, audited.

    Becoming an annotator or a reviewer gives them a working profile if they had none (a
    reviewer's skill levels and certifications, which review layers ask for, live there, and a
    project takes them on as a reviewer through it); leaving the role keeps
    it (skills and certifications stay on record) while the API refuses them annotators' work.
    Leases held in a role left are ended by the database's access rule, in this transaction.
    The organization's last active manager keeps the role (409), so that someone can still
    manage it. The same role again changes nothing and is not audited.
    """
    if role not in Role.values:
        raise ValidationFailed(
            f"Unknown role {role!r}.",
            fields={"role": [f"Must be one of {', '.join(Role.values)}."]},
        )
    member = lock_member_with_managers(member.pk)
    if member.role == role:
        return member
    if member.role == Role.MANAGER and member.is_active:
        others = Member.objects.filter(
            organization_id=member.organization_id, role=Role.MANAGER, is_active=True
        ).exclude(pk=member.pk)
        if not others.exists():
            raise Conflict(
                "The organization's last manager keeps the role; make someone else manager first.",
                code=ErrorCode.INVALID_STATUS,
                fields={"role": ["The last active manager cannot leave the role."]},
            )
    annotator = Annotator.objects.filter(member=member).first()
    if role in PROFILE_ROLES and annotator is None:
        annotator = Annotator.objects.create(member=member)
    changes = model_update(member, {"role": role})
    audit_record(
        organization=member.organization,
        actor=actor,
        verb=AuditVerb.MEMBER_ROLE_CHANGED,
        target=member,
        annotator=annotator,
        changes=changes,
        reason=reason,
    )
    return member
