"""Changing a member's role in the organization: who may, what it audits, what it refuses."""

import threading

import pytest
from django.db import connection

from config.errors import Conflict
from tasks.models import Assignment, AssignmentStatus, Slot, SlotState
from tasks.services.claims import claim_next
from tests.helpers import Org, image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Annotator, AuditEvent, AuditVerb, Member, Role


def _url(member: Member) -> str:
    return f"/api/v1/members/{member.pk}"


def test_a_manager_changes_a_role_and_it_is_audited(org):
    response = org.client(Role.MANAGER).patch(
        _url(org.reviewer), {"role": "qa_lead", "reason": "new QA lead"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["role"] == "qa_lead"
    assert Member.objects.get(pk=org.reviewer.pk).role == Role.QA_LEAD
    event = AuditEvent.objects.get(verb=AuditVerb.MEMBER_ROLE_CHANGED)
    assert (event.target_id, event.before, event.after, event.reason) == (
        org.reviewer.pk,
        {"role": "reviewer"},
        {"role": "qa_lead"},
        "new QA lead",
    )
    assert event.actor_id == org.manager.user_id
    # The same role again changes nothing and writes nothing.
    org.client(Role.MANAGER).patch(_url(org.reviewer), {"role": "qa_lead"}, format="json")
    assert AuditEvent.objects.filter(verb=AuditVerb.MEMBER_ROLE_CHANGED).count() == 1


def test_only_managers_change_roles(org):
    for role in (Role.QA_LEAD, Role.REVIEWER, Role.ANNOTATOR):
        response = org.client(role).patch(_url(org.reviewer), {"role": "manager"}, format="json")
        assert response.status_code == 403
    assert Member.objects.get(pk=org.reviewer.pk).role == Role.REVIEWER
    assert not AuditEvent.objects.filter(verb=AuditVerb.MEMBER_ROLE_CHANGED).exists()


def test_bad_input_names_the_field_and_changes_nothing(org):
    client = org.client(Role.MANAGER)
    for body in ({"role": "owner"}, {"role": None}, {"role": "qa_lead", "is_active": False}):
        response = client.patch(_url(org.reviewer), body, format="json")
        assert response.status_code == 400
        fields = response.json()["error"]["fields"]
        assert ("is_active" if "is_active" in body else "role") in fields
    # As in any PATCH, no role is no change.
    assert client.patch(_url(org.reviewer), {}, format="json").json()["role"] == "reviewer"
    assert not AuditEvent.objects.filter(verb=AuditVerb.MEMBER_ROLE_CHANGED).exists()
    assert Member.objects.get(pk=org.reviewer.pk).role == Role.REVIEWER
    assert Member.objects.get(pk=org.reviewer.pk).is_active


def test_another_organizations_member_is_not_found(org, other_org):
    response = other_org.client(Role.MANAGER).patch(
        _url(org.reviewer), {"role": "manager"}, format="json"
    )
    assert response.status_code == 404
    assert other_org.client(Role.MANAGER).get(_url(org.reviewer)).status_code == 404
    assert Member.objects.get(pk=org.reviewer.pk).role == Role.REVIEWER


def test_the_last_manager_keeps_the_role(org):
    client = org.client(Role.MANAGER)
    response = client.patch(_url(org.manager), {"role": "annotator"}, format="json")
    assert response.status_code == 409 and "role" in response.json()["error"]["fields"]
    assert Member.objects.get(pk=org.manager.pk).role == Role.MANAGER
    # With a second manager, the first may step down.
    client.patch(_url(org.reviewer), {"role": "manager"}, format="json")
    response = client.patch(_url(org.manager), {"role": "qa_lead"}, format="json")
    assert response.status_code == 200
    assert Member.objects.get(pk=org.manager.pk).role == Role.QA_LEAD


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_becoming_an_annotator_or_a_reviewer_gives_a_working_profile(org, role):
    assert not Annotator.objects.filter(member=org.qa_lead).exists()
    response = org.client(Role.MANAGER).patch(_url(org.qa_lead), {"role": role}, format="json")
    assert response.status_code == 200
    profile = Annotator.objects.get(member=org.qa_lead)
    event = AuditEvent.objects.get(verb=AuditVerb.MEMBER_ROLE_CHANGED)
    assert event.annotator_id == profile.pk


def test_a_new_reviewer_has_a_working_profile_and_a_new_qa_lead_none(org):
    """A reviewer's skill levels and certifications, which review layers ask for, live on it."""
    assert Annotator.objects.filter(member=org.reviewer).exists()
    assert not Annotator.objects.filter(member=org.qa_lead).exists()


def test_an_annotator_moved_to_another_role_loses_their_leases(org):
    project = make_project(org, overlap=1)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    claimed = claim_next(annotator=org.annotator, project_id=project.pk).claimed
    assignment = Assignment.objects.get(pk=claimed.assignment_id)
    annotator = org.client(Role.ANNOTATOR)
    response = org.client(Role.MANAGER).patch(
        _url(org.annotator_member), {"role": "reviewer"}, format="json"
    )
    assert response.status_code == 200
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.REVOKED
    assert Slot.objects.get(pk=assignment.slot_id).state == SlotState.OPEN
    # No longer an annotator: the work endpoints refuse them.
    assert annotator.post(f"/api/v1/assignments/{assignment.pk}/heartbeat").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_managers_demoting_each_other_at_once_leave_one_manager():
    org = Org("race")
    second = services.member_role_change(member=org.reviewer, role=Role.MANAGER, actor=None)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(member: Member) -> None:
        try:
            barrier.wait()
            services.member_role_change(member=member, role=Role.QA_LEAD, actor=None)
            outcomes.append("changed")
        except Conflict:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=(m,)) for m in (org.manager, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["changed", "refused"]
    managers = Member.objects.filter(organization=org.organization, role=Role.MANAGER)
    assert managers.count() == 1
