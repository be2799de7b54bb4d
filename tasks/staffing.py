"""Ranking an organization's annotators for a project: who qualifies, why not, and their load.

Annotators are the members whose role is ``annotator``: reviewers hold a working profile too,
but the claim never serves them tasks (``tasks.selectors.staffing_candidates``).

Who qualifies is decided once, by ``tasks_qualification`` (``services/claims.sql``), the same
function the claim calls; this module reads its answer and words the reasons for managers and
annotators.
"""

from collections.abc import Callable
from datetime import datetime

from tasks.models import Project
from tasks.selectors import Qualification, qualifications, staffing_candidates
from workforce.models import Annotator, AnnotatorStatus, CertificationStatus, Domain


def qualification_reasons(
    annotator: Annotator,
    project: Project,
    qualification: Qualification,
    domains: dict[int, Domain],
) -> list[str]:
    """Say, in words a manager reads, each thing that keeps the annotator off the project.

    Uses the annotator's prefetched certifications (for expiry dates) and the project's
    required domains. Empty exactly when the qualification says qualified.
    """
    if qualification.qualified:
        return []
    reasons = []
    if annotator.status != AnnotatorStatus.ACTIVE:
        reasons.append(f"annotator is {annotator.status}")
    level = qualification.skill_level
    if (level or 0) < project.required_skill_level:
        held = f"level {level}" if level is not None else "no level"
        reasons.append(f"skill {project.kind} {held} < {project.required_skill_level}")
    held_by_domain = {c.domain_id: c for c in annotator.certifications.all()}
    for domain_id, state in sorted(qualification.unmet.items()):
        slug = domains[domain_id].slug
        if state is None:
            reasons.append(f"no certification in {slug}")
        elif state == CertificationStatus.EXPIRED:
            expired = held_by_domain[domain_id].expires_at
            reasons.append(f"certification {slug} expired {expired:%Y-%m-%d}")
        else:
            reasons.append(f"certification {slug} {state}")
    return reasons


# Accuracy is quality's to read, and ``tasks`` never imports ``qa``: qa registers its reader in
# ``QaConfig.ready()``. It takes the project and annotator ids and answers, per annotator, their
# accuracy in the project's kind (``kind``) and in each required domain (``domains``).
AccuracyReader = Callable[[Project, list[int]], dict[int, dict]]
_accuracy_reader: AccuracyReader | None = None


def accuracy_reader_set(reader: AccuracyReader) -> None:
    global _accuracy_reader
    _accuracy_reader = reader


def _lower_bound(row: dict) -> float:
    kind = (row["accuracy"] or {}).get("kind")
    return kind["low"] if kind and kind["low"] is not None else -1.0


def staffing_rank(*, project: Project, now: datetime) -> list[dict]:
    """Every annotator: qualified first, ranked by the lower bound of their accuracy interval
    in the project's kind (unknown last), then skill level and spare capacity.

    ``has_room`` says whether the annotator's leases leave room for one more task in this
    project, under both their own limit and the project's.
    """
    annotators = list(staffing_candidates(project=project, now=now))
    found = qualifications(
        annotator_ids=[a.pk for a in annotators], project_ids=[project.pk], now=now
    )
    domains = {d.pk: d for d in project.required_domains.all()}
    accuracy = _accuracy_reader(project, [a.pk for a in annotators]) if _accuracy_reader else {}
    rows = []
    for annotator in annotators:
        qualification = found[annotator.pk, project.pk]
        reasons = qualification_reasons(annotator, project, qualification, domains)
        rows.append(
            {
                "annotator": annotator.pk,
                "username": annotator.member.user.username,
                "name": annotator.member.user.get_full_name(),
                "status": annotator.status,
                "qualified": qualification.qualified,
                "reasons": reasons,
                "skill_level": qualification.skill_level,
                "is_member": annotator.is_member,
                "load": {
                    "live_tasks": annotator.live,
                    "live_tasks_here": annotator.live_here,
                    "max_concurrent_tasks": annotator.max_concurrent_tasks,
                    "project_max_concurrent_tasks": project.max_concurrent_tasks,
                    "has_room": annotator.live < annotator.max_concurrent_tasks
                    and annotator.live_here < project.max_concurrent_tasks,
                    "weekly_capacity_hours": annotator.weekly_capacity_hours,
                },
                "accuracy": accuracy.get(annotator.pk, {"kind": None, "domains": {}}),
            }
        )
    rows.sort(
        key=lambda r: (
            not r["qualified"],
            -_lower_bound(r),
            -(r["skill_level"] or 0),
            r["load"]["live_tasks"] / r["load"]["max_concurrent_tasks"],
            r["username"],
        )
    )
    return rows


def project_gaps(annotator: Annotator, project_ids: list[int], now: datetime) -> list[dict]:
    """For an annotator the claim found unqualified: each project, with the reasons.

    Projects come in the claim's order (priority, deadline, id).
    """
    projects = list(Project.objects.filter(pk__in=project_ids).prefetch_related("required_domains"))
    annotator = Annotator.objects.prefetch_related("certifications").get(pk=annotator.pk)
    found = qualifications(annotator_ids=[annotator.pk], project_ids=project_ids, now=now)
    return [
        {
            "project": project.pk,
            "name": project.name,
            "reasons": qualification_reasons(
                annotator,
                project,
                found[annotator.pk, project.pk],
                {d.pk: d for d in project.required_domains.all()},
            ),
        }
        for project in projects
    ]
