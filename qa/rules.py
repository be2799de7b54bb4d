"""Quality rules that act (DESIGN.md section 5).

A rule reads one metric of an annotator in a project and, when it crosses the threshold, acts:
suspends them from the project, lowers their skill in the project's kind by k levels, suspends
their certifications in the project's domains, raises their gold rate or their review sampling
rate in the project to r, or only alerts staff. The rules are evaluated after each scored gold
submission and each verdict on their work commits, by the job ``qa.evaluate_quality_rules`` run
in the process that recorded it (``workforce.queue.run_after_commit``): a few statements, where
a message and a worker's handling of it cost several times as much. Should it fail there, the
workers run it.

Which rules apply to a project: its own rules, and the organization's defaults (rules with no
project) for every metric the project has no rule of its own for. A project rule replaces the
defaults of its metric even when it is inactive, so a manager switches a default off in one
project by giving the project an inactive rule for that metric.

Metrics, and which side of the threshold is bad:

- ``gold_recent_mean``: the mean of the last ``window`` gold scores; bad below the threshold.
  The sample is the number of scores in the window.
- ``gold_lower_bound``: the lower bound of the 95 % Wilson interval over every gold score in the
  project (``qa.gold.wilson``); bad below. The sample is the number scored; ``window`` only
  bounds the scores quoted as evidence.
- ``review_recent_mean``: the mean of the last ``window`` review scores (``Review.score``: 1 an
  accept, 0 a reject, a correction's ``compare``); bad below the threshold. The sample is the
  number of scores in the window.
- ``fast_submissions``: among the annotator's last ``window`` submissions in the project (gold
  or not), the share whose handling time is under ``fast_fraction`` times the project's median
  handling time; bad above the threshold. Handling time is ``duration_seconds``, measured by
  the server from the lease to the submission: the client's ``active_seconds`` could be made
  up, and a submission shorter than the lease-to-submit time cannot have taken longer. The
  median is over the project's latest ``MEDIAN_SAMPLE`` submissions by everyone (the
  annotator's own included), and there is no figure while the project has fewer than
  ``MEDIAN_MIN``. Both reads are ``LIMIT`` scans of the (project, -submitted_at) and
  (annotator, -submitted_at) indexes, never a full scan. The sample is the number of the
  annotator's submissions read.

A rule fires once per crossing. ``QualityRuleState`` keeps, per rule, annotator and project,
whether the metric stands beyond the threshold. An evaluation locks the states of every rule
that watches the annotator in the project, then reads the rules and the metrics under those
locks, so concurrent evaluations see each other's result and fire once.
The rule fires on the step from within to beyond, only with at least ``min_sample`` in the
sample; it may fire again once the metric came back within the threshold (at any sample size).

Each firing, in the evaluation's transaction: the effect, a ``QualityAction`` keeping the state
before and after, the audit event ``quality_action.applied`` with the evidence, and a live
``quality.alert`` to the organization's staff (its ``effect`` is the action's kind). An action that
finds nothing to change (the annotator already suspended, at level 0, holding no certification in
force, or at a higher gold or review rate) is recorded all the same, with an empty ``prior``.

Undo (``quality_action_undo``, by a QA lead, with a reason) restores ``prior`` exactly, unless
what the action left was changed since (a manager reinstated the member, set another level,
reinstated or revoked the certification, set another gold or review rate): then nothing is
restored and the 409 ``superseded`` names what changed. Undoing an action again is a 409
``already_undone``.
Undo leaves the rule's state as it is: the rule does not fire again for the crossing a QA lead
has just overruled, only after the metric recovers and crosses again.

Lock order (``qa/locks.py``): the rules' states or the action row first, then the annotator, the
project membership, certifications.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config.errors import Conflict, ErrorCode, FieldErrors, ValidationFailed
from config.rows import JoinedRows
from tasks.locks import lock_project_member
from tasks.models import Annotation, Project
from workforce.locks import lock_annotator
from workforce.models import (
    MAX_SKILL_LEVEL,
    Annotator,
    AnnotatorSkill,
    AuditVerb,
    Certification,
    CertificationStatus,
    Organization,
    SkillSource,
)
from workforce.services import (
    annotator_skill_set,
    audit_record,
    certification_set_status,
    field_values,
    model_update,
)
from workforce.services.audit import require_reason

from .gold import figures, wilson
from .live import record_staff_event
from .locks import lock_quality_action, lock_rule_states
from .models import (
    Accuracy,
    LiveEventType,
    QualityAction,
    QualityEffect,
    QualityMetric,
    QualityRule,
    QualityRuleState,
    ReviewAccuracy,
)
from .models.gold import RECENT_KEPT

GOLD_METRICS = {QualityMetric.GOLD_RECENT_MEAN, QualityMetric.GOLD_LOWER_BOUND}
# Metrics that are a score in [0, 1], read from the rows' kept windows of ``RECENT_KEPT``.
SCORE_METRICS = GOLD_METRICS | {QualityMetric.REVIEW_RECENT_MEAN}
# Metrics whose sample is their window.
WINDOW_METRICS = {
    QualityMetric.GOLD_RECENT_MEAN,
    QualityMetric.REVIEW_RECENT_MEAN,
    QualityMetric.FAST_SUBMISSIONS,
}
# Effects that raise a rate of the annotator's project membership: the field each one sets.
RATE_FIELDS = {
    QualityEffect.RAISE_GOLD_RATE: "gold_rate",
    QualityEffect.RAISE_REVIEW_RATE: "review_rate",
}
# The longest window of submissions ``fast_submissions`` reads: one bounded query.
FAST_WINDOW_MAX = 200
# The project's latest submissions whose median is the yardstick, and how many it needs: below
# that a median says little, and a new project's first fast annotator would be judged by it.
MEDIAN_SAMPLE = 500
MEDIAN_MIN = 20
# Effects that need ``parameter``, with its range.
PARAMETER_RANGES = {
    QualityEffect.LOWER_SKILL: (1, MAX_SKILL_LEVEL),
    QualityEffect.RAISE_GOLD_RATE: (0, 1),
    QualityEffect.RAISE_REVIEW_RATE: (0, 1),
}
RULE_FIELDS = [
    "project_id",
    "metric",
    "threshold",
    "window",
    "min_sample",
    "fast_fraction",
    "action",
    "parameter",
    "is_active",
]


def beyond(metric: str, value: float, threshold: float) -> bool:
    """Whether ``value`` is on the bad side of ``threshold``: above for fast submissions,
    below for gold and review scores."""
    if metric == QualityMetric.FAST_SUBMISSIONS:
        return value > threshold
    return value < threshold


# ---------------------------------------------------------------------------------------------
# Rules: checks and writes.


def quality_rule_check(
    *, organization: Organization, fields: dict, rule: QualityRule | None = None
) -> None:
    """Refuse a rule's fields (all of them, or a change merged over ``rule``), naming each."""
    merged = {name: getattr(rule, name) for name in RULE_FIELDS} if rule is not None else {}
    merged |= fields
    problems = FieldErrors()
    metric, action = merged.get("metric"), merged.get("action")
    if metric is not None and metric not in QualityMetric.values:
        problems.add("metric", f"One of {', '.join(QualityMetric.values)}.")
    if action is not None and action not in QualityEffect.values:
        problems.add("action", f"One of {', '.join(QualityEffect.values)}.")
    threshold = merged.get("threshold")
    if threshold is not None and metric in QualityMetric.values:
        # A score threshold of 0 could never be crossed (nothing scores below 0), nor a share
        # of fast submissions of 1 (nothing is above all).
        if metric in SCORE_METRICS and not 0 < threshold <= 1:
            problems.add("threshold", "For a score metric, a number above 0 and at most 1.")
        if metric == QualityMetric.FAST_SUBMISSIONS and not 0 <= threshold < 1:
            problems.add("threshold", "For fast submissions, a share from 0 and below 1.")
    window = merged.get("window")
    if window is not None and metric in QualityMetric.values:
        most = RECENT_KEPT if metric in SCORE_METRICS else FAST_WINDOW_MAX
        if not 1 <= window <= most:
            problems.add("window", f"From 1 to {most} for {metric}.")
    min_sample = merged.get("min_sample")
    if min_sample is not None:
        if min_sample < 1:
            problems.add("min_sample", "At least 1.")
        elif metric in WINDOW_METRICS and window is not None and min_sample > window:
            problems.add("min_sample", f"At most the window ({window}): the sample is the window.")
    fraction = merged.get("fast_fraction")
    if fraction is not None and not 0 < fraction < 1:
        problems.add("fast_fraction", "A fraction above 0 and below 1.")
    if action in QualityEffect.values:
        parameter = merged.get("parameter")
        bounds = PARAMETER_RANGES.get(action)
        if bounds is None and parameter is not None:
            problems.add("parameter", f"{action} takes no parameter.")
        elif bounds is not None and parameter is None:
            what = "k, the levels to lower" if action == QualityEffect.LOWER_SKILL else "r"
            problems.add("parameter", f"Required for {action}: {what}.")
        elif action == QualityEffect.LOWER_SKILL and (
            parameter != int(parameter) or not bounds[0] <= parameter <= bounds[1]
        ):
            problems.add("parameter", f"A whole number of levels from 1 to {MAX_SKILL_LEVEL}.")
        elif action in RATE_FIELDS and not 0 < parameter <= 1:
            problems.add("parameter", "A rate above 0 and at most 1.")
    project_id = merged.get("project_id")
    if (
        project_id is not None
        and not Project.objects.filter(pk=project_id, organization=organization).exists()
    ):
        problems.add("project", "Not found.")
    problems.raise_if_any("Invalid quality rule.")


def _rule_settings(rule: QualityRule) -> dict:
    return field_values(rule, [name.removesuffix("_id") for name in RULE_FIELDS])


@transaction.atomic
def quality_rule_create(
    *, organization: Organization, actor: AbstractBaseUser | None, **fields
) -> QualityRule:
    """Make a rule for a project, or an organization default when ``project`` is None."""
    quality_rule_check(organization=organization, fields=fields)
    for required in ("metric", "threshold", "action"):
        if fields.get(required) is None:
            raise ValidationFailed(
                "Invalid quality rule.", fields={required: ["This field is required."]}
            )
    rule = QualityRule.objects.create(organization=organization, created_by=actor, **fields)
    audit_record(
        organization=organization,
        actor=actor,
        verb=AuditVerb.QUALITY_RULE_CREATED,
        target=rule,
        after=_rule_settings(rule),
    )
    return rule


@transaction.atomic
def quality_rule_update(
    *, rule: QualityRule, actor: AbstractBaseUser | None, **fields
) -> QualityRule:
    """Change a rule's threshold, window, sample, action or activity; its metric is fixed.

    The states of the rule stay: an annotator beyond the old threshold and within the new one
    counts as recovered at their next evaluation.
    """
    quality_rule_check(organization=rule.organization, fields=fields, rule=rule)
    changes = model_update(rule, fields)
    if changes:
        audit_record(
            organization=rule.organization,
            actor=actor,
            verb=AuditVerb.QUALITY_RULE_UPDATED,
            target=rule,
            changes=changes,
        )
    return rule


@transaction.atomic
def quality_rule_delete(*, rule: QualityRule, actor: AbstractBaseUser | None) -> None:
    """Delete a rule; the actions it took stay, with their own copy of what it said."""
    audit_record(
        organization=rule.organization,
        actor=actor,
        verb=AuditVerb.QUALITY_RULE_DELETED,
        target=rule,
        before=_rule_settings(rule),
    )
    rule.delete()


# The ids of the rules that watch a project (the one parameter): its own active rules, and its
# organization's active defaults for the metrics it has no rule of its own for, active or not.
# Names come from the models.
WATCHING_SQL = f"""
    WITH rules AS (
        SELECT r.id, r.project_id, r.metric, r.is_active FROM {QualityRule._meta.db_table} r
        JOIN {Project._meta.db_table} p ON p.organization_id = r.organization_id
        WHERE p.id = %s AND (r.project_id = p.id OR r.project_id IS NULL)
    )
    SELECT r.id FROM rules r WHERE r.is_active AND (r.project_id IS NOT NULL OR NOT EXISTS (
        SELECT FROM rules own WHERE own.project_id IS NOT NULL AND own.metric = r.metric
    ))
"""  # noqa: S608


def rules_for(project_id: int) -> list[QualityRule]:
    """The active rules that watch a project: its own, and its organization's defaults for the
    other metrics. None at all for a project that does not exist."""
    watching = RawSQL(WATCHING_SQL, [project_id])  # noqa: S611 - names from the models
    return list(QualityRule.objects.filter(pk__in=watching))


# ---------------------------------------------------------------------------------------------
# Metrics.


@dataclass(frozen=True)
class Reading:
    """A metric's value for one annotator, the sample it stands on, and its evidence."""

    value: float
    sample: int
    evidence: dict


# The median handling time of the project's latest submissions, read through the
# (project, -submitted_at) index, and the annotator's latest handling times in the project,
# through the (annotator, -submitted_at) one. Names come from the model; values are parameters.
_FAST_SQL = f"""
    SELECT m.median, m.counted, ARRAY(
        SELECT a.duration_seconds FROM {Annotation._meta.db_table} a
        WHERE a.annotator_id = %(annotator)s AND a.project_id = %(project)s
        ORDER BY a.submitted_at DESC LIMIT %(window)s
    ) FROM (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS median, count(*) AS counted
        FROM (
            SELECT duration_seconds AS d FROM {Annotation._meta.db_table}
            WHERE project_id = %(project)s ORDER BY submitted_at DESC LIMIT %(sample)s
        ) latest
    ) m
"""  # noqa: S608


class Inputs:
    """What the metrics read of one annotator in one project, each read when a rule first
    needs it and once per evaluation: the gold and review accuracy rows, and the handling
    times ``fast_submissions`` compares."""

    def __init__(self, annotator_id: int, project_id: int):
        self.annotator_id, self.project_id = annotator_id, project_id
        self.key = {"annotator": annotator_id, "project": project_id}
        self._handling_times: dict[int, tuple] = {}

    def _row(self, model, fields: str) -> tuple | None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {fields} FROM {model._meta.db_table} "  # noqa: S608
                "WHERE annotator_id = %(annotator)s AND project_id = %(project)s",
                self.key,
            )
            return cursor.fetchone()

    @functools.cached_property
    def accuracy(self) -> Accuracy | None:
        row = self._row(Accuracy, "scored, score_sum, recent")
        return None if row is None else Accuracy(scored=row[0], score_sum=row[1], recent=row[2])

    @functools.cached_property
    def review_accuracy(self) -> ReviewAccuracy | None:
        row = self._row(ReviewAccuracy, "recent")
        return None if row is None else ReviewAccuracy(recent=row[0])

    def handling_times(self, window: int) -> tuple[float | None, int, list[float]]:
        """The project's median handling time, how many it is the median of, and the
        annotator's latest ``window`` handling times, newest first."""
        if window not in self._handling_times:
            with connection.cursor() as cursor:
                cursor.execute(_FAST_SQL, self.key | {"window": window, "sample": MEDIAN_SAMPLE})
                self._handling_times[window] = cursor.fetchone()
        return self._handling_times[window]


def _recent_mean(row: Callable[[Inputs], Accuracy | ReviewAccuracy | None]):
    """The mean of the last ``window`` scores kept on a row (gold or review)."""

    def read(rule: QualityRule, inputs: Inputs) -> Reading | None:
        kept = row(inputs)
        window = list(kept.recent[-rule.window :]) if kept else []
        if not window:
            return None
        return Reading(sum(window) / len(window), len(window), {"scores": window})

    return read


def _gold_lower_bound(rule: QualityRule, inputs: Inputs) -> Reading | None:
    row = inputs.accuracy
    interval = wilson(row.score_sum, row.scored) if row else None
    if interval is None:
        return None
    evidence = {"figures": figures(row).as_dict(), "scores": list(row.recent[-rule.window :])}
    return Reading(interval[0], row.scored, evidence)


def _fast_submissions(rule: QualityRule, inputs: Inputs) -> Reading | None:
    median, counted, durations = inputs.handling_times(rule.window)
    if counted < MEDIAN_MIN or not median or not durations:
        return None
    cutoff = rule.fast_fraction * median
    fast = sum(1 for seconds in durations if seconds < cutoff)
    evidence = {
        "median_seconds": median,
        "median_of": counted,
        "cutoff_seconds": cutoff,
        "fast": fast,
        "durations": durations,
    }
    return Reading(fast / len(durations), len(durations), evidence)


METRICS: dict[str, Callable[[QualityRule, Inputs], Reading | None]] = {
    QualityMetric.GOLD_RECENT_MEAN: _recent_mean(lambda inputs: inputs.accuracy),
    QualityMetric.GOLD_LOWER_BOUND: _gold_lower_bound,
    QualityMetric.FAST_SUBMISSIONS: _fast_submissions,
    QualityMetric.REVIEW_RECENT_MEAN: _recent_mean(lambda inputs: inputs.review_accuracy),
}


# ---------------------------------------------------------------------------------------------
# Effects: each changes what it acts on and says what it did, what it found, what it left.


@dataclass(frozen=True)
class Outcome:
    effect: str
    prior: dict
    after: dict


NOTHING = "nothing to change"


def _suspend_project(rule, annotator: Annotator, project: Project, reason: str) -> Outcome:
    member = lock_project_member(project.pk, annotator.pk)
    if member is None or not member.is_active:
        return Outcome(f"{NOTHING}: not an active member of the project", {}, {})
    # The database's triggers end their leases in the project at once.
    member.is_active = False
    member.save(update_fields=["is_active", "updated_at"])
    return Outcome("suspended from the project", {"is_active": True}, {"is_active": False})


def _lower_skill(rule, annotator: Annotator, project: Project, reason: str) -> Outcome:
    skill = project.kind
    row = AnnotatorSkill.objects.filter(annotator=annotator, skill=skill).first()
    if row is None or row.level == 0:
        return Outcome(f"{NOTHING}: no {skill} level above 0", {}, {})
    level = max(row.level - int(rule.parameter), 0)
    annotator_skill_set(
        annotator=annotator,
        skill=skill,
        level=level,
        source=SkillSource.RULE,
        actor=None,
        reason=reason,
    )
    return Outcome(
        f"{skill} lowered from level {row.level} to {level}",
        {"skill": skill, "level": row.level, "source": row.source},
        {"skill": skill, "level": level, "source": SkillSource.RULE.value},
    )


def _suspend_certification(rule, annotator: Annotator, project: Project, reason: str) -> Outcome:
    held = list(
        Certification.objects.in_force()
        .filter(annotator=annotator, domain__in=project.required_domains.all())
        .select_related("domain")
        .order_by("pk")
    )
    if not held:
        return Outcome(f"{NOTHING}: no certification in force in the project's domains", {}, {})
    for certification in held:
        certification_set_status(
            certification=certification, action="suspend", actor=None, reason=reason
        )
    named = [{"id": c.pk, "domain": c.domain.slug} for c in held]
    return Outcome(
        "suspended certifications in " + ", ".join(c.domain.slug for c in held),
        {"certifications": [n | {"status": CertificationStatus.ACTIVE.value} for n in named]},
        {"certifications": [n | {"status": CertificationStatus.SUSPENDED.value} for n in named]},
    )


def _raise_rate(rule, annotator: Annotator, project: Project, reason: str) -> Outcome:
    """Raise the member's gold rate (the claim takes the higher of it and the project's) or
    review rate (every layer samples them at least at it) to r: only a raise counts."""
    field = RATE_FIELDS[rule.action]
    what = field.replace("_", " ")
    member = lock_project_member(project.pk, annotator.pk)
    rate = rule.parameter
    if member is None:
        return Outcome(f"{NOTHING}: not a member of the project", {}, {})
    current = getattr(member, field) or 0.0
    if field == "gold_rate":
        current = max(current, project.gold_rate)
    if current >= rate:
        return Outcome(f"{NOTHING}: the {what} is {current:g} already", {}, {})
    prior = getattr(member, field)
    setattr(member, field, rate)
    member.save(update_fields=[field, "updated_at"])
    return Outcome(f"{what} raised to {rate:g}", {field: prior}, {field: rate})


def _alert(rule, annotator: Annotator, project: Project, reason: str) -> Outcome:
    return Outcome("staff alerted", {}, {})


EFFECTS: dict[str, Callable[[QualityRule, Annotator, Project, str], Outcome]] = {
    QualityEffect.SUSPEND_PROJECT: _suspend_project,
    QualityEffect.LOWER_SKILL: _lower_skill,
    QualityEffect.SUSPEND_CERTIFICATION: _suspend_certification,
    QualityEffect.RAISE_GOLD_RATE: _raise_rate,
    QualityEffect.RAISE_REVIEW_RATE: _raise_rate,
    QualityEffect.ALERT: _alert,
}


# ---------------------------------------------------------------------------------------------
# Evaluation.


# The rules read again once their states are locked, as they are now.
_RULES = JoinedRows([(QualityRule, "r")], deferred={"r": ("created_at", "updated_at")})
_RULES_SQL = (
    f"SELECT {_RULES.columns} FROM {_RULES.table('r')} r "  # noqa: S608
    "WHERE r.id = ANY(%s) AND r.is_active ORDER BY r.id"
)


@transaction.atomic
def quality_rules_evaluate(*, annotator_id: int, project_id: int) -> int:
    """Evaluate every rule that watches an annotator in a project; return how many fired.

    One short transaction. Safe to run twice or concurrently: a rule fires once per crossing.
    It runs after every scored gold submission, so its steady state is a few statements: the
    rules' states locked, the rules read again, and what their metrics read; the project is
    read only when a rule fires.
    """
    states = lock_rule_states(WATCHING_SQL, annotator_id, project_id)
    if not states:
        return 0
    # Read again under the locks: a rule switched off or changed meanwhile is read as it is now.
    with connection.cursor() as cursor:
        cursor.execute(_RULES_SQL, [list(states)])
        rules = [_RULES.instances(row)[0] for row in cursor.fetchall()]
    # Read after the locks, so an evaluation that waited sees the scores the other one saw.
    inputs = Inputs(annotator_id, project_id)
    return sum(_rule_evaluate(rule, states[rule.pk], inputs) for rule in rules)


def _rule_evaluate(rule: QualityRule, breached: bool, inputs: Inputs) -> int:
    reading = METRICS[rule.metric](rule, inputs)
    if reading is None:
        return 0
    if not beyond(rule.metric, reading.value, rule.threshold):
        if breached:
            _breached_set(rule, inputs, False)
        return 0
    if breached or reading.sample < rule.min_sample:
        return 0
    _breached_set(rule, inputs, True)
    project = Project.objects.select_related("organization").get(pk=inputs.project_id)
    _fire(rule, annotator_id=inputs.annotator_id, project=project, reading=reading)
    return 1


def _breached_set(rule: QualityRule, inputs: Inputs, breached: bool) -> None:
    QualityRuleState.objects.filter(
        rule=rule, annotator_id=inputs.annotator_id, project_id=inputs.project_id
    ).update(breached=breached, updated_at=timezone.now())


def _fire(rule: QualityRule, *, annotator_id: int, project: Project, reading: Reading) -> None:
    annotator = lock_annotator(annotator_id)
    side = ">" if rule.metric == QualityMetric.FAST_SUBMISSIONS else "<"
    reason = (
        f"Quality rule {rule.pk}: {rule.metric} {reading.value:.3f} {side} {rule.threshold:g} "
        f"over {reading.sample} in project {project.pk}."
    )
    outcome = EFFECTS[rule.action](rule, annotator, project, reason)
    action = QualityAction.objects.create(
        organization_id=project.organization_id,
        rule=rule,
        annotator=annotator,
        project=project,
        metric=rule.metric,
        value=reading.value,
        threshold=rule.threshold,
        evidence=reading.evidence | {"sample": reading.sample},
        action=rule.action,
        parameter=rule.parameter,
        effect=outcome.effect,
        prior=outcome.prior,
        after=outcome.after,
    )
    audit_record(
        organization=project.organization,
        actor=None,
        verb=AuditVerb.QUALITY_ACTION_APPLIED,
        target=action,
        annotator=annotator,
        before=outcome.prior,
        after={
            "rule": rule.pk,
            "project": project.pk,
            "metric": rule.metric,
            "value": reading.value,
            "threshold": rule.threshold,
            "action": rule.action,
            "effect": outcome.effect,
            "state": outcome.after,
            "evidence": action.evidence,
        },
        reason=reason,
    )
    record_staff_event(
        LiveEventType.QUALITY_ALERT,
        organization_id=project.organization_id,
        data={
            "action": action.pk,
            "rule": rule.pk,
            "annotator": annotator.pk,
            "project": project.pk,
            "metric": rule.metric,
            "value": reading.value,
            "threshold": rule.threshold,
            "effect": rule.action,
        },
    )


# ---------------------------------------------------------------------------------------------
# Undo.


def _superseded(what: str) -> Conflict:
    return Conflict(
        f"Not undone: {what} since the action; change it by hand if need be.",
        code=ErrorCode.SUPERSEDED,
    )


def _undo_suspend_project(action: QualityAction, annotator, actor, reason) -> None:
    member = lock_project_member(action.project_id, annotator.pk)
    if member is None or member.is_active:
        raise _superseded("the project membership was reinstated or removed")
    member.is_active = True
    member.save(update_fields=["is_active", "updated_at"])


def _undo_lower_skill(action: QualityAction, annotator, actor, reason) -> None:
    skill, left = action.after["skill"], action.after
    row = AnnotatorSkill.objects.filter(annotator=annotator, skill=skill).first()
    if row is None or (row.level, row.source) != (left["level"], left["source"]):
        now = f"level {row.level} ({row.source})" if row else "removed"
        raise _superseded(f"the {skill} skill was set to {now}")
    annotator_skill_set(
        annotator=annotator,
        skill=skill,
        level=action.prior["level"],
        source=action.prior["source"],
        actor=actor,
        reason=reason,
    )


def _undo_suspend_certification(action: QualityAction, annotator, actor, reason) -> None:
    ids = [c["id"] for c in action.after["certifications"]]
    states = dict(Certification.objects.with_state().filter(pk__in=ids).values_list("pk", "state"))
    changed = [
        f"{c['domain']} ({states.get(c['id'], 'deleted')})"
        for c in action.after["certifications"]
        if states.get(c["id"]) != CertificationStatus.SUSPENDED
    ]
    if changed:
        raise _superseded("the certification in " + ", ".join(changed) + " changed")
    for certification in Certification.objects.filter(pk__in=ids).order_by("pk"):
        certification_set_status(
            certification=certification, action="reinstate", actor=actor, reason=reason
        )


def _undo_raise_rate(action: QualityAction, annotator, actor, reason) -> None:
    field = RATE_FIELDS[action.action]
    member = lock_project_member(action.project_id, annotator.pk)
    if member is None or getattr(member, field) != action.after[field]:
        now = "removed" if member is None else f"{getattr(member, field)}"
        what = field.replace("_", " ")
        raise _superseded(f"the annotator's {what} in the project was set to {now}")
    setattr(member, field, action.prior[field])
    member.save(update_fields=[field, "updated_at"])


UNDO: dict[str, Callable[[QualityAction, Annotator, AbstractBaseUser | None, str], None]] = {
    QualityEffect.SUSPEND_PROJECT: _undo_suspend_project,
    QualityEffect.LOWER_SKILL: _undo_lower_skill,
    QualityEffect.SUSPEND_CERTIFICATION: _undo_suspend_certification,
    QualityEffect.RAISE_GOLD_RATE: _undo_raise_rate,
    QualityEffect.RAISE_REVIEW_RATE: _undo_raise_rate,
}


@transaction.atomic
def quality_action_undo(
    *, action: QualityAction, actor: AbstractBaseUser | None, reason: str
) -> QualityAction:
    """Restore what a quality action changed, exactly as it was; audited with the reason.

    409 ``already_undone`` for an action undone before; 409 ``superseded``, restoring nothing,
    when what the action left was changed since.
    """
    require_reason(reason)
    action = lock_quality_action(action.pk)
    if action.undone_at is not None:
        raise Conflict(
            f"This action was undone already, on {action.undone_at:%Y-%m-%d %H:%M} UTC.",
            code=ErrorCode.ALREADY_UNDONE,
        )
    annotator = lock_annotator(action.annotator_id)
    # An action that changed nothing (an alert, or nothing found to change) has nothing to put
    # back: undoing it only records that a QA lead overruled it.
    if action.prior:
        UNDO[action.action](action, annotator, actor, reason)
    action.undone_at, action.undone_by, action.undo_reason = timezone.now(), actor, reason
    action.save(update_fields=["undone_at", "undone_by", "undo_reason"])
    audit_record(
        organization=action.organization,
        actor=actor,
        verb=AuditVerb.QUALITY_ACTION_REVERTED,
        target=action,
        annotator=annotator,
        before=action.after,
        after=action.prior,
        reason=reason,
    )
    return action
