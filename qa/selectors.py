"""Reads of quality data, scoped to what the asking member may see."""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Count, Exists, F, Func, OuterRef, Prefetch, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from tasks.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ProjectMember,
    ProjectRole,
    Task,
)
from tasks.selectors import project_list
from workforce.models import Annotator, AnnotatorStatus, Domain, Member, Organization, Role
from workforce.tenancy import STAFF

from . import reviews
from .gold import RECENT_N, AccuracyFigures, combined, figures, own_figures, review_figures
from .models import (
    Accuracy,
    ErrorTag,
    Exam,
    ExamAnswer,
    ExamAttempt,
    GoldScore,
    QualityAction,
    QualityRule,
    Review,
    ReviewAccuracy,
    ReviewerRole,
    ReviewItem,
    ReviewItemState,
    ReviewLayer,
    TaskConsensus,
    Verdict,
)
from .stats import hour_rows, own_live_row
from .verdicts import Wanted, version_payloads

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


def live_project_visible(*, access: LiveAccess, project_id: int) -> bool:
    """Whether a socket of ``access`` may follow the project: one of its organization's for
    staff, one they belong to for everyone else (as the API lists projects)."""
    member = Member.objects.select_related("organization").get(pk=access.member_id)
    return project_list(member=member).filter(pk=project_id).exists()


def live_snapshot(
    *, access: LiveAccess, organization: str, project_id: int | None, cursor: int
) -> dict:
    """What a socket's page shows now, as its ``snapshot`` carries it (``qa/live.py``).

    On a project, staff get its leaderboard (the rows of its accuracy API, all of them) and
    the stats of the hour of everyone on it. Anyone else gets their own rows of the hour (in
    the project, or in each of theirs), throughput alone (``qa.own_view``).
    """
    leaderboard, stats = None, []
    if project_id is not None and access.staff:
        project = Project.objects.get(pk=project_id, organization_id=access.organization_id)
        leaderboard = project_accuracy(project=project)[:]
        stats = hour_rows(
            project_id=project_id,
            annotator_ids=[row["annotator"] for row in leaderboard],
            hour=timezone.now(),
        )
    elif not access.staff:
        own = Annotator.objects.filter(member_id=access.member_id).values_list("pk", flat=True)
        rows = hour_rows(project_id=project_id, annotator_ids=list(own), hour=timezone.now())
        stats = [own_live_row(row) for row in rows]
    return {
        "organization": organization,
        "role": access.role,
        "member": access.member_id,
        "cursor": cursor,
        "project": project_id,
        "leaderboard": leaderboard,
        "stats": stats,
    }


def had_membership(*, user_id: int, organization: str) -> bool:
    """Whether the user holds a membership of the organization, active or not.

    Tells a socket refused for access that ended (a deactivated membership) from one naming an
    organization the user is not in, which is not confirmed to exist.
    """
    return Member.objects.filter(user_id=user_id, organization__slug=organization).exists()


# Accuracy and gold health. Every read here is of rows kept current by the submissions
# (``qa.gold``): none scans annotations or scores per annotator.


class RankedAccuracy(Sequence):
    """A project's accuracy table, best lower bound first: ranked whole, each row built when
    it is read, so that a page costs its own rows only."""

    def __init__(self, rows: list[tuple[int, str, AccuracyFigures, AccuracyFigures]]):
        def key(row):
            interval = row[2].interval
            return (interval is None, -(interval[0] if interval else 0.0), row[1])

        self._rows = sorted(rows, key=key)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._row(row) for row in self._rows[index]]
        return self._row(self._rows[index])

    @staticmethod
    def _row(row) -> dict:
        annotator_id, username, shown, reviewed = row
        return (
            {"annotator": annotator_id, "username": username}
            | shown.as_dict()
            | {"review": review_figures(reviewed.scored, reviewed.score_sum)}
        )


def project_accuracy(*, project: Project) -> RankedAccuracy:
    """Every annotator on the project, and anyone scored or reviewed in it: their gold
    accuracy there, ranked by its interval's lower bound (those without a score last), with
    their review accuracy beside it.

    Three queries, and no score array is read: the latest gold scores' sum is kept beside them.
    """
    scored = Accuracy.objects.filter(project=project)
    rows = {
        annotator_id: AccuracyFigures(n, k, recent_sum, min(recent_n, RECENT_N))
        for annotator_id, n, k, recent_sum, recent_n in scored.annotate(
            recent_n=Func("recent", function="cardinality")
        ).values_list("annotator_id", "scored", "score_sum", "recent_sum", "recent_n")
    }
    reviewed = ReviewAccuracy.objects.filter(project=project)
    reviews = {
        annotator_id: AccuracyFigures(n, k)
        for annotator_id, n, k in reviewed.values_list("annotator_id", "reviewed", "score_sum")
    }
    members = ProjectMember.objects.filter(project=project, role=ProjectRole.ANNOTATOR)
    people = Annotator.objects.filter(
        Q(pk__in=members.values("annotator_id"))
        | Q(pk__in=scored.values("annotator_id"))
        | Q(pk__in=reviewed.values("annotator_id"))
    ).values_list("pk", "member__user__username")
    unscored = AccuracyFigures(0, 0.0)
    return RankedAccuracy(
        [
            (pk, username, rows.get(pk, unscored), reviews.get(pk, unscored))
            for pk, username in people
        ]
    )


def _rollups(gold: dict[int, AccuracyFigures], reviewed: dict[int, AccuracyFigures]) -> dict:
    """Per project, per kind and per domain (a project's required domains): gold accuracy as
    given (by project id), and review accuracy beside it."""
    projects = {
        p.pk: p
        for p in Project.objects.filter(pk__in=[*gold, *reviewed]).prefetch_related(
            "required_domains"
        )
    }
    none = AccuracyFigures(0, 0.0)
    by_kind: dict[str, tuple[list, list]] = {}
    by_domain: dict[str, tuple[list, list]] = {}
    for pk, project in projects.items():
        parts = (gold.get(pk, none), reviewed.get(pk, none))
        groups = [by_kind.setdefault(project.kind, ([], []))]
        groups += [by_domain.setdefault(d.slug, ([], [])) for d in project.required_domains.all()]
        for group in groups:
            group[0].append(parts[0])
            group[1].append(parts[1])

    def shown(gold_part: AccuracyFigures, review_part: AccuracyFigures) -> dict:
        return gold_part.as_dict() | {
            "review": review_figures(review_part.scored, review_part.score_sum)
        }

    return {
        "projects": [
            {"project": pk, "name": projects[pk].name}
            | shown(gold.get(pk, none), reviewed.get(pk, none))
            for pk in sorted(projects)
        ],
        "kinds": [
            {"kind": kind} | shown(combined(g), combined(r))
            for kind, (g, r) in sorted(by_kind.items())
        ],
        "domains": [
            {"domain": slug} | shown(combined(g), combined(r))
            for slug, (g, r) in sorted(by_domain.items())
        ],
    }


def _review_rows(annotator: Annotator) -> dict[int, AccuracyFigures]:
    rows = ReviewAccuracy.objects.filter(annotator=annotator, reviewed__gt=0)
    return {
        project_id: AccuracyFigures(n, k)
        for project_id, n, k in rows.values_list("project_id", "reviewed", "score_sum")
    }


def annotator_accuracy(*, annotator: Annotator) -> dict:
    """An annotator's gold and review accuracy per project, and rolled up per kind and per
    domain, for staff."""
    rows = Accuracy.objects.filter(annotator=annotator)
    gold = {row.project_id: figures(row) for row in rows}
    return {"annotator": annotator.pk} | _rollups(gold, _review_rows(annotator))


def own_accuracy(*, annotator: Annotator) -> dict:
    """What an annotator reads of their own accuracy: aggregates only.

    Gold figures are as of the end of the last day (``qa.gold.own_figures``), so that nothing
    they read moves when one task is scored: not a figure, and not a row appearing with a
    project's first gold score. Review figures are live: reviews never concern gold (gold work
    is never reviewed), so a verdict moving them tells nothing about gold.
    """
    gold = {
        row.project_id: shown
        for row in Accuracy.objects.filter(annotator=annotator)
        if (shown := own_figures(row)).scored
    }
    return {"annotator": annotator.pk} | _rollups(gold, _review_rows(annotator))


def staffing_accuracy(*, project: Project, annotator_ids: list[int]) -> dict[int, dict]:
    """For staffing: each annotator's accuracy in the project's kind, and in each of its
    required domains where known (``None`` where nothing was scored)."""
    domains = list(project.required_domains.values_list("pk", "slug"))
    kind = (
        Accuracy.objects.filter(annotator_id__in=annotator_ids, project__kind=project.kind)
        .values("annotator_id")
        .annotate(n=Sum("scored"), k=Sum("score_sum"))
    )
    in_domain = (
        Accuracy.objects.filter(
            annotator_id__in=annotator_ids,
            project__required_domains__in=[pk for pk, _slug in domains],
        )
        .values("annotator_id", "project__required_domains")
        .annotate(n=Sum("scored"), k=Sum("score_sum"))
    )
    slugs = dict(domains)
    out: dict[int, dict] = {}
    for row in kind:
        out.setdefault(row["annotator_id"], {"kind": None, "domains": {}})["kind"] = (
            AccuracyFigures(row["n"], row["k"]).as_dict()
        )
    for row in in_domain:
        entry = out.setdefault(row["annotator_id"], {"kind": None, "domains": {}})
        slug = slugs[row["project__required_domains"]]
        entry["domains"][slug] = AccuracyFigures(row["n"], row["k"]).as_dict()
    return out


# The most accurate annotators, whose results on a gold task tell whether its answer holds:
# the top fifth by the lower bound of their interval, at least this many, among those with at
# least ``TOP_MIN_SCORED`` scores.
TOP_SHARE = 0.2
TOP_AT_LEAST = 3
TOP_MIN_SCORED = 5
# A score under this is a failed gold task; ``contested`` when most of the best fail it, once
# at least ``CONTESTED_MIN`` of them did it.
PASS_SCORE = 0.5
CONTESTED_MIN = 3


def top_annotators(project: Project) -> set[int]:
    ranked = [
        (figures(row).interval[0], row.annotator_id)
        for row in Accuracy.objects.filter(project=project, scored__gte=TOP_MIN_SCORED)
    ]
    ranked.sort(reverse=True)
    size = max(TOP_AT_LEAST, math.ceil(len(ranked) * TOP_SHARE))
    return {annotator_id for _low, annotator_id in ranked[:size]}


def _active_annotators(project: Project) -> int:
    """How many annotators work on the project now: gold exposure is a share of them."""
    return ProjectMember.objects.filter(
        project=project, role=ProjectRole.ANNOTATOR, is_active=True
    ).count()


def gold_tasks(*, project: Project) -> QuerySet[Task]:
    return Task.objects.filter(project=project, is_gold=True).order_by("id")


def gold_health(*, project: Project, tasks: list[Task]) -> dict[int, dict]:
    """Health of the given gold tasks of the project, in a fixed number of queries."""
    ids = [t.pk for t in tasks]
    annotators = _active_annotators(project)
    served = dict(
        Assignment.objects.filter(task_id__in=ids)
        .values("task_id")
        .annotate(n=Count("pk"))
        .values_list("task_id", "n")
    )
    scores: dict[int, list[tuple[int, float]]] = {}
    for task_id, annotator_id, score in GoldScore.objects.filter(task_id__in=ids).values_list(
        "task_id", "annotator_id", "score"
    ):
        scores.setdefault(task_id, []).append((annotator_id, score))
    best = top_annotators(project)
    health = {}
    for task in tasks:
        results = scores.get(task.pk, [])
        of_best = [score for annotator_id, score in results if annotator_id in best]
        failed_by_best = sum(score < PASS_SCORE for score in of_best)
        exposure = served.get(task.pk, 0) / annotators if annotators else 0.0
        health[task.pk] = {
            "served": served.get(task.pk, 0),
            "scored": len(results),
            "mean_score": sum(s for _a, s in results) / len(results) if results else None,
            "best_scored": len(of_best),
            "best_mean_score": sum(of_best) / len(of_best) if of_best else None,
            "exposure": exposure,
            "contested": len(of_best) >= CONTESTED_MIN and failed_by_best * 2 > len(of_best),
            "overexposed": exposure > project.gold_max_exposure,
        }
    return health


def gold_pool(*, project: Project) -> dict:
    """The project's gold pool: how many tasks serve, and how many annotators saw them all."""
    in_service = Task.objects.filter(project=project, is_gold=True, gold_retired_at__isnull=True)
    size = in_service.count()
    seen = (
        Assignment.objects.filter(task__in=in_service)
        .values("annotator_id")
        .annotate(n=Count("pk"))
    )
    members = _active_annotators(project)
    dry = sum(1 for row in seen if size and row["n"] >= size)
    return {
        "gold_tasks": size,
        "retired": Task.objects.filter(project=project, is_gold=True)
        .exclude(gold_retired_at=None)
        .count(),
        "annotators": members,
        "annotators_who_saw_every_gold_task": dry,
        "ran_dry": size == 0 or (members > 0 and dry > 0),
    }


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


_CONSENSUS = f"""
SELECT task_id, payload, method, confidence FROM {TaskConsensus._meta.db_table}
WHERE task_id = ANY(%s::bigint[])
"""  # noqa: S608


def consensus_for(task_ids: Sequence[int]) -> dict[int, tuple[object, str, float]]:
    """The stored consensus of each of the tasks that have one: task id -> (payload, method,
    confidence), ``method`` a ``ConsensusMethod``. One query, whatever the number of tasks.

    A task has one once it reached its overlap (of two or more) and its job ran; the export
    falls back to the single annotation or the reviewed version where there is none.
    """
    with connection.cursor() as cursor:
        # One array parameter: the export asks for hundreds of tasks at a time, and as many
        # parameters cost more than the lookup itself.
        cursor.execute(_CONSENSUS, [list(task_ids)])
        rows = cursor.fetchall()
    # Django leaves jsonb undecoded on raw cursors.
    return {
        task: (json.loads(payload), method, confidence)
        for task, payload, method, confidence in rows
    }


# Per task, the counted annotation (its assignment submitted) whose current version the most
# recent verdict accepted or made by a correction, with that version. Driven by the verdicts, so
# that a project without any costs nothing; one array parameter, however many tasks.
_REVIEWED = f"""
SELECT DISTINCT ON (a.task_id) a.task_id, a.id,
       CASE WHEN a.version = a.payload_version THEN a.payload END, a.payload_version, a.version
FROM {Review._meta.db_table} r
JOIN {Annotation._meta.db_table} a ON a.id = r.annotation_id
JOIN {Assignment._meta.db_table} s ON s.id = a.assignment_id
WHERE a.task_id = ANY(%s::bigint[]) AND s.status = '{AssignmentStatus.SUBMITTED}'
  AND ((r.verdict = '{Verdict.ACCEPT}' AND r.version = a.version)
       OR (r.verdict = '{Verdict.CORRECT}' AND r.version + 1 = a.version))
ORDER BY a.task_id, r.id DESC
"""  # noqa: S608


def review_answers(task_ids: Sequence[int]) -> dict[int, object]:
    """What review made final on each of the tasks that have it: task id -> payload. Two
    queries at most, whatever the number of tasks.

    A task's counted annotations (their assignment submitted) whose current version a reviewer
    accepted, or made by a correction (the version after the one judged), have one; of several
    (a task with overlap), the one of the most recent such verdict. A version judged before a
    rework or a later correction is not current any more, and does not count. Its content is
    ``qa.verdicts.version_payloads``'s to read.
    """
    with connection.cursor() as cursor:
        cursor.execute(_REVIEWED, [list(task_ids)])
        rows = cursor.fetchall()
    tasks = [row[0] for row in rows]
    # Django leaves jsonb undecoded on raw cursors; a payload not wanted is not sent.
    wanted = [
        Wanted(pk, version, json.loads(payload) if payload is not None else None, own)
        for _, pk, payload, own, version in rows
    ]
    return dict(zip(tasks, version_payloads(wanted), strict=True))


def final_answers(task_ids: Sequence[int]) -> dict[int, tuple[object, str]]:
    """The final answer of each of the tasks that have one from quality, as (payload, source):
    what review made final (``review_answers``), else the stored consensus. The export asks
    for them (``tasks.exports``), a batch at a time; three queries at most, each with one array
    parameter (hundreds of parameters would cost more than the lookups)."""
    answers = {task: (payload, "review") for task, payload in review_answers(task_ids).items()}
    rest = [task for task in task_ids if task not in answers]
    answers.update(
        (task, (payload, "consensus")) for task, (payload, _, _) in consensus_for(rest).items()
    )
    return answers


# Review policy and review queues.


def review_policy(*, project: Project) -> dict:
    """The project's review policy as the API shows it and the audit log records it: layers in
    position order, with their required domains' slugs, and the error taxonomy by code."""
    layers = ReviewLayer.objects.filter(project=project).prefetch_related(
        Prefetch("required_domains", queryset=Domain.objects.order_by("slug"))
    )
    return {
        "layers": [
            {
                "position": layer.position,
                "name": layer.name,
                "sample_rate": layer.sample_rate,
                "floor_rate": layer.floor_rate,
                "role": layer.role,
                "min_skill_level": layer.min_skill_level,
                "required_domains": [d.slug for d in layer.required_domains.all()],
            }
            for layer in layers.order_by("position")
        ],
        "error_tags": list(
            ErrorTag.objects.filter(project=project).order_by("code").values("code", "description")
        ),
    }


def own_review_items(*, member: Member) -> QuerySet[ReviewItem]:
    """The review items the member holds or judged, newest first (``review_item_reviewer_idx``).

    Items they released or lost are no longer theirs, and not listed.
    """
    return (
        ReviewItem.objects.filter(reviewer=member)
        .select_related("layer", "project")
        .order_by("-id")
    )


def review_item_get(*, member: Member, item_id: int) -> ReviewItem:
    """A review item of the member's organization; 404 for another's or none.

    Whether the member holds it is the service's to say (``qa.reviews.review_lease_check``), so
    that a lease that ended answers why.
    """
    return get_object_or_404(
        ReviewItem.objects.select_related("layer", "project"),
        pk=item_id,
        project__organization_id=member.organization_id,
    )


# Per layer of a project: its queue now, and its sampling decisions since a moment. Each count
# is an index scan of one layer's rows: the open and leased ones through the claim's partial
# indexes, arrivals through (layer, arrived_at); nothing reads a layer's whole history.
_QUEUES_SQL = f"""
SELECT l.position, l.name, l.role, l.sample_rate, l.floor_rate,
    (SELECT COUNT(*) FROM {ReviewItem._meta.db_table} i
     WHERE i.layer_id = l.id AND i.state = %(open)s),
    (SELECT COUNT(*) FROM {ReviewItem._meta.db_table} i
     WHERE i.layer_id = l.id AND i.state = %(leased)s AND i.lease_expires_at > %(now)s),
    (SELECT COUNT(*) FROM {ReviewItem._meta.db_table} i
     WHERE i.layer_id = l.id AND i.state = %(leased)s AND i.lease_expires_at <= %(now)s),
    (SELECT i.arrived_at FROM {ReviewItem._meta.db_table} i
     WHERE i.layer_id = l.id AND i.state = %(open)s ORDER BY i.id LIMIT 1),
    (SELECT MIN(i.lease_expires_at) FROM {ReviewItem._meta.db_table} i
     WHERE i.layer_id = l.id AND i.state = %(leased)s AND i.lease_expires_at <= %(now)s),
    arrivals.sampled, arrivals.skipped
FROM {ReviewLayer._meta.db_table} l
CROSS JOIN LATERAL (
    SELECT COUNT(*) FILTER (WHERE i.sampled) AS sampled,
        COUNT(*) FILTER (WHERE NOT i.sampled) AS skipped
    FROM {ReviewItem._meta.db_table} i
    WHERE i.layer_id = l.id AND i.arrived_at > %(since)s
) arrivals
WHERE l.project_id = %(project)s
ORDER BY l.position
"""  # noqa: S608


def review_queues(*, project: Project, now: datetime, since: datetime) -> list[dict]:
    """Each layer's queue: items waiting (``open``), held (``leased``), lapsed leases (claimable
    again), how long the longest-waiting item has waited, and the layer's sampling decisions
    (``sampled``, ``skipped``) on what arrived since ``since``. One query, a row per layer."""
    with connection.cursor() as cursor:
        cursor.execute(
            _QUEUES_SQL,
            {
                "project": project.pk,
                "now": now,
                "since": since,
                "open": ReviewItemState.OPEN.value,
                "leased": ReviewItemState.LEASED.value,
            },
        )
        rows = cursor.fetchall()
    queues = []
    for (
        position,
        name,
        role,
        rate,
        floor,
        waiting,
        leased,
        lapsed,
        oldest,
        lapsed_at,
        *counts,
    ) in rows:
        # A lapsed lease waits again from when it lapsed.
        since_when = [moment for moment in (oldest, lapsed_at) if moment is not None]
        queues.append(
            {
                "layer": position,
                "name": name,
                "role": role,
                "sample_rate": rate,
                "floor_rate": floor,
                "open": waiting,
                "leased": leased,
                "lapsed": lapsed,
                "oldest_waiting_seconds": (
                    round((now - min(since_when)).total_seconds(), 3) if since_when else None
                ),
                "sampled": counts[0],
                "skipped": counts[1],
            }
        )
    return queues


def review_staffing(*, project: Project, now: datetime) -> list[dict]:
    """The organization's reviewers ranked for the project's review: qualified first (at one
    of its ``reviewer`` layers at least, by the review claim's rule), then by skill level in
    the project's kind and spare room. Five queries, whatever the number of reviewers.

    Each row says, per such layer, whether they qualify and in words why not; whether they are
    an active reviewer member of the project (``is_member``: who may review there); and their
    live review leases in it against the project's ``max_concurrent_tasks``. The ``annotator``
    id is their working profile's, which ``POST /projects/{id}/members`` with the role
    ``reviewer`` takes. QA leads review at every layer without membership, and are not listed.
    """
    layers = list(
        ReviewLayer.objects.filter(project=project, role=ReviewerRole.REVIEWER).order_by("position")
    )
    reviewers = list(
        Annotator.objects.filter(
            member__organization_id=project.organization_id, member__role=Role.REVIEWER
        )
        .select_related("member__user")
        .annotate(
            is_member=Exists(
                ProjectMember.objects.filter(
                    project=project,
                    annotator=OuterRef("pk"),
                    is_active=True,
                    role=ProjectRole.REVIEWER,
                )
            )
        )
    )
    members = [reviewer.member_id for reviewer in reviewers]
    found = (
        reviews.layer_qualifications(members, [layer.pk for layer in layers], now)
        if members and layers
        else {}
    )
    slugs = reviews.domain_slugs(found)
    live = dict(
        ReviewItem.objects.filter(
            reviewer_id__in=members,
            project=project,
            state=ReviewItemState.LEASED,
            lease_expires_at__gt=now,
        )
        .values("reviewer_id")
        .annotate(n=Count("id"))
        .values_list("reviewer_id", "n")
    )
    rows = []
    for reviewer in reviewers:
        member, user = reviewer.member, reviewer.member.user
        at = [(layer, found[member.pk, layer.pk]) for layer in layers]
        active = reviewer.status == AnnotatorStatus.ACTIVE
        held = live.get(member.pk, 0)
        rows.append(
            {
                "annotator": reviewer.pk,
                "username": user.username,
                "name": user.get_full_name(),
                "status": reviewer.status,
                "qualified": active and any(q.qualified for _, q in at),
                "skill_level": next((q.skill_level for _, q in at), None),
                "layers": [
                    {
                        "layer": layer.position,
                        "name": layer.name,
                        "qualified": q.qualified,
                        "reasons": reviews.layer_reasons(layer, project.kind, q, slugs),
                    }
                    for layer, q in at
                ],
                "is_member": reviewer.is_member,
                "load": {
                    "live_reviews_here": held,
                    "project_max_concurrent_tasks": project.max_concurrent_tasks,
                    "has_room": held < project.max_concurrent_tasks,
                },
            }
        )
    rows.sort(
        key=lambda r: (
            not r["qualified"],
            -(r["skill_level"] or 0),
            r["load"]["live_reviews_here"],
            r["username"],
        )
    )
    return rows


def annotation_review_items(*, member: Member, annotation_id: int) -> QuerySet[ReviewItem]:
    """Every layer's decision on each version of an annotation of the member's organization,
    oldest first, with the verdict where there is one; 404 for another organization's."""
    annotation = get_object_or_404(
        Annotation.objects.only("pk"),
        pk=annotation_id,
        project__organization_id=member.organization_id,
    )
    return (
        ReviewItem.objects.filter(annotation=annotation)
        .select_related("layer", "review")
        .order_by("version", "layer__position", "id")
    )


# What an annotator reads of the verdicts on their work.


def annotator_gold_scores(*, project: Project, annotator: Annotator, limit: int) -> list[dict]:
    """The annotator's latest ``limit`` gold scores in the project, newest first, as each stands
    now (a rescore replaces its score): for the QA lead's trend and results. One query, by
    ``gold_score_annotator_idx``."""
    rows = (
        GoldScore.objects.filter(project=project, annotator=annotator)
        .order_by("-scored_at")
        .values_list("annotation_id", "task_id", "score", "answer_version", "scored_at")[:limit]
    )
    return [
        {"annotation": annotation, "task": task, "score": score, "answer_version": version,
         "scored_at": scored_at}
        for annotation, task, score, version, scored_at in rows
    ]  # fmt: skip


def annotator_error_tags(*, project: Project, annotator: Annotator) -> list[dict]:
    """How often each tag of the project's error taxonomy was given to the annotator's work
    there, most often first (``code``, ``description``, ``count``). Two queries: the tags,
    counted in the database, and the taxonomy."""
    with connection.cursor() as cursor:
        cursor.execute(_ERROR_TAGS, {"project": project.pk, "member": annotator.member_id})
        counted = cursor.fetchall()
    described = tag_descriptions([project.pk])
    return [
        {"code": code, "description": described.get((project.pk, code), ""), "count": count}
        for code, count in counted
    ]


# A project's reviews of one author's work, by ``review_author_idx``.
_ERROR_TAGS = f"""
SELECT tag, count(*) FROM {Review._meta.db_table} r, unnest(r.tags) AS tag
WHERE r.project_id = %(project)s AND r.author_member_id = %(member)s
GROUP BY tag ORDER BY count(*) DESC, tag
"""  # noqa: S608


def tag_descriptions(project_ids) -> dict[tuple[int, str], str]:
    """The error taxonomies of the given projects, in one query: (project, code) -> description."""
    rows = ErrorTag.objects.filter(project_id__in=set(project_ids))
    return {
        (p, code): text for p, code, text in rows.values_list("project_id", "code", "description")
    }


def own_reviews(*, member: Member) -> QuerySet[Review]:
    """The verdicts on the member's own work, newest first, with the task and assignment they
    concern. Who gave them is not among what the author reads (``qa.verdict_api``)."""
    return (
        Review.objects.filter(author_member=member, project__organization_id=member.organization_id)
        .select_related("layer")
        .annotate(task_id=F("annotation__task_id"), assignment_id=F("annotation__assignment_id"))
        .order_by("-id")
    )


def rework_notes(assignment_ids: list[int]) -> dict[int, dict]:
    """For each given assignment whose work was rejected and not resubmitted since: the
    rejection, as ``tasks.serializers.ReworkOut`` shows it. Two queries whatever the number.

    Registered as ``tasks``' rework reader in ``QaConfig.ready()``.
    """
    rejections = list(
        Review.objects.filter(
            annotation__assignment_id__in=assignment_ids,
            verdict=Verdict.REJECT,
            # Not resubmitted: the annotation is still at the version rejected.
            version=F("annotation__version"),
        ).values(
            "pk",
            "project_id",
            "tags",
            "comment",
            "created_at",
            "layer__name",
            "annotation__assignment_id",
        )
    )
    if not rejections:
        return {}
    described = tag_descriptions(r["project_id"] for r in rejections)
    return {
        r["annotation__assignment_id"]: {
            "review": r["pk"],
            "layer": r["layer__name"],
            "tags": [
                {"code": tag, "description": described.get((r["project_id"], tag), "")}
                for tag in r["tags"]
            ],
            "comment": r["comment"],
            "rejected_at": r["created_at"],
        }
        for r in rejections
    }
