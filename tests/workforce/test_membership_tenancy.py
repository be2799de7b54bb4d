"""Who can be made a member: a manager creates accounts of their own organization only.

A username that exists in another organization must be indistinguishable from a free one, and
nobody outside an organization can be attached to it by a manager's word.
"""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from config.errors import Conflict
from workforce import services
from workforce.models import AuditEvent, Invitation, Member, Role

pytestmark = pytest.mark.django_db

User = get_user_model()


def create(org, client=None, **body):
    body = {"role": "annotator", "password": "pw-long-enough"} | body
    client = client or org.client(Role.MANAGER)
    return client.post("/api/v1/members/", body, format="json")


def token_for(login: str, password: str = "pw-long-enough"):
    return APIClient().post("/api/v1/auth/token/", {"username": login, "password": password})


def shape(body: dict) -> dict:
    """The answer with what differs between any two fresh accounts left out."""
    return {
        key: value
        for key, value in body.items()
        if key not in ("id", "username", "login", "expires_at")
    }


def test_a_username_of_another_organization_gives_a_new_account_of_ones_own(org, other_org):
    theirs = other_org.add("alice", Role.MANAGER)
    their_user = User.objects.get(pk=theirs.user_id)
    their_user.email, their_user.first_name = "alice@globex.example", "Alice"
    their_user.save()

    response = create(org, username="alice", email="a2@acme.example", first_name="Al")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "alice" and body["login"] == "alice@acme"
    # Nothing of globex's alice: the email and name are the ones sent.
    assert body["email"] == "a2@acme.example" and body["name"] == "Al"
    assert body["organization"] == "acme"
    created = Member.objects.get(pk=body["id"])
    assert created.user_id != their_user.pk
    # globex's alice still belongs to globex alone, and her single-organization client works.
    assert list(Member.objects.filter(user=their_user).values_list("organization__slug")) == [
        ("globex",)
    ]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for('alice@globex').json()['token']}")
    assert client.get("/api/v1/annotators/").status_code == 200
    # The sent password is the new account's.
    assert token_for("alice@acme").status_code == 200


def test_a_name_taken_elsewhere_answers_exactly_as_a_free_one(org, other_org):
    other_org.add("taken", Role.ANNOTATOR)
    answers, queries = {}, {}
    client = org.client(Role.MANAGER)
    for name in ("taken", "free"):
        with CaptureQueriesContext(connection) as captured:
            answers[name] = create(org, client, username=name, email="x@acme.example")
        queries[name] = len(captured)
    assert answers["taken"].status_code == answers["free"].status_code == 201
    assert shape(answers["taken"].json()) == shape(answers["free"].json())
    assert answers["taken"].json()["login"] == "taken@acme"
    # The same work either way (no lookup outside the organization), so the same time.
    assert queries["taken"] == queries["free"]


def test_a_username_with_an_at_sign_is_refused_naming_the_field(org, other_org):
    members, events = Member.objects.count(), AuditEvent.objects.count()
    for name in ("globex-manager@globex", "x@", "@acme"):
        response = create(org, username=name)
        assert response.status_code == 400, response.content
        assert "username" in response.json()["error"]["fields"]
    assert (Member.objects.count(), AuditEvent.objects.count()) == (members, events)
    assert other_org.manager.user.memberships.count() == 1


def test_a_username_too_long_for_a_login_is_refused(org):
    response = create(org, username="a" * (150 - len("@acme") + 1))
    assert response.status_code == 400
    assert "username" in response.json()["error"]["fields"]
    assert create(org, username="a" * (150 - len("@acme"))).status_code == 201


def test_the_same_username_twice_in_one_organization_conflicts(org):
    assert create(org, username="bob").status_code == 201
    response = create(org, username="bob")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_member"
    assert User.objects.filter(username="bob@acme").count() == 1


def test_a_global_account_keeps_its_login_and_its_name_is_free_in_every_organization(org):
    root = User.objects.create_superuser("alice", "root@example.com", "root-password")
    assert token_for("alice", "root-password").status_code == 200
    response = create(org, username="alice")
    assert response.status_code == 201
    assert User.objects.get(pk=root.pk).memberships.count() == 0
    assert token_for("alice", "root-password").status_code == 200


def test_the_member_list_shows_only_the_organizations_people(org, other_org):
    services.member_join(
        organization=other_org.organization, user=org.qa_lead.user, role=Role.ANNOTATOR, actor=None
    )
    listed = org.client(Role.MANAGER).get("/api/v1/members/?page_size=500").json()["results"]
    assert {m["organization"] for m in listed} == {"acme"}
    assert {m["login"].split("@")[1] for m in listed} == {"acme"}
    theirs = other_org.client(Role.MANAGER).get("/api/v1/members/").json()["results"]
    by_login = {m["login"]: m for m in theirs}
    # In globex, the person who joined from acme is known by their whole login.
    assert by_login["acme-qa@acme"]["username"] == "acme-qa@acme"
    assert by_login["acme-qa@acme"]["role"] == "annotator"
    assert by_login["globex-manager@globex"]["username"] == "globex-manager"
    assert {m["organization"] for m in theirs} == {"globex"}


def test_joining_an_organization_twice_conflicts(org, other_org):
    services.member_join(
        organization=other_org.organization, user=org.qa_lead.user, role=Role.ANNOTATOR, actor=None
    )
    with pytest.raises(Conflict) as error:
        services.member_join(
            organization=other_org.organization,
            user=org.qa_lead.user,
            role=Role.REVIEWER,
            actor=None,
        )
    assert error.value.code == "already_member"


def invite(org, login: str, role: str = "annotator", client=None):
    client = client or org.client(Role.MANAGER)
    return client.post("/api/v1/invitations/", {"login": login, "role": role}, format="json")


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_invitation_answers_alike_whether_or_not_the_login_exists(org, other_org):
    client = org.client(Role.MANAGER)
    answers, queries = {}, {}
    for login in ("globex-qa@globex", "nobody@globex"):
        with CaptureQueriesContext(connection) as captured:
            answers[login] = invite(org, login, client=client)
        queries[login] = len(captured)
    exists, missing = answers["globex-qa@globex"], answers["nobody@globex"]
    assert exists.status_code == missing.status_code == 201, exists.content
    assert shape(exists.json()) == shape(missing.json())
    assert exists.json()["status"] == "pending" and exists.json()["organization"] == "acme"
    assert queries["globex-qa@globex"] == queries["nobody@globex"]
    # Nobody joined by the manager's word.
    assert other_org.qa_lead.user.memberships.count() == 1


def test_the_invitee_lists_and_accepts_and_joins_with_the_offered_role(org, other_org):
    invitation = invite(org, "globex-qa@globex", "reviewer").json()
    invitee = as_user(other_org.qa_lead.user)
    listed = invitee.get("/api/v1/me/invitations/").json()
    assert [(i["id"], i["organization"], i["role"]) for i in listed] == [
        (invitation["id"], "acme", "reviewer")
    ]
    # Nobody else sees or answers it.
    outsider = as_user(other_org.manager.user)
    assert outsider.get("/api/v1/me/invitations/").json() == []
    assert outsider.post(f"/api/v1/me/invitations/{invitation['id']}/accept").status_code == 404

    response = invitee.post(f"/api/v1/me/invitations/{invitation['id']}/accept")

    assert response.status_code == 200, response.content
    assert response.json()["organization"] == "acme" and response.json()["role"] == "reviewer"
    assert response.json()["username"] == "globex-qa@globex"
    assert set(other_org.qa_lead.user.memberships.values_list("organization__slug", "role")) == {
        ("globex", "qa_lead"),
        ("acme", "reviewer"),
    }
    event = AuditEvent.objects.get(verb="member.created", target_id=response.json()["id"])
    assert event.actor == other_org.qa_lead.user and event.organization == org.organization
    # Answered once: it is no longer open.
    assert invitee.get("/api/v1/me/invitations/").json() == []
    assert invitee.post(f"/api/v1/me/invitations/{invitation['id']}/accept").status_code == 404


def test_a_declined_invitation_adds_nobody_and_can_be_sent_again(org, other_org):
    first = invite(org, "globex-qa@globex").json()
    assert invite(org, "globex-qa@globex").status_code == 409
    invitee = as_user(other_org.qa_lead.user)
    assert invitee.post(f"/api/v1/me/invitations/{first['id']}/decline").status_code == 204
    assert other_org.qa_lead.user.memberships.count() == 1
    assert invite(org, "globex-qa@globex").status_code == 201


def test_only_a_manager_invites_and_a_bad_login_is_refused_naming_the_field(org):
    assert invite(org, "x@globex", client=org.client(Role.QA_LEAD)).status_code == 403
    for login in ("with space@globex", "", "a" * 151):
        response = invite(org, login)
        assert response.status_code == 400, response.content
        assert "login" in response.json()["error"]["fields"]
    response = invite(org, "x@globex", role="boss")
    assert response.status_code == 400 and "role" in response.json()["error"]["fields"]
    listed = org.client(Role.MANAGER).get("/api/v1/invitations/").json()
    assert listed["count"] == 0


def test_a_lapsed_invitation_cannot_be_accepted_and_may_be_sent_again(org, other_org):
    first = invite(org, "globex-qa@globex").json()
    Invitation.objects.filter(pk=first["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    invitee = as_user(other_org.qa_lead.user)
    assert invitee.get("/api/v1/me/invitations/").json() == []
    assert invitee.post(f"/api/v1/me/invitations/{first['id']}/accept").status_code == 404
    assert other_org.qa_lead.user.memberships.count() == 1
    second = invite(org, "globex-qa@globex")
    assert second.status_code == 201
    assert Invitation.objects.get(pk=first["id"]).status == "expired"
