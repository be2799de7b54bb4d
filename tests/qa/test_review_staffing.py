"""Staffing a project's review (``GET /projects/{id}/review-staffing``): the organization's
reviewers, ranked by the review claim's own rule at each of the project's reviewer layers, with
their membership and their live review leases there."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qa.reviews import review_claim
from tests.helpers import staff
from tests.qa.review_helpers import layer, review_project, reviewer_on, submit_all
from workforce import services
from workforce.models import Annotator, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(org):
    """A bbox project with a peer layer (level 3, a certification in medical-imaging) and a
    QA lead layer; an expert reviewer on it, a novice one off it."""
    medical = services.domain_create(
        organization=org.organization, slug="medical-imaging", name="Med", description="",
        actor=None,
    )  # fmt: skip
    project = review_project(
        org,
        layers=[
            layer("Peer", min_skill_level=3, required_domains=["medical-imaging"]),
            layer("Lead", role="qa_lead"),
        ],
    )
    expert = reviewer_on(org, project, "expert", level=5)
    services.certification_issue(
        annotator=expert.annotator,
        domain=medical,
        issued_by=None,
        evidence="exam",
        expires_at=timezone.now() + timedelta(days=30),
    )
    novice = org.add("novice", Role.REVIEWER)
    services.annotator_skill_set(
        annotator=novice.annotator, skill="bbox", level=2, source="exam", actor=None
    )
    annotator = org.add_annotator("worker")
    Annotator.objects.filter(pk=annotator.pk).update(max_concurrent_tasks=100)
    staff(project, annotator)
    submit_all(Annotator.objects.get(pk=annotator.pk), project, 2)
    return project, expert, novice


def rows_of(org, project, role=Role.MANAGER) -> dict[str, dict]:
    response = org.client(role).get(f"/api/v1/projects/{project.pk}/review-staffing")
    assert response.status_code == 200, response.content
    return {row["username"].removesuffix("@acme"): row for row in response.json()}


def test_reviewers_are_ranked_by_the_review_claims_rule_with_reasons_per_layer(org, reviewed):
    project, expert, _ = reviewed
    assert review_claim(member=expert, project_id=project.pk).claimed is not None
    rows = rows_of(org, project)
    # Reviewers only: no annotator, no QA lead, no manager.
    assert set(rows) == {"expert", "novice", "acme-reviewer"}
    assert next(iter(rows)) == "expert"
    assert rows["expert"] == rows["expert"] | {
        "annotator": expert.annotator.pk,
        "qualified": True,
        "skill_level": 5,
        "is_member": True,
        "load": {"live_reviews_here": 1, "project_max_concurrent_tasks": 1000, "has_room": True},
    }
    # Only the layer reviewers review at.
    assert rows["expert"]["layers"] == [
        {"layer": 1, "name": "Peer", "qualified": True, "reasons": []}
    ]
    assert rows["novice"]["qualified"] is False and rows["novice"]["is_member"] is False
    assert rows["novice"]["layers"][0]["reasons"] == [
        "skill bbox level 2 < 3",
        "no certification in medical-imaging",
    ]
    # A suspended profile qualifies nowhere.
    services.annotator_set_status(
        annotator=expert.annotator, action="suspend", actor=None, reason="r"
    )
    assert rows_of(org, project, Role.QA_LEAD)["expert"]["qualified"] is False


def test_review_staffing_costs_the_same_whatever_the_number_of_reviewers(org, reviewed):
    project = reviewed[0]
    client = org.client(Role.MANAGER)

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/api/v1/projects/{project.pk}/review-staffing")
        return len(queries), len(response.json())

    baseline, rows = count()
    for i in range(6):
        reviewer_on(org, project, f"extra{i}", level=4)
    assert count() == (baseline, rows + 6)


def test_only_staff_read_it_and_a_manager_staffs_review_through_the_members(
    org, other_org, reviewed
):
    project, _, novice = reviewed
    url = f"/api/v1/projects/{project.pk}/review-staffing"
    for role in (Role.ANNOTATOR, Role.REVIEWER):
        assert org.client(role).get(url).status_code == 403
    assert other_org.client(Role.MANAGER).get(url).status_code == 404
    added = org.client(Role.MANAGER).post(
        f"/api/v1/projects/{project.pk}/members",
        {"annotators": [novice.annotator.pk], "role": "reviewer"},
        format="json",
    )
    assert added.status_code == 201
    assert rows_of(org, project)["novice"]["is_member"] is True
