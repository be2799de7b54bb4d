"""Ranking an organization's annotators for a project: who qualifies, why not, and their load."""

from datetime import datetime

from tasks.models import Project
from tasks.selectors import staffing_candidates
from workforce.models import Annotator, AnnotatorStatus, CertificationStatus


def qualification_gaps(annotator: Annotator, project: Project, now: datetime) -> list[str]:
    """Say, in words a manager reads, everything that keeps the annotator off the project.

    Uses the annotator's prefetched skills and certifications and the project's prefetched
    required domains. The claim applies the same rules in SQL (``claim_candidates``).
    """
    gaps = []
    if annotator.status != AnnotatorStatus.ACTIVE:
        gaps.append(f"annotator is {annotator.status}")
    level = next((s.level for s in annotator.skills.all() if s.skill == project.kind), None)
    if project.required_skill_level and (level or 0) < project.required_skill_level:
        held = f"level {level}" if level is not None else "no level"
        gaps.append(f"skill {project.kind} {held} < {project.required_skill_level}")
    certifications = {c.domain_id: c for c in annotator.certifications.all()}
    for domain in project.required_domains.all():
        certification = certifications.get(domain.pk)
        if certification is None:
            gaps.append(f"no certification in {domain.slug}")
            continue
        status = certification.effective_status(now)
        if status == CertificationStatus.EXPIRED:
            gaps.append(f"certification {domain.slug} expired {certification.expires_at:%Y-%m-%d}")
        elif status != CertificationStatus.ACTIVE:
            gaps.append(f"certification {domain.slug} {status}")
    return gaps


def staffing_rank(*, project: Project, now: datetime) -> list[dict]:
    """Every annotator, qualified first, then by skill level and spare capacity."""
    rows = []
    for annotator in staffing_candidates(project=project, now=now):
        gaps = qualification_gaps(annotator, project, now)
        level = next((s.level for s in annotator.skills.all() if s.skill == project.kind), None)
        rows.append(
            {
                "annotator": annotator.pk,
                "username": annotator.member.user.username,
                "name": annotator.member.user.get_full_name(),
                "status": annotator.status,
                "qualified": not gaps,
                "reasons": gaps,
                "skill_level": level,
                "is_member": annotator.is_member,
                "load": {
                    "live_tasks": annotator.live,
                    "max_concurrent_tasks": annotator.max_concurrent_tasks,
                    "weekly_capacity_hours": annotator.weekly_capacity_hours,
                },
                # Filled in by gold scoring once it exists; unknown until then.
                "accuracy": None,
            }
        )
    rows.sort(
        key=lambda r: (
            not r["qualified"],
            -(r["skill_level"] or 0),
            r["load"]["live_tasks"] / r["load"]["max_concurrent_tasks"],
            r["username"],
        )
    )
    return rows
