"""Token authentication finds the member a request acts as in the same statement."""

import pytest
from django.test import RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIClient

from qa.models import AnnotatorHourStats
from tasks.models import Annotation, Assignment
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce.models import Member, Role
from workforce.tenancy import MemberTokenAuthentication

pytestmark = pytest.mark.django_db


def headers(user, organization: str | None) -> dict:
    key = Token.objects.get_or_create(user=user)[0].key
    found = {"HTTP_AUTHORIZATION": f"Token {key}"}
    if organization:
        found["HTTP_X_ORGANIZATION"] = organization
    return found


def token_client(user, organization: str | None = None) -> APIClient:
    client = APIClient()
    client.credentials(**headers(user, organization))
    return client


def authenticate(user, organization: str | None = None):
    """Run the authentication class on a bare request; return (user, token, member)."""
    request = RequestFactory().get("/", **headers(user, organization))
    user, token = MemberTokenAuthentication().authenticate(Request(request))
    return user, token, getattr(request, "_assay_member", None)


def test_a_claim_costs_one_statement(org, django_assert_num_queries):
    """The hot path: the claim finds the annotator the token acts as in its own statement."""
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    client = token_client(org.annotator_member.user, "acme")
    with django_assert_num_queries(1):
        response = client.post("/api/v1/claims/", {}, format="json")
    assert response.status_code == 201, response.content
    assert Assignment.objects.get().annotator == org.annotator


def test_a_submit_costs_two_statements_and_reads_nothing_back(org, django_assert_num_queries):
    """The other half of the loop: the assignment with the project and task it is validated
    against, its holder, the member the token acts as, and whether the project has review
    layers (it has none); then ``tasks_submit``, which locks, checks and writes, in one
    statement with what quality records of the submission (the live event, the annotator's
    hourly stats), and no transaction around it: nothing is left to do after it. The answer is
    built from what the request read."""
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    client = token_client(org.annotator_member.user, "acme")
    claimed = client.post("/api/v1/claims/", {}, format="json").json()
    box = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}
    with django_assert_num_queries(2):
        response = client.post(
            f"/api/v1/assignments/{claimed['id']}/submit/", {"payload": box}, format="json"
        )
    assert response.status_code == 201, response.content
    assert response.json()["annotator_username"] == org.annotator_member.user.username
    assert Assignment.objects.get().status == "submitted"
    [row] = AnnotatorHourStats.objects.all()
    assert (row.annotator, row.submitted) == (org.annotator, 1)


def test_the_member_comes_with_what_requests_use_and_the_rest_on_demand(
    org, django_assert_num_queries
):
    annotator = org.add_annotator("polyglot", languages=["de", "fr"])
    user, token, member = authenticate(annotator.member.user, "acme")
    with django_assert_num_queries(0):
        assert member.user == user and token.user == user
        assert member.organization.slug == "acme"
        assert member.role == Role.ANNOTATOR and member.is_active and user.is_active
        assert member.annotator.pk == annotator.pk
        assert member.annotator.max_concurrent_tasks == annotator.max_concurrent_tasks
        assert member.annotator.member is member
    # Left unread, each costing a conversion in Python: read on first use, converted alike.
    assert member.annotator.get_deferred_fields() == {"created_at", "updated_at", "languages"}
    with django_assert_num_queries(2):
        assert member.annotator.languages == ["de", "fr"]  # JSON decoded, not text
        assert member.created_at.tzinfo is not None


def test_a_member_without_a_profile_reads_none_without_a_query(org, django_assert_num_queries):
    _user, _token, member = authenticate(org.manager.user, "acme")
    with django_assert_num_queries(0):
        assert getattr(member, "annotator", None) is None


def test_one_membership_needs_no_header(org):
    response = token_client(org.annotator_member.user).get("/api/v1/skills/")
    assert response.status_code == 200


def test_several_memberships_need_the_header(org, other_org):
    user = org.manager.user
    Member.objects.create(organization=other_org.organization, user=user, role=Role.QA_LEAD)
    response = token_client(user).get("/api/v1/skills/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "organization_required"
    assert "X-Organization" in response.json()["error"]["fields"]
    # With the header, each organization answers with the member's own role there.
    assert token_client(user, "acme").get("/api/v1/audit-events/").status_code == 200
    assert token_client(user, "globex").get("/api/v1/audit-events/").status_code == 200
    assert token_client(user, "globex").post("/api/v1/domains/", {}).status_code == 403


def test_another_organization_is_not_found(org, other_org):
    response = token_client(org.annotator_member.user, "globex").get("/api/v1/skills/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "organization_not_found"


def test_a_deactivated_membership_is_not_found(org):
    org.annotator_member.is_active = False
    org.annotator_member.save(update_fields=["is_active"])
    response = token_client(org.annotator_member.user, "acme").get("/api/v1/skills/")
    assert response.status_code == 404


def test_an_inactive_user_is_refused(org):
    client = token_client(org.annotator_member.user, "acme")
    org.annotator_member.user.is_active = False
    org.annotator_member.user.save(update_fields=["is_active"])
    response = client.get("/api/v1/skills/")
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Token nope", "Token ", "Token a b", "Bearer x"])
def test_a_bad_token_is_refused(org, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header, HTTP_X_ORGANIZATION="acme")
    response = client.get("/api/v1/skills/")
    assert response.status_code == 401


# The claim and the submit find the member a token acts as in their own first statement. Each
# case changes who the token may act as after the client got it; the answer must be the one
# every other endpoint gives for the same change, and nothing may be claimed or submitted.
def _revoke_token(org, other_org):
    Token.objects.filter(user=org.annotator_member.user).delete()


def _deactivate_user(org, other_org):
    org.annotator_member.user.is_active = False
    org.annotator_member.user.save(update_fields=["is_active"])


def _deactivate_membership(org, other_org):
    Member.objects.filter(pk=org.annotator_member.pk).update(is_active=False)


def _make_manager(org, other_org):
    Member.objects.filter(pk=org.annotator_member.pk).update(role=Role.MANAGER)


def _add_a_second_organization(org, other_org):
    Member.objects.create(
        organization=other_org.organization, user=org.annotator_member.user, role=Role.ANNOTATOR
    )


REVOCATIONS = {
    "token revoked": (_revoke_token, None, 401),
    "user deactivated": (_deactivate_user, None, 401),
    "membership deactivated": (_deactivate_membership, None, 404),
    "role changed": (_make_manager, None, 403),
    "another organization named": (None, "globex", 404),
    "several organizations, none named": (_add_a_second_organization, "", 400),
}


@pytest.fixture
def held(org):
    """A project with open work, and an assignment of it the annotator holds."""
    project = make_project(org, gold_rate=0)
    import_rows(project, image_rows(4))
    staff(project, org.annotator)
    claimed = token_client(org.annotator_member.user, "acme").post("/api/v1/claims/", {})
    assert claimed.status_code == 201, claimed.content
    return claimed.json()["id"]


def _token_client_after(change, slug, org, other_org) -> APIClient:
    client = token_client(org.annotator_member.user, "acme" if slug is None else slug or None)
    if change is not None:
        change(org, other_org)
    return client


@pytest.mark.parametrize(("change", "slug", "status"), REVOCATIONS.values(), ids=REVOCATIONS)
def test_a_claim_by_a_token_that_may_no_longer_claim_is_refused(
    org, other_org, held, change, slug, status
):
    client = _token_client_after(change, slug, org, other_org)
    for body in ({}, {"project": "x"}):  # a bad input is not told before who may ask
        response = client.post("/api/v1/claims/", body, format="json")
        assert response.status_code == status, response.content
    assert Assignment.objects.count() == 1


@pytest.mark.parametrize(("change", "slug", "status"), REVOCATIONS.values(), ids=REVOCATIONS)
def test_a_submit_by_a_token_that_may_no_longer_submit_is_refused(
    org, other_org, held, change, slug, status
):
    client = _token_client_after(change, slug, org, other_org)
    box = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}
    for pk, payload in ((held, box), (held, {"boxes": "x"}), (held + 1000, box)):
        response = client.post(
            f"/api/v1/assignments/{pk}/submit/", {"payload": payload}, format="json"
        )
        assert response.status_code == status, response.content
    # Still held, or its lease ended with the access (tasks/services/access.sql).
    assert Assignment.objects.get(pk=held).status in ("active", "revoked")
    assert not Annotation.objects.exists()


def test_a_token_submits_only_its_own_members_work(org, other_org, held):
    """Another annotator of the organization, and the same user's membership elsewhere, are
    answered as if the assignment did not exist."""
    other = org.add_annotator("other")
    annotator_elsewhere = other_org.add_annotator("roamer")
    box = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}
    for user, slug in ((other.member.user, "acme"), (annotator_elsewhere.member.user, "globex")):
        response = token_client(user, slug).post(
            f"/api/v1/assignments/{held}/submit/", {"payload": box}, format="json"
        )
        assert response.status_code == 404, response.content
    assert Assignment.objects.get(pk=held).status == "active"


def test_a_claim_by_token_answers_what_keeps_the_annotator_from_work(org, held):
    """Outcomes past a task or an empty queue are answered as before: here, the limit."""
    org.annotator.max_concurrent_tasks = 1
    org.annotator.save(update_fields=["max_concurrent_tasks"])
    response = token_client(org.annotator_member.user, "acme").post("/api/v1/claims/", {})
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "at_limit"
    assert Assignment.objects.count() == 1
