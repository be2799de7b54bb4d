"""Projects over REST: create, validate, update, list with progress, members, tenancy."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.models import Project
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

VALID = {
    "name": "Street scenes",
    "client": "Acme Mobility",
    "kind": "bbox",
    "label_schema": {"labels": [{"name": "car"}, {"name": "person"}]},
    "required_skill_level": 3,
    "overlap": 2,
    "gold_rate": 0.05,
    "priority": 3,
    "status": "active",
}


def test_manager_creates_a_project_and_it_is_audited(org):
    services.domain_create(
        organization=org.organization, slug="driving", name="Driving", description="", actor=None
    )
    response = org.client(Role.MANAGER).post(
        "/api/v1/projects/", {**VALID, "required_domains": ["driving"]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["required_domains"] == ["driving"]
    assert body["progress"]["tasks_total"] == 0
    assert AuditEvent.objects.filter(verb="project.created", target_id=body["id"]).exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "lidar"}, "kind"),
        ({"label_schema": {"labels": [{"name": ""}]}}, "label_schema.labels[0].name"),
        ({"label_schema": {"labels": "car"}}, "label_schema.labels"),
        ({"overlap": 0}, "overlap"),
        ({"overlap": 11}, "overlap"),
        ({"gold_rate": 1.5}, "gold_rate"),
        ({"required_skill_level": 6}, "required_skill_level"),
        ({"lease_seconds": 5}, "lease_seconds"),
        ({"required_domains": ["nowhere"]}, "required_domains"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_project_input_is_a_400_naming_the_field_and_creates_nothing(org, change, field):
    response = org.client(Role.MANAGER).post(
        "/api/v1/projects/", {**VALID, **change}, format="json"
    )
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert any(key.startswith(field) for key in fields), fields
    assert not Project.objects.exists()


def test_only_managers_create_and_change_projects(org):
    for role in (Role.QA_LEAD, Role.REVIEWER, Role.ANNOTATOR):
        assert org.client(role).post("/api/v1/projects/", VALID, format="json").status_code == 403
    project = make_project(org)
    for role in (Role.QA_LEAD, Role.ANNOTATOR):
        response = org.client(role).patch(f"/api/v1/projects/{project.pk}/", {"priority": 9})
        assert response.status_code == 403, (role, response.content)
        assert response.json()["error"]["code"] == "permission_denied"
    project.refresh_from_db()
    assert project.priority == 0


def test_overlap_is_frozen_once_tasks_exist(org):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    assert client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 3}).status_code == 200
    import_rows(project, image_rows(2))
    response = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 1})
    assert response.status_code == 409
    assert "overlap" in response.json()["error"]["fields"]
    project.refresh_from_db()
    assert project.overlap == 3
    # Other settings still change.
    assert client.patch(f"/api/v1/projects/{project.pk}/", {"priority": 7}).json()["priority"] == 7


def test_list_shows_progress_in_a_constant_number_of_queries(org):
    from tasks.models import Assignment
    from tasks.services.claims import assignment_submit, claim_next

    client = org.client(Role.MANAGER)
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(3))
    a, b = org.annotator, org.add_annotator("b")
    staff(project, a, b)
    box = {"boxes": []}
    for annotator in (a, b):
        claimed = claim_next(annotator=annotator).claimed
        assignment_submit(assignment=Assignment.objects.get(pk=claimed.assignment_id), payload=box)
    claim_next(annotator=a)

    def listing():
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/projects/")
        return response.json()["results"], len(queries)

    results, baseline = listing()
    assert results[0]["progress"] == {
        "tasks_total": 3,
        "tasks_complete": 1,
        "tasks_in_progress": 1,
        "annotations_needed": 6,
        "annotations_submitted": 2,
    }
    for i in range(5):
        make_project(org, name=f"more {i}")
    results, count = listing()
    assert len(results) == 6 and count == baseline


def test_annotators_see_only_their_projects(org):
    mine = make_project(org, name="mine")
    make_project(org, name="not mine")
    staff(mine, org.annotator)
    names = [
        p["name"] for p in org.client(Role.ANNOTATOR).get("/api/v1/projects/").json()["results"]
    ]
    assert names == ["mine"]


def test_members_are_added_and_listed(org):
    project = make_project(org)
    other = org.add_annotator("other")
    client = org.client(Role.MANAGER)
    response = client.post(
        f"/api/v1/projects/{project.pk}/members/",
        {"annotators": [org.annotator.pk, other.pk], "role": "annotator"},
        format="json",
    )
    assert response.status_code == 201, response.content
    listed = client.get(f"/api/v1/projects/{project.pk}/members/").json()["results"]
    assert {m["annotator"] for m in listed} == {org.annotator.pk, other.pk}
    bad = client.post(
        f"/api/v1/projects/{project.pk}/members/", {"annotators": [999999]}, format="json"
    )
    assert bad.status_code == 400 and "annotators" in bad.json()["error"]["fields"]


def test_projects_of_another_organization_answer_404(org, other_org):
    foreign = make_project(other_org)
    own = make_project(org, name="own")
    client = org.client(Role.MANAGER)
    # (method, path, what the same call answers on a project of one's own)
    for method, path, own_status in [
        ("get", "/api/v1/projects/{}/", 200),
        ("patch", "/api/v1/projects/{}/", 400),  # "annotators" is no project setting
        ("get", "/api/v1/projects/{}/members/", 200),
        ("post", "/api/v1/projects/{}/members/", 201),
        ("get", "/api/v1/projects/{}/staffing/", 200),
        ("post", "/api/v1/projects/{}/tasks/import", 415),  # JSON is no upload: past the lookup
        ("get", "/api/v1/projects/{}/export", 200),
    ]:
        body = {"annotators": [org.annotator.pk]} if method != "get" else None
        # The call is answered on one's own project, so the 404 below is the tenancy's.
        answered = getattr(client, method)(path.format(own.pk), body, format="json")
        assert answered.status_code == own_status, (method, path, answered.content)
        response = getattr(client, method)(path.format(foreign.pk), body, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "not_found", response.content
    assert not foreign.members.exists()
    # Nor can a foreign annotator be added to one's own project.
    mine = make_project(org)
    response = client.post(
        f"/api/v1/projects/{mine.pk}/members/",
        {"annotators": [other_org.annotator.pk]},
        format="json",
    )
    assert response.status_code == 400
    assert not mine.members.exists()


def test_every_skill_is_a_registered_kind_and_every_kind_a_skill():
    """Skills (workforce) and kinds (tasks) name the same ten things; a project needs both."""
    from tasks.kinds import KINDS
    from workforce.models import Skill

    assert list(KINDS) == list(Skill.values)
