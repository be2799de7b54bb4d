"""Token authentication finds the member a request acts as in the same statement."""

import pytest
from django.test import RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIClient

from qa.models import AnnotatorHourStats
from tasks.models import Assignment
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


def test_a_claim_costs_two_statements(org, django_assert_num_queries):
    """The hot path: one statement from token to member, one for the claim itself."""
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    client = token_client(org.annotator_member.user, "acme")
    with django_assert_num_queries(2):
        response = client.post("/api/v1/claims/", {}, format="json")
    assert response.status_code == 201, response.content
    assert Assignment.objects.get().annotator == org.annotator


def test_a_submit_costs_four_statements_and_reads_nothing_back(org, django_assert_num_queries):
    """The other half of the loop: the token's member; the assignment with the project and
    task it is validated against; ``tasks_submit``, which locks, checks and writes; then, in
    its transaction, quality's one statement: the live event, the annotator's hourly stats, and
    whether the project has review layers (it has none: nothing more is asked). The answer is
    built from what the request read, not read again."""
    project = make_project(org)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    client = token_client(org.annotator_member.user, "acme")
    claimed = client.post("/api/v1/claims/", {}, format="json").json()
    box = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}
    # Inside the test's transaction, the submit's own is a savepoint: two statements more.
    with django_assert_num_queries(4 + 2):
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
