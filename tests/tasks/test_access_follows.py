"""Access follows people as they change: whoever may no longer work on a project loses its leases.

Every path that ends an annotator's access (a service, the admin, plain SQL) ends their live
leases in the same transaction: the slot opens for someone else at once, the assignment ends
``revoked``, and heartbeat, release and submit answer 403 ``access_ended``.
"""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tasks.models import Annotation, Assignment, AssignmentStatus, ProjectMember, Slot, SlotState
from tasks.services.claims import assignments_expire, claim_next
from tasks.services.projects import project_members_add
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Annotator, Member, Role

pytestmark = pytest.mark.django_db

BOX = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 20, "h": 20}]}


@pytest.fixture
def project(org):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    return project


def claim(client) -> dict:
    response = client.post("/api/v1/claims/", {}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def assert_ended(assignment_id: int) -> None:
    """The lease is gone: the assignment says why, and its slot is open to others."""
    assignment = Assignment.objects.get(pk=assignment_id)
    assert assignment.status == AssignmentStatus.REVOKED
    assert assignment.ended_at is not None
    slot = Slot.objects.get(pk=assignment.slot_id)
    assert (slot.state, slot.assignment_id, slot.lease_expires_at) == (SlotState.OPEN, None, None)


def assert_taken_over(org, project, assignment_id: int) -> None:
    """Someone else claims the task at once, not after the lease's length."""
    other = org.add_annotator("acme-next")
    staff(project, other)
    token, _ = Token.objects.get_or_create(user=other.member.user)
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_X_ORGANIZATION=org.organization.slug
    )
    assert claim(client)["task"]["id"] == Assignment.objects.get(pk=assignment_id).task_id


@pytest.mark.parametrize("action", ["suspend", "offboard"])
def test_a_suspended_or_offboarded_annotator_can_neither_heartbeat_nor_submit(org, project, action):
    client = org.client(Role.ANNOTATOR)
    held = claim(client)
    services.annotator_set_status(
        annotator=org.annotator, action=action, actor=org.qa_lead.user, reason="Gold below 0.8"
    )
    assert_ended(held["id"])
    for path, body in (("heartbeat", None), ("submit", {"payload": BOX}), ("release", None)):
        response = client.post(f"/api/v1/assignments/{held['id']}/{path}", body, format="json")
        assert response.status_code == 403, (path, response.content)
        error = response.json()["error"]
        assert error["code"] == "access_ended" and "no longer" in error["message"], path
    assert not Annotation.objects.filter(assignment_id=held["id"]).exists()
    assert_taken_over(org, project, held["id"])


def test_reinstating_does_not_give_back_a_revoked_lease(org, project):
    client = org.client(Role.ANNOTATOR)
    held = claim(client)
    for action in ("suspend", "reinstate"):
        services.annotator_set_status(
            annotator=org.annotator, action=action, actor=org.qa_lead.user, reason="Review"
        )
    response = client.post(f"/api/v1/assignments/{held['id']}/heartbeat")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "access_ended")
    assert_ended(held["id"])


def test_leaving_one_project_ends_only_its_leases(org, project):
    second = make_project(org, name="second")
    import_rows(second, image_rows(1))
    staff(second, org.annotator)
    client = org.client(Role.ANNOTATOR)
    held, kept = claim(client), claim(client)
    left = project if held["project"]["id"] == project.pk else second
    # As the admin (or a bulk update) writes it: no service is called.
    ProjectMember.objects.filter(project=left, annotator=org.annotator).update(is_active=False)
    assert_ended(held["id"])
    assert Assignment.objects.get(pk=kept["id"]).status == AssignmentStatus.ACTIVE
    response = client.post(f"/api/v1/assignments/{kept['id']}/submit", {"payload": BOX})
    assert response.status_code == 201, response.content


def test_a_project_role_that_is_no_longer_annotator_ends_the_lease(org, project):
    held = claim(org.client(Role.ANNOTATOR))
    project_members_add(project=project, annotators=[org.annotator], role="reviewer", actor=None)
    assert_ended(held["id"])
    assert_taken_over(org, project, held["id"])


def test_removing_the_project_membership_row_ends_the_lease(org, project):
    held = claim(org.client(Role.ANNOTATOR))
    ProjectMember.objects.filter(project=project, annotator=org.annotator).delete()
    assert_ended(held["id"])


@pytest.mark.parametrize(
    "change",
    ["member_deactivated", "member_role", "user_deactivated", "sql_suspended"],
)
def test_every_path_that_ends_access_ends_the_lease(org, project, change):
    held = claim(org.client(Role.ANNOTATOR))
    member = org.annotator_member
    if change == "member_deactivated":
        Member.objects.filter(pk=member.pk).update(is_active=False)
    elif change == "member_role":
        Member.objects.filter(pk=member.pk).update(role=Role.REVIEWER)
    elif change == "user_deactivated":
        get_user_model().objects.filter(pk=member.user_id).update(is_active=False)
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE workforce_annotator SET status = 'suspended' WHERE id = %s",
                [org.annotator.pk],
            )
    assert_ended(held["id"])
    assert_taken_over(org, project, held["id"])


def test_changes_that_keep_access_keep_the_lease(org, project):
    client = org.client(Role.ANNOTATOR)
    held = claim(client)
    services.annotator_update(
        annotator=org.annotator, actor=org.manager.user, max_concurrent_tasks=3
    )
    Member.objects.filter(pk=org.annotator_member.pk).update(role=Role.ANNOTATOR)
    project_members_add(project=project, annotators=[org.annotator], role="annotator", actor=None)
    get_user_model().objects.filter(pk=org.annotator_member.user_id).update(
        last_login=timezone.now()
    )
    assert Assignment.objects.get(pk=held["id"]).status == AssignmentStatus.ACTIVE
    response = client.post(f"/api/v1/assignments/{held['id']}/submit", {"payload": BOX})
    assert response.status_code == 201, response.content


def test_a_lapsed_lease_nobody_took_over_ends_too(org, project):
    held = claim(org.client(Role.ANNOTATOR))
    past = timezone.now() - timedelta(seconds=1)
    Slot.objects.filter(assignment_id=held["id"]).update(lease_expires_at=past)
    Assignment.objects.filter(pk=held["id"]).update(lease_expires_at=past)
    assert assignments_expire() == 1
    services.annotator_set_status(
        annotator=org.annotator, action="suspend", actor=None, reason="Quality rule"
    )
    # Recorded as expired first, then revoked: a heartbeat cannot bring it back.
    assert_ended(held["id"])


def test_submitted_work_is_kept_when_access_ends(org, project):
    client = org.client(Role.ANNOTATOR)
    held = claim(client)
    assert client.post(f"/api/v1/assignments/{held['id']}/submit", {"payload": BOX}).status_code
    services.annotator_set_status(
        annotator=org.annotator, action="offboard", actor=None, reason="Left"
    )
    assignment = Assignment.objects.get(pk=held["id"])
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert Slot.objects.get(pk=assignment.slot_id).state == SlotState.DONE
    assert Annotator.objects.get(pk=org.annotator.pk).annotations.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_claim_in_flight_when_access_ends_loses_the_lease_it_takes(org, project):
    """The rule waits for a claim holding the annotator's row, then ends the lease it made."""
    claimed, finish = threading.Event(), threading.Event()
    held: list[int] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        try:
            with transaction.atomic():
                held.append(claim_next(annotator=org.annotator).claimed.assignment_id)
                claimed.set()
                finish.wait(10)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def remover() -> None:
        try:
            ProjectMember.objects.filter(project=project).update(is_active=False)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    claiming = threading.Thread(target=claimer)
    claiming.start()
    assert claimed.wait(10)
    removing = threading.Thread(target=remover)
    removing.start()
    removing.join(0.5)
    # The removal waits for the claim's transaction (the annotator's row), however long.
    assert removing.is_alive()
    finish.set()
    claiming.join(10)
    removing.join(10)
    assert not errors, errors
    assert_ended(held[0])


@pytest.mark.parametrize("change", ["member_deactivated", "member_role", "user_deactivated"])
def test_nobody_without_access_claims_even_past_the_api(org, project, change):
    """The claim grants by the same rule: a caller that skipped the API's checks gets nothing."""
    member = org.annotator_member
    if change == "member_deactivated":
        Member.objects.filter(pk=member.pk).update(is_active=False)
    elif change == "member_role":
        Member.objects.filter(pk=member.pk).update(role=Role.REVIEWER)
    else:
        get_user_model().objects.filter(pk=member.user_id).update(is_active=False)
    assert claim_next(annotator=org.annotator).outcome == "no_projects"
    assert not Assignment.objects.exists()
