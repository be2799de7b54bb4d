"""Staffing and the claim agree on who may work where, in small random worlds.

Both read ``tasks_qualification``; these worlds check that nothing around it (membership, limits,
project status, open work, certifications that lapse, are suspended or revoked) lets one of them
say yes where the other says no.
"""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import PermissionDenied
from tasks.models import ProjectMember, Slot, SlotState
from tasks.services.claims import ClaimOutcome, claim_next
from tasks.services.projects import project_members_add
from tasks.staffing import staffing_rank
from tests.helpers import image_rows, import_rows, make_project
from workforce import services
from workforce.models import Certification

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

KINDS = {
    "bbox": {"labels": [{"name": "car"}]},
    "classification": {"labels": [{"name": "ok"}, {"name": "spam"}]},
}
DOMAINS = ("medical", "legal")
# Weighted towards qualified people, where disagreements would show; the first choice of
# each list is the one generation falls back on most.
CERTIFICATIONS = ("active", None, "active", "expired", "active", "suspended", "revoked")
MEMBERSHIPS = ("annotator", None, "annotator", "reviewer", "annotator", "inactive")

projects = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(sorted(KINDS)),
            "level": st.integers(0, 3),
            "domains": st.sets(st.sampled_from(DOMAINS), max_size=1),
            "active": st.sampled_from([True, True, False]),
            "limit": st.integers(1, 2),
            "tasks": st.sampled_from([2, 0, 1]),
        }
    ),
    min_size=1,
    max_size=3,
)


def annotators(project_count: int):
    return st.lists(
        st.fixed_dictionaries(
            {
                "active": st.sampled_from([True, True, True, False]),
                "skills": st.fixed_dictionaries(
                    {kind: st.sampled_from([5, None, 0, 2, 5]) for kind in KINDS}
                ),
                "certifications": st.fixed_dictionaries(
                    {domain: st.sampled_from(CERTIFICATIONS) for domain in DOMAINS}
                ),
                "limit": st.integers(1, 3),
                "memberships": st.lists(
                    st.sampled_from(MEMBERSHIPS), min_size=project_count, max_size=project_count
                ),
                "claims_before": st.sampled_from([0, 0, 1, 2]),
            }
        ),
        min_size=1,
        max_size=3,
    )


worlds = projects.flatmap(lambda p: st.tuples(st.just(p), annotators(len(p))))


def _certify(annotator, domain, state: str) -> None:
    certification = services.certification_issue(
        annotator=annotator, domain=domain, issued_by=None, evidence="exam", expires_at=None
    )
    if state == "expired":
        now = timezone.now()
        Certification.objects.filter(pk=certification.pk).update(
            issued_at=now - timedelta(days=30), expires_at=now - timedelta(seconds=1)
        )
    elif state in ("suspended", "revoked"):
        action = "suspend" if state == "suspended" else "revoke"
        services.certification_set_status(
            certification=certification, action=action, actor=None, reason="world"
        )


def _build(org, project_specs, annotator_specs):
    domains = {
        slug: services.domain_create(
            organization=org.organization, slug=slug, name=slug, description="", actor=None
        )
        for slug in DOMAINS
    }
    built_projects = []
    for i, spec in enumerate(project_specs):
        project = make_project(
            org,
            name=f"p{i}",
            kind=spec["kind"],
            schema=KINDS[spec["kind"]],
            required_skill_level=spec["level"],
            required_domains=sorted(spec["domains"]),
            max_concurrent_tasks=spec["limit"],
        )
        if spec["tasks"]:
            import_rows(project, image_rows(spec["tasks"]))
        built_projects.append(project)
    built_annotators = []
    for i, spec in enumerate(annotator_specs):
        annotator = org.add_annotator(f"w{i}", max_concurrent_tasks=spec["limit"])
        for kind, level in spec["skills"].items():
            if level is not None:
                services.annotator_skill_set(
                    annotator=annotator, skill=kind, level=level, source="manual", actor=None
                )
        for slug, state in spec["certifications"].items():
            if state is not None:
                _certify(annotator, domains[slug], state)
        for project, membership in zip(built_projects, spec["memberships"], strict=True):
            if membership is None:
                continue
            role = "reviewer" if membership == "reviewer" else "annotator"
            project_members_add(project=project, annotators=[annotator], role=role, actor=None)
            if membership == "inactive":
                ProjectMember.objects.filter(project=project, annotator=annotator).update(
                    is_active=False
                )
        # Work already in hand counts against the limits.
        for _ in range(spec["claims_before"]):
            claim_next(annotator=annotator)
        if not spec["active"]:
            services.annotator_set_status(
                annotator=annotator, action="suspend", actor=None, reason="world"
            )
        built_annotators.append(annotator)
    # Projects go inactive last, so that work claimed before stays in hand.
    for project, spec in zip(built_projects, project_specs, strict=True):
        if not spec["active"]:
            type(project).objects.filter(pk=project.pk).update(status="paused")
            project.refresh_from_db()
    return built_projects, built_annotators


def _claim_in(annotator, project):
    """Claim in one project and undo it, returning the outcome."""
    with transaction.atomic():
        try:
            result = claim_next(annotator=annotator, project_id=project.pk)
        except PermissionDenied:
            return None
        transaction.set_rollback(True)
    return result.outcome


def test_staffing_and_the_claim_agree_both_ways(org):
    seen = Counter()

    @settings(
        max_examples=80,
        deadline=None,
        # The same worlds every run, so that what they reach (asserted below) holds in CI too.
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(world=worlds)
    def check(world):
        project_specs, annotator_specs = world
        with transaction.atomic():
            built_projects, built_annotators = _build(org, project_specs, annotator_specs)
            now = timezone.now()
            for project in built_projects:
                rows = {r["annotator"]: r for r in staffing_rank(project=project, now=now)}
                for annotator in built_annotators:
                    row = rows[annotator.pk]
                    assert row["qualified"] == (row["reasons"] == []), row
                    open_for_them = (
                        Slot.objects.filter(project=project, state=SlotState.OPEN)
                        .exclude(task__assignments__annotator=annotator)
                        .exists()
                    )
                    outcome = _claim_in(annotator, project)
                    can_work = (
                        row["qualified"]
                        and row["is_member"]
                        and row["load"]["has_room"]
                        and project.status == "active"
                    )
                    seen[outcome] += 1
                    if can_work and open_for_them:
                        seen["must claim"] += 1
                        assert outcome == ClaimOutcome.CLAIMED, (row, outcome)
                    if outcome == ClaimOutcome.CLAIMED:
                        assert can_work and open_for_them, (row, project.status, outcome)
                    if outcome == ClaimOutcome.NOT_QUALIFIED:
                        assert not row["qualified"], row
                    if outcome is None:  # refused outright: not active
                        assert not row["qualified"] and row["status"] != "active", row
            transaction.set_rollback(True)

    check()
    # The worlds reached both directions, and every answer, more often than by chance: an
    # annotator who is not active is refused outright (None).
    outcomes = [
        o for o in ClaimOutcome if o not in (ClaimOutcome.NOT_ACTIVE, ClaimOutcome.NOT_FOUND)
    ]
    for what in (None, *outcomes):
        assert seen[what] >= 2, (what, dict(seen))
    assert seen["must claim"] >= 5, dict(seen)
