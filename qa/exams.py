"""Qualification exams: defining them, and an annotator's attempts at them.

An annotator starts an attempt, claims its items one at a time in order and submits each once
(the shapes of the project claim and submit). The last submission scores the attempt in its own
transaction: the mean of the kind's ``compare(payload, answer)`` over the items. A pass grants
what the exam grants through the workforce services, with the attempt as evidence; a fail
starts the cooldown. Both are audited (``exam.passed``, ``exam.failed``).

Exam items live in their own table (``qa.models.exams``), never among a project's tasks.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors
from tasks.kinds import get_kind
from tasks.kinds.base import issues_by_path
from tasks.services.claims import active_seconds_check
from workforce import services as workforce
from workforce.locks import lock_annotator
from workforce.models import (
    MAX_SKILL_LEVEL,
    Annotator,
    AnnotatorSkill,
    AnnotatorStatus,
    AuditVerb,
    Certification,
    CertificationStatus,
    Domain,
    Organization,
    SkillSource,
)
from workforce.services.audit import json_value

from .locks import lock_exam_attempt
from .models import AttemptStatus, Exam, ExamAnswer, ExamAttempt, ExamItem

# "An annotator whose certification expires within 30 days is told, and can retake the exam
# to renew": how far ahead an expiry makes a passed exam open again.
RENEWAL_WINDOW = timedelta(days=30)
MAX_ITEMS = 500

# What an exam's definition is made of; all but these are settings that may change any time.
CONTENT_FIELDS = ("kind", "label_schema", "items")
EXAM_FIELDS = (
    "name",
    "instructions",
    "kind",
    "label_schema",
    "items",
    "domain",
    "pass_threshold",
    "certification_days",
    "skill_level",
    "cooldown_hours",
    "max_attempts",
    "is_active",
)


def _items_issues(kind: str, schema: dict, items) -> FieldErrors:
    """Every problem of the items: each one's data, and its answer against schema and data."""
    problems = FieldErrors()
    if not isinstance(items, list) or not items:
        problems.add("items", "List at least one item.")
        return problems
    if len(items) > MAX_ITEMS:
        problems.add("items", f"At most {MAX_ITEMS} items.")
        return problems
    handler = get_kind(kind)
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict) or set(item) != {"data", "answer"}:
            problems.add(where, 'Each item is an object with exactly "data" and "answer".')
            continue
        if not isinstance(item["data"], dict):
            problems.add(f"{where}.data", "Must be an object.")
            continue
        data_issues = handler.validate_task_data(item["data"])
        if data_issues:
            problems.update(issues_by_path(i.under(f"{where}.data") for i in data_issues))
            continue
        answer_issues = handler.payload_issues(item["answer"], schema, item["data"])
        problems.update(issues_by_path(i.under(f"{where}.answer") for i in answer_issues))
    return problems


def exam_check(*, organization: Organization, fields: dict, exam: Exam | None = None) -> None:
    """Refuse an exam's definition (whole for a new one, the changes for ``exam``), naming
    every bad field: the label schema by its kind, each item's data and answer by path, and
    what passing grants."""
    merged = {name: getattr(exam, name) for name in EXAM_FIELDS if name != "items"} if exam else {}
    merged.update(fields)
    problems = FieldErrors()
    kind = merged.get("kind")
    schema = merged.get("label_schema", {})
    schema_issues = get_kind(kind).validate_schema(schema) if kind else []
    problems.update(issues_by_path(i.under("label_schema") for i in schema_issues))
    if kind and not schema_issues and "items" in fields:
        problems.update(_items_issues(kind, schema, fields["items"]).fields)
    elif exam is not None and kind and not schema_issues and {"kind", "label_schema"} & set(fields):
        # A new kind or schema must still accept every stored answer.
        stored = [{"data": i.data, "answer": i.answer} for i in exam.items.all()]
        problems.update(_items_issues(kind, schema, stored).fields)
    domain = merged.get("domain")
    if domain is not None and domain.organization_id != organization.pk:
        problems.add("domain", "Unknown domain.")
    threshold = merged.get("pass_threshold")
    if threshold is not None and not 0 <= threshold <= 1:
        problems.add("pass_threshold", "Must be from 0 to 1.")
    days, level = merged.get("certification_days"), merged.get("skill_level")
    if days is not None and domain is None:
        problems.add("domain", "A certification needs the domain it is granted in.")
    if level is not None and not 1 <= level <= MAX_SKILL_LEVEL:
        problems.add("skill_level", f"Must be from 1 to {MAX_SKILL_LEVEL}.")
    if days is None and level is None:
        problems.add(
            "certification_days", "Passing must grant a certification, a skill level, or both."
        )
    problems.raise_if_any("Invalid exam.")


def _items_replace(exam: Exam, items: list[dict]) -> None:
    exam.items.all().delete()
    ExamItem.objects.bulk_create(
        ExamItem(exam=exam, position=i, data=item["data"], answer=item["answer"])
        for i, item in enumerate(items)
    )


@transaction.atomic
def exam_create(
    *,
    organization: Organization,
    actor: AbstractBaseUser | None,
    name: str,
    kind: str,
    label_schema: dict,
    items: list[dict],
    pass_threshold: float,
    domain: Domain | None = None,
    **options,
) -> Exam:
    """Create an exam with its items, in the order given."""
    fields = {"kind": kind, "label_schema": label_schema, "items": items, "domain": domain}
    fields |= {"pass_threshold": pass_threshold} | options
    exam_check(organization=organization, fields=fields)
    exam = Exam.objects.create(
        organization=organization,
        created_by=actor,
        name=name,
        kind=kind,
        label_schema=label_schema,
        domain=domain,
        pass_threshold=pass_threshold,
        **options,
    )
    _items_replace(exam, items)
    workforce.audit_record(
        organization=organization,
        actor=actor,
        verb=AuditVerb.EXAM_CREATED,
        target=exam,
        after=_exam_settings(exam) | {"items": len(items)},
    )
    return exam


def _exam_settings(exam: Exam) -> dict:
    return workforce.field_values(exam, [name for name in EXAM_FIELDS if name != "items"])


@transaction.atomic
def exam_update(*, exam: Exam, actor: AbstractBaseUser | None, **fields) -> Exam:
    """Change an exam's settings, or activate or deactivate it.

    Its kind, label schema and items are fixed once anyone attempted it: attempts are scored
    against the items they were given, and a changed item would make two attempts incomparable.
    """
    exam = Exam.objects.select_for_update(of=("self",)).select_related("domain").get(pk=exam.pk)
    frozen = sorted(name for name in CONTENT_FIELDS if name in fields)
    if frozen and ExamAttempt.objects.filter(exam=exam).exists():
        raise Conflict(
            f"{', '.join(frozen)} cannot change once the exam was attempted; create a new exam.",
            code=ErrorCode.FROZEN,
        )
    exam_check(organization=exam.organization, fields=fields, exam=exam)
    items = fields.pop("items", None)
    changes = workforce.model_update(exam, fields)
    if items is not None:
        _items_replace(exam, items)
        changes["items"] = (None, len(items))
    if changes:
        workforce.audit_record(
            organization=exam.organization,
            actor=actor,
            verb=AuditVerb.EXAM_UPDATED,
            target=exam,
            changes=changes,
        )
    return exam


@dataclass(frozen=True)
class ExamState:
    """Where an annotator stands with one exam, at ``now``."""

    exam: Exam
    now: datetime
    in_progress: int | None = None
    attempts_used: int = 0
    last_failed_at: datetime | None = None
    passed_at: datetime | None = None
    certification: Certification | None = None

    @property
    def attempts_left(self) -> int | None:
        if self.exam.max_attempts is None:
            return None
        return max(self.exam.max_attempts - self.attempts_used, 0)

    @property
    def cooldown_until(self) -> datetime | None:
        if self.last_failed_at is None:
            return None
        until = self.last_failed_at + timedelta(hours=self.exam.cooldown_hours)
        return until if until > self.now else None

    @property
    def renewal_due(self) -> bool:
        """The annotator holds the exam's certification (in force or lapsed, not suspended or
        revoked) and it expires within ``RENEWAL_WINDOW``: a retake renews it."""
        cert = self.certification
        return (
            self.exam.certification_days is not None
            and cert is not None
            and cert.state in (CertificationStatus.ACTIVE, CertificationStatus.EXPIRED)
            and cert.expires_at is not None
            and cert.expires_at <= self.now + RENEWAL_WINDOW
        )

    def refusal(self) -> Conflict | None:
        """Why a new attempt may not start now, or None."""
        if self.in_progress is not None:
            return Conflict(
                f"Attempt {self.in_progress} at this exam is in progress; finish it first.",
                code=ErrorCode.ATTEMPT_IN_PROGRESS,
            )
        if self.attempts_left == 0:
            return Conflict(
                f"All {self.exam.max_attempts} attempts at this exam were used.",
                code=ErrorCode.ATTEMPTS_EXHAUSTED,
            )
        if self.cooldown_until is not None:
            return Conflict(
                f"The exam can be taken again from {self.cooldown_until.isoformat()}.",
                code=ErrorCode.EXAM_COOLDOWN,
            )
        if self.passed_at is not None and not self.renewal_due:
            return Conflict(
                "You passed this exam; it opens again when its certification is due for renewal.",
                code=ErrorCode.ALREADY_PASSED,
            )
        return None


def exam_states(
    *, annotator: Annotator, exams: Iterable[Exam], now: datetime | None = None
) -> dict[int, ExamState]:
    """Each exam's ``ExamState`` for the annotator, in two queries whatever the number."""
    now = now or timezone.now()
    exams = list(exams)
    rows = (
        ExamAttempt.objects.filter(annotator=annotator, exam__in=[e.pk for e in exams])
        .values("exam_id")
        .annotate(
            in_progress=Max("pk", filter=Q(status=AttemptStatus.IN_PROGRESS)),
            failed=Count("pk", filter=Q(status=AttemptStatus.FAILED)),
            last_failed_at=Max("finished_at", filter=Q(status=AttemptStatus.FAILED)),
            passed_at=Max("finished_at", filter=Q(status=AttemptStatus.PASSED)),
        )
        .order_by()
    )
    attempts = {row["exam_id"]: row for row in rows}
    domains = {e.domain_id for e in exams if e.certification_days is not None}
    certifications = {
        c.domain_id: c
        for c in Certification.objects.with_state(now).filter(
            annotator=annotator, domain_id__in=domains
        )
    }
    states = {}
    for exam in exams:
        row = attempts.get(exam.pk, {})
        states[exam.pk] = ExamState(
            exam=exam,
            now=now,
            in_progress=row.get("in_progress"),
            attempts_used=row.get("failed", 0),
            last_failed_at=row.get("last_failed_at"),
            passed_at=row.get("passed_at"),
            certification=certifications.get(exam.domain_id),
        )
    return states


@transaction.atomic
def attempt_start(*, exam: Exam, annotator: Annotator) -> ExamAttempt:
    """Start an attempt at an active exam, or refuse why not (409).

    Refused while another attempt is in progress, after ``max_attempts`` failed ones, during the
    cooldown after a fail, and after a pass unless the exam's certification is due for renewal.
    """
    if not exam.is_active:
        raise Conflict("The exam is not active.", code=ErrorCode.INVALID_STATUS)
    # Two starts at once serialise on the annotator's row: the second reads the first's attempt.
    annotator = lock_annotator(annotator.pk)
    if annotator.status != AnnotatorStatus.ACTIVE:
        raise Conflict(
            f"You are {annotator.status} and cannot take exams.",
            code=ErrorCode.ANNOTATOR_NOT_ACTIVE,
        )
    now = timezone.now()
    state = exam_states(annotator=annotator, exams=[exam], now=now)[exam.pk]
    refusal = state.refusal()
    if refusal is not None:
        raise refusal
    try:
        with transaction.atomic():
            return ExamAttempt.objects.create(
                exam=exam,
                annotator=annotator,
                renewal=state.passed_at is not None or state.renewal_due,
                item_count=exam.items.count(),
                started_at=now,
            )
    except IntegrityError as exc:  # the partial unique constraint; the lock makes it rare
        raise Conflict(
            "An attempt at this exam is in progress.", code=ErrorCode.ATTEMPT_IN_PROGRESS
        ) from exc


def _require_in_progress(attempt: ExamAttempt) -> None:
    if attempt.status != AttemptStatus.IN_PROGRESS:
        raise Conflict(
            f"The attempt is over: it {attempt.status}.", code=ErrorCode.ATTEMPT_FINISHED
        )


@transaction.atomic
def attempt_claim(*, attempt: ExamAttempt) -> tuple[ExamAnswer, bool]:
    """The attempt's next unanswered item, and whether it was given out just now.

    Items come in order: the one given out and not yet submitted is given again, so a retried
    claim is harmless and nobody skips ahead.
    """
    attempt = lock_exam_attempt(attempt.pk)
    _require_in_progress(attempt)
    answers = ExamAnswer.objects.select_related("item").filter(attempt=attempt)
    open_answer = answers.filter(submitted_at__isnull=True).first()
    if open_answer is not None:
        return open_answer, False
    position = answers.count()
    item = ExamItem.objects.get(exam_id=attempt.exam_id, position=position)
    answer = ExamAnswer.objects.create(
        attempt=attempt, item=item, position=position, claimed_at=timezone.now()
    )
    return answer, True


@transaction.atomic
def answer_submit(
    *,
    answer: ExamAnswer,
    payload,
    active_seconds: int | None = None,
    actor: AbstractBaseUser | None = None,
) -> tuple[ExamAnswer, bool]:
    """Store and score the answer to one item; return it and whether it was new.

    The payload is validated by the exam's kind first, and nothing is stored when it is
    invalid. The same payload again returns the stored answer; another one is a conflict. The
    last item's submission scores the attempt and grants or starts the cooldown.
    """
    now = timezone.now()
    exam, item = answer.attempt.exam, answer.item
    problems = FieldErrors()
    with problems.collect():
        active_seconds_check(active_seconds, claimed_at=answer.claimed_at, now=now)
    kind = get_kind(exam.kind)
    issues = kind.validate_payload(payload, exam.label_schema, item.data)
    problems.update(issues_by_path(issue.under("payload") for issue in issues))
    problems.raise_if_any("Invalid submission.")
    # Under the attempt's lock, so that a retried request, or two last submissions at once,
    # see each other's result: the attempt is scored, and granted, once.
    attempt = lock_exam_attempt(answer.attempt_id)
    answer.refresh_from_db()
    if answer.submitted_at is not None:
        if answer.payload == payload:
            return answer, False
        raise Conflict(
            "This item was already answered with a different payload.",
            code=ErrorCode.ALREADY_SUBMITTED,
        )
    _require_in_progress(attempt)
    comparison = kind.compare(payload, item.answer, exam.label_schema)
    answer.payload, answer.active_seconds, answer.submitted_at = payload, active_seconds, now
    answer.score = min(max(float(comparison.score), 0.0), 1.0)
    answer.details = json_value(comparison.details)
    answer.save(update_fields=["payload", "active_seconds", "submitted_at", "score", "details"])
    if answer.position + 1 == attempt.item_count:
        _attempt_finish(attempt, actor=actor, now=now)
    answer.attempt = attempt
    return answer, True


def _attempt_finish(attempt: ExamAttempt, *, actor: AbstractBaseUser | None, now) -> None:
    """Score the attempt (in the last submission's transaction) and grant, or start the cooldown."""
    exam, annotator = attempt.exam, attempt.annotator
    scores = list(ExamAnswer.objects.filter(attempt=attempt).values_list("score", flat=True))
    score = sum(scores) / len(scores)
    passed = score >= exam.pass_threshold
    attempt.status = AttemptStatus.PASSED if passed else AttemptStatus.FAILED
    attempt.score, attempt.finished_at = score, now
    attempt.save(update_fields=["status", "score", "finished_at"])
    evidence = (
        f"Exam {exam.name!r} (#{exam.pk}), attempt #{attempt.pk}: mean score {score:.3f} over "
        f"{len(scores)} items, pass threshold {exam.pass_threshold}."
    )
    after = {
        "exam": exam.pk,
        "attempt": attempt.pk,
        "score": score,
        "pass_threshold": exam.pass_threshold,
        "items": len(scores),
        "renewal": attempt.renewal,
    }
    if passed:
        after["granted"] = _grant(attempt, evidence=evidence, now=now)
        verb = AuditVerb.EXAM_PASSED
    else:
        after["cooldown_until"] = json_value(now + timedelta(hours=exam.cooldown_hours))
        verb = AuditVerb.EXAM_FAILED
    workforce.audit_record(
        organization=exam.organization,
        actor=actor,
        verb=verb,
        target=attempt,
        annotator=annotator,
        after=after,
        reason=evidence,
    )


def _grant(attempt: ExamAttempt, *, evidence: str, now: datetime) -> dict:
    """Grant what the exam grants, through the workforce services; return what changed.

    A certification held already is renewed to the exam's validity (never shortened); one
    revoked or never held is issued. A skill level is raised, never lowered.
    """
    exam, annotator = attempt.exam, attempt.annotator
    granted: dict = {}
    if exam.certification_days is not None:
        expires_at = now + timedelta(days=exam.certification_days)
        existing = (
            Certification.objects.with_state(now)
            .filter(annotator=annotator, domain=exam.domain)
            .first()
        )
        if existing is None or existing.state == CertificationStatus.REVOKED:
            certification = workforce.certification_issue(
                annotator=annotator,
                domain=exam.domain,
                issued_by=None,
                evidence=evidence,
                expires_at=expires_at,
                reason=f"Passed exam attempt #{attempt.pk}.",
            )
            action = "issued"
        elif existing.expires_at is not None and existing.expires_at < expires_at:
            certification = workforce.certification_renew(
                certification=existing,
                expires_at=expires_at,
                actor=None,
                evidence=evidence,
                reason=f"Passed exam attempt #{attempt.pk}.",
            )
            action = "renewed"
        else:
            certification, action = existing, "kept"
        granted["certification"] = {
            "id": certification.pk,
            "domain": exam.domain.slug,
            "action": action,
            "expires_at": json_value(certification.expires_at),
        }
    if exam.skill_level is not None:
        current = (
            AnnotatorSkill.objects.filter(annotator=annotator, skill=exam.kind)
            .values_list("level", flat=True)
            .first()
        )
        if current is None or current < exam.skill_level:
            workforce.annotator_skill_set(
                annotator=annotator,
                skill=exam.kind,
                level=exam.skill_level,
                source=SkillSource.EXAM,
                actor=None,
                reason=evidence,
            )
        granted["skill"] = {
            "skill": exam.kind,
            "before": current,
            "level": max(exam.skill_level, current or 0),
        }
    return granted
