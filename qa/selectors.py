"""Reads of quality data, scoped to what the asking member may see."""

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from tasks.models import Project
from workforce.models import Annotator, AnnotatorStatus, Member, Organization
from workforce.tenancy import STAFF

from .models import QualityAction, QualityRule

# Session engines whose sessions are rows of ``django_session``: checked in the same statement.
_SESSION_TABLE_ENGINES = {
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
}


@dataclass(frozen=True)
class SocketKey:
    """Who a WebSocket connected as: the user, the organization it names, its session."""

    user_id: int
    organization: str
    session_key: str | None


@dataclass(frozen=True)
class LiveAccess:
    """What a socket may receive: the organization's staff events, and its member's own."""

    member_id: int
    organization_id: int
    role: str

    @property
    def staff(self) -> bool:
        return self.role in STAFF


def _access_sql(check_session: bool) -> str:
    sessions = Session._meta.db_table
    session = (
        f"AND (k.session_key IS NULL OR EXISTS (SELECT 1 FROM {sessions} s "  # noqa: S608
        "WHERE s.session_key = k.session_key AND s.expire_date > now()))"
        if check_session
        else ""
    )
    # Every name comes from the models; the keys are parameters.
    return f"""
        SELECT k.i, m.id, m.organization_id, m.role
        FROM unnest(%s::bigint[], %s::text[], %s::text[])
            WITH ORDINALITY AS k(user_id, slug, session_key, i)
        JOIN {Organization._meta.db_table} o ON o.slug = k.slug
        JOIN {Member._meta.db_table} m
            ON m.organization_id = o.id AND m.user_id = k.user_id AND m.is_active
        JOIN {get_user_model()._meta.db_table} u ON u.id = m.user_id AND u.is_active
        LEFT JOIN {Annotator._meta.db_table} a ON a.member_id = m.id
        WHERE (a.id IS NULL OR a.status <> %s) {session}
    """  # noqa: S608


def live_access(keys: Sequence[SocketKey]) -> list[LiveAccess | None]:
    """What each socket may receive now, in one query for all; None where access has ended.

    Access ends when the membership or the user is deactivated, the annotator is offboarded,
    or the session is gone (logged out, expired, flushed). The same rule admits a socket when
    it connects and keeps it while it stays open, whichever path changed the rows (a service,
    the admin, SQL).
    """
    if not keys:
        return []
    check_session = settings.SESSION_ENGINE in _SESSION_TABLE_ENGINES
    with connection.cursor() as cursor:
        cursor.execute(
            _access_sql(check_session),
            [
                [key.user_id for key in keys],
                [key.organization for key in keys],
                [key.session_key for key in keys],
                AnnotatorStatus.OFFBOARDED.value,
            ],
        )
        rows = cursor.fetchall()
    found: list[LiveAccess | None] = [None] * len(keys)
    for index, member_id, organization_id, role in rows:
        found[index - 1] = LiveAccess(member_id, organization_id, role)
    if not check_session:
        store = import_module(settings.SESSION_ENGINE).SessionStore
        for index, key in enumerate(keys):
            if found[index] and key.session_key and not store().exists(key.session_key):
                found[index] = None
    return found


def had_membership(*, user_id: int, organization: str) -> bool:
    """Whether the user holds a membership of the organization, active or not.

    Tells a socket refused for access that ended (a deactivated membership) from one naming an
    organization the user is not in, which is not confirmed to exist.
    """
    return Member.objects.filter(user_id=user_id, organization__slug=organization).exists()


def quality_rule_list(*, member: Member) -> QuerySet[QualityRule]:
    """The organization's quality rules, defaults and per project."""
    return QualityRule.objects.filter(organization_id=member.organization_id)


def quality_rule_get(*, member: Member, rule_id: int) -> QualityRule:
    return get_object_or_404(
        quality_rule_list(member=member).select_related("organization"), pk=rule_id
    )


def quality_action_list(
    *, member: Member, project_id: int | None = None, annotator_id: int | None = None
) -> QuerySet[QualityAction]:
    """Actions quality rules took in the organization, newest first; another organization's
    project or annotator is a 404."""
    qs = QualityAction.objects.filter(organization_id=member.organization_id)
    if project_id is not None:
        get_object_or_404(Project, pk=project_id, organization_id=member.organization_id)
        qs = qs.filter(project_id=project_id)
    if annotator_id is not None:
        get_object_or_404(
            Annotator, pk=annotator_id, member__organization_id=member.organization_id
        )
        qs = qs.filter(annotator_id=annotator_id)
    return qs.select_related("undone_by")


def quality_action_get(*, member: Member, action_id: int) -> QualityAction:
    return get_object_or_404(quality_action_list(member=member), pk=action_id)
