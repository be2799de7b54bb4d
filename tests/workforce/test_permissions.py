"""Who may call what, and that nothing crosses an organization."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workforce import services
from workforce.models import AnnotatorStatus, AuditEvent, Certification, Domain, Role

pytestmark = pytest.mark.django_db

M, Q, R, A = Role.MANAGER, Role.QA_LEAD, Role.REVIEWER, Role.ANNOTATOR
EVERYONE = {M, Q, R, A}


@pytest.fixture
def objects(org):
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    spare = services.domain_create(
        organization=org.organization, slug="spare", name="Spare", description="", actor=None
    )
    certification = services.certification_issue(
        annotator=org.annotator,
        domain=domain,
        issued_by=None,
        evidence="exam",
        expires_at=timezone.now() + timedelta(days=10),
    )
    return {"annotator": org.annotator.pk, "domain": spare.pk, "cert": certification.pk}


future = (timezone.now() + timedelta(days=400)).isoformat()

# (method, path, body, roles allowed, status an allowed role gets)
MATRIX = [
    ("get", "/api/v1/members/", None, EVERYONE, 200),
    ("post", "/api/v1/members/", {"username": "new", "role": "reviewer"}, {M}, 201),
    ("get", "/api/v1/skills/", None, EVERYONE, 200),
    ("get", "/api/v1/annotators/", None, EVERYONE, 200),
    ("get", "/api/v1/annotators/{annotator}/", None, {M, Q, A}, 200),
    ("patch", "/api/v1/annotators/{annotator}/", {"weekly_capacity_hours": 20}, {M}, 200),
    ("post", "/api/v1/annotators/{annotator}/suspend", {"reason": "r"}, {M, Q}, 200),
    ("post", "/api/v1/annotators/{annotator}/offboard", {"reason": "r"}, {M}, 200),
    ("put", "/api/v1/annotators/{annotator}/skills/bbox/", {"level": 2}, {M, Q}, 200),
    ("get", "/api/v1/domains/", None, EVERYONE, 200),
    ("post", "/api/v1/domains/", {"slug": "new", "name": "New"}, {M}, 201),
    ("get", "/api/v1/domains/{domain}/", None, EVERYONE, 200),
    ("patch", "/api/v1/domains/{domain}/", {"name": "Renamed"}, {M}, 200),
    ("delete", "/api/v1/domains/{domain}/", None, {M}, 204),
    ("get", "/api/v1/certifications/", None, EVERYONE, 200),
    (
        "post",
        "/api/v1/certifications/",
        {"annotator": 0, "domain": "spare", "evidence": "e"},
        {Q},
        201,
    ),
    ("get", "/api/v1/certifications/{cert}/", None, {M, Q, A}, 200),
    ("post", "/api/v1/certifications/{cert}/suspend", {"reason": "r"}, {Q}, 200),
    ("post", "/api/v1/certifications/{cert}/revoke", {"reason": "r"}, {Q}, 200),
    ("post", "/api/v1/certifications/{cert}/renew", {"expires_at": future}, {Q}, 200),
    ("get", "/api/v1/audit-events/", None, {M, Q}, 200),
]


@pytest.mark.parametrize("role", [M, Q, R, A])
@pytest.mark.parametrize(("method", "path", "body", "allowed", "success"), MATRIX)
def test_role_matrix(org, objects, role, method, path, body, allowed, success):
    url = path.format(**objects)
    if body and body.get("annotator") == 0:
        body = {**body, "annotator": objects["annotator"]}
    response = getattr(org.client(role), method)(url, body, format="json")
    if role in allowed:
        assert response.status_code == success, (role, url, response.content)
    elif role == R and "{" in path and method == "get":
        # Reviewers may read these endpoints but see only themselves, and they have no
        # annotator profile: the object is not theirs to see.
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    else:
        # A role that may not call the endpoint is refused before any lookup.
        assert response.status_code == 403, (role, url, response.content)
        assert response.json()["error"]["code"] == "permission_denied"


def test_annotators_see_only_themselves(org):
    other = org.add_annotator("someone-else")
    client = org.client(A)
    assert [a["id"] for a in client.get("/api/v1/annotators/").json()["results"]] == [
        org.annotator.pk
    ]
    assert client.get(f"/api/v1/annotators/{other.pk}/").status_code == 404
    assert [m["id"] for m in client.get("/api/v1/members/").json()["results"]] == [
        org.annotator_member.pk
    ]


# (method, path, body, roles that may call it)
OBJECT_ENDPOINTS = [
    ("get", "/api/v1/annotators/{annotator}/", None, EVERYONE),
    ("patch", "/api/v1/annotators/{annotator}/", {"weekly_capacity_hours": 1}, {M}),
    ("post", "/api/v1/annotators/{annotator}/suspend", {"reason": "r"}, {M, Q}),
    ("post", "/api/v1/annotators/{annotator}/reinstate", {"reason": "r"}, {M, Q}),
    ("post", "/api/v1/annotators/{annotator}/offboard", {"reason": "r"}, {M}),
    ("put", "/api/v1/annotators/{annotator}/skills/bbox/", {"level": 5}, {M, Q}),
    ("get", "/api/v1/domains/{domain}/", None, EVERYONE),
    ("patch", "/api/v1/domains/{domain}/", {"name": "Stolen"}, {M}),
    ("delete", "/api/v1/domains/{domain}/", None, {M}),
    ("get", "/api/v1/certifications/{cert}/", None, EVERYONE),
    ("post", "/api/v1/certifications/{cert}/suspend", {"reason": "r"}, {Q}),
    ("post", "/api/v1/certifications/{cert}/reinstate", {"reason": "r"}, {Q}),
    ("post", "/api/v1/certifications/{cert}/revoke", {"reason": "r"}, {Q}),
    ("post", "/api/v1/certifications/{cert}/renew", {"expires_at": future}, {Q}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), OBJECT_ENDPOINTS)
@pytest.mark.parametrize("role", [M, Q])
def test_objects_of_another_organization_answer_404_and_stay_unchanged(
    org, other_org, role, method, path, body, allowed
):
    foreign_domain = services.domain_create(
        organization=other_org.organization,
        slug="secret",
        name="Secret",
        description="",
        actor=None,
    )
    foreign_cert = services.certification_issue(
        annotator=other_org.annotator,
        domain=foreign_domain,
        issued_by=None,
        evidence="exam",
        expires_at=timezone.now() + timedelta(days=10),
    )
    ids = {
        "annotator": other_org.annotator.pk,
        "domain": foreign_domain.pk,
        "cert": foreign_cert.pk,
    }
    events_before = AuditEvent.objects.count()
    response = getattr(org.client(role), method)(path.format(**ids), body, format="json")
    if role in allowed:
        # Another organization's object is not found: its existence is not revealed.
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    else:
        # A role that may not call the endpoint at all is refused before the lookup.
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "permission_denied"
    other_org.annotator.refresh_from_db()
    foreign_cert.refresh_from_db()
    assert other_org.annotator.status == AnnotatorStatus.ACTIVE
    assert other_org.annotator.weekly_capacity_hours == 40
    assert not other_org.annotator.skills.exists()
    assert Domain.objects.get(pk=foreign_domain.pk).name == "Secret"
    assert Certification.objects.get(pk=foreign_cert.pk).status == "active"
    assert AuditEvent.objects.count() == events_before


def test_manager_404s_for_foreign_objects_on_every_endpoint_they_may_call(org, other_org):
    """The allowed role gets 404, never 403, so existence is not revealed."""
    foreign_domain = services.domain_create(
        organization=other_org.organization,
        slug="secret",
        name="Secret",
        description="",
        actor=None,
    )
    client = org.client(M)
    assert client.get(f"/api/v1/annotators/{other_org.annotator.pk}/").status_code == 404
    assert client.patch(f"/api/v1/domains/{foreign_domain.pk}/", {"name": "x"}).status_code == 404
    assert client.delete(f"/api/v1/domains/{foreign_domain.pk}/").status_code == 404
    listed = client.get("/api/v1/annotators/").json()["results"]
    assert other_org.annotator.pk not in [a["id"] for a in listed]
    assert client.get("/api/v1/domains/").json()["count"] == 0
    # Issuing a certification with a foreign annotator or domain names the field.
    qa = org.client(Q)
    response = qa.post(
        "/api/v1/certifications/",
        {"annotator": other_org.annotator.pk, "domain": "secret", "evidence": "e"},
        format="json",
    )
    assert response.status_code == 400
    assert "annotator" in response.json()["error"]["fields"]
