"""Reads of quality data, scoped to what the asking member may see."""

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Count, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from workforce.models import Annotator, AnnotatorStatus, Member, Organization
from workforce.tenancy import STAFF

from .models import Exam, ExamAnswer, ExamAttempt

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


# Exams: staff read the organization's exams and attempts; an annotator their own.


def exam_list(*, member: Member) -> QuerySet[Exam]:
    """The organization's exams, for staff, with their item counts."""
    return (
        Exam.objects.filter(organization=member.organization)
        .select_related("domain")
        .annotate(item_total=Count("items"))
        .order_by("name", "id")
    )


def exam_get(*, member: Member, exam_id: int) -> Exam:
    """One of the organization's exams, with its items, for staff; 404 from elsewhere."""
    return get_object_or_404(exam_list(member=member).prefetch_related("items"), pk=exam_id)


def exam_attempt_list(*, member: Member, exam_id: int) -> QuerySet[ExamAttempt]:
    """An exam's attempts with their answers (per-item scores), for staff."""
    exam = get_object_or_404(Exam.objects.filter(organization=member.organization), pk=exam_id)
    return (
        ExamAttempt.objects.filter(exam=exam)
        .select_related("annotator__member__user")
        .prefetch_related(Prefetch("answers", ExamAnswer.objects.order_by("position")))
    )


def own_exam_list(*, member: Member) -> QuerySet[Exam]:
    """The active exams of the annotator's organization."""
    return (
        Exam.objects.filter(organization=member.organization, is_active=True)
        .select_related("domain")
        .annotate(item_total=Count("items"))
        .order_by("name", "id")
    )


def own_exam_get(*, member: Member, exam_id: int) -> Exam:
    return get_object_or_404(own_exam_list(member=member), pk=exam_id)


def own_exam_attempt(*, member: Member, attempt_id: int) -> ExamAttempt:
    """The member's own attempt: only its taker may read it, claim or submit in it."""
    return get_object_or_404(
        ExamAttempt.objects.select_related("exam"),
        pk=attempt_id,
        annotator__member=member,
        exam__organization=member.organization,
    )


def own_exam_answer(*, member: Member, answer_id: int) -> ExamAnswer:
    return get_object_or_404(
        ExamAnswer.objects.select_related("attempt__exam__organization", "item"),
        pk=answer_id,
        attempt__annotator__member=member,
        attempt__exam__organization=member.organization,
    )
