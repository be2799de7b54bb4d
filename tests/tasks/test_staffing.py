"""Staffing: annotators ranked for a project, with the reasons the unqualified are not."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.services.claims import claim_next
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Certification, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(org):
    medical = services.domain_create(
        organization=org.organization,
        slug="medical-imaging",
        name="Med",
        description="",
        actor=None,
    )
    project = make_project(org, required_skill_level=3, max_concurrent_tasks=10)
    project.required_domains.set([medical])
    import_rows(project, image_rows(5))
    expert = org.add_annotator("expert", max_concurrent_tasks=4)
    novice = org.add_annotator("novice")
    lapsed = org.add_annotator("lapsed")
    for annotator, level in ((expert, 5), (novice, 2), (lapsed, 4)):
        services.annotator_skill_set(
            annotator=annotator, skill="bbox", level=level, source="exam", actor=None
        )
    for annotator in (expert, novice, lapsed):
        services.certification_issue(
            annotator=annotator,
            domain=medical,
            issued_by=None,
            evidence="exam",
            expires_at=timezone.now() + timedelta(days=30),
        )
    Certification.objects.filter(annotator=lapsed).update(
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 10, 1, tzinfo=UTC),
    )
    staff(project, expert, skill_level=5)
    claim_next(annotator=expert)
    return project, expert, novice, lapsed


def test_staffing_ranks_qualified_first_and_says_why_others_are_not(org, setup):
    project, _, novice, _ = setup
    response = org.client(Role.MANAGER).get(f"/api/v1/projects/{project.pk}/staffing")
    assert response.status_code == 200
    # Staffing lists people by login, which carries the organization.
    rows = {r["username"].removesuffix("@acme"): r for r in response.json()}
    assert response.json()[0]["username"] == "expert@acme"
    assert rows["expert"]["qualified"] and rows["expert"]["is_member"]
    assert rows["expert"]["load"]["live_tasks"] == 1
    assert rows["expert"]["load"]["max_concurrent_tasks"] == 4
    # Nothing scored yet: accuracy unknown in the kind and in every domain.
    assert rows["expert"]["accuracy"] == {"kind": None, "domains": {}}
    assert rows["novice"]["reasons"] == ["skill bbox level 2 < 3"]
    assert rows["lapsed"]["reasons"] == ["certification medical-imaging expired 2026-10-01"]
    assert rows["acme-annotator"]["reasons"] == [
        "skill bbox no level < 3",
        "no certification in medical-imaging",
    ]
    services.annotator_set_status(annotator=novice, action="suspend", actor=None, reason="r")
    rows = {
        r["username"].removesuffix("@acme"): r
        for r in org.client(Role.QA_LEAD).get(f"/api/v1/projects/{project.pk}/staffing").json()
    }
    assert rows["novice"]["reasons"][0] == "annotator is suspended"


def test_staffing_query_count_does_not_grow_with_the_organization(org, setup):
    project = setup[0]
    client = org.client(Role.MANAGER)

    def count():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/api/v1/projects/{project.pk}/staffing")
        assert response.status_code == 200, response.content
        return len(queries), len(response.json())

    baseline, rows = count()
    for i in range(10):
        org.add_annotator(f"extra{i}")
    # Ten more rows, and not one more query.
    assert count() == (baseline, rows + 10)


def test_staffing_post_adds_members_and_only_managers_may(org, setup):
    project, _, novice, _ = setup
    url = f"/api/v1/projects/{project.pk}/staffing"
    assert (
        org.client(Role.QA_LEAD).post(url, {"annotators": [novice.pk]}, format="json").status_code
        == 403
    )
    assert org.client(Role.ANNOTATOR).get(url).status_code == 403
    response = org.client(Role.MANAGER).post(url, {"annotators": [novice.pk]}, format="json")
    assert response.status_code == 201
    assert project.members.filter(annotator=novice, is_active=True).exists()


def test_reviewers_are_no_annotation_capacity_and_stay_off_the_ranking(org, setup):
    """Reviewers hold a working profile (for what review layers ask), and may even hold the
    project's skill level and certifications: they are still no annotators, whom the claim
    would never serve, so they are neither ranked nor counted among the qualified."""
    project = setup[0]
    skilled = org.add("skilled-reviewer", Role.REVIEWER)
    profile = skilled.annotator
    services.annotator_skill_set(
        annotator=profile, skill="bbox", level=5, source="exam", actor=None
    )
    rows = org.client(Role.MANAGER).get(f"/api/v1/projects/{project.pk}/staffing").json()
    names = {r["username"].removesuffix("@acme") for r in rows}
    assert "skilled-reviewer" not in names and "acme-reviewer" not in names
    assert {"expert", "novice", "lapsed", "acme-annotator"} <= names
    # Becoming an annotator puts them on it.
    services.member_role_change(member=skilled, role=Role.ANNOTATOR, actor=None)
    rows = org.client(Role.MANAGER).get(f"/api/v1/projects/{project.pk}/staffing").json()
    assert "skilled-reviewer@acme" in {r["username"] for r in rows}
