"""Claiming by expertise: every eligibility rule both ways, every ordering rule, leases, submit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import Conflict, PermissionDenied, ValidationFailed
from tasks import events
from tasks.models import Annotation, Assignment, AssignmentStatus, Slot, SlotState, Task
from tasks.services.claims import (
    ClaimOutcome,
    assignment_heartbeat,
    assignment_release,
    assignment_submit,
    assignments_expire,
    claim_after_submit,
    claim_next,
)
from tasks.services.projects import project_members_add, project_update
from tasks.services.tasks import assignment_rework
from tasks.staffing import staffing_rank
from tests.helpers import image_rows, import_rows, make_project, nested_plans, plans_of, staff
from workforce import services

pytestmark = pytest.mark.django_db


BOX = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 20, "h": 20}]}


def claim(annotator, project=None):
    claimed = claim_next(annotator=annotator, project_id=project.pk if project else None).claimed
    return Assignment.objects.get(pk=claimed.assignment_id) if claimed else None


@pytest.fixture
def project(org):
    project = make_project(org, required_skill_level=3)
    import_rows(project, image_rows(5))
    staff(project, org.annotator)
    return project


def expire(assignment):
    past = timezone.now() - timedelta(seconds=1)
    Slot.objects.filter(assignment=assignment).update(lease_expires_at=past)
    Assignment.objects.filter(pk=assignment.pk).update(lease_expires_at=past)


# Eligibility, both ways ---------------------------------------------------------------------


def test_qualified_member_gets_a_task(org, project):
    assignment = claim(org.annotator)
    assert assignment is not None and assignment.project_id == project.pk
    slot = Slot.objects.get(assignment=assignment)
    assert slot.state == SlotState.LEASED
    assert assignment.lease_expires_at > timezone.now() + timedelta(
        seconds=project.lease_seconds - 5
    )


def test_suspended_annotator_cannot_claim(org, project):
    services.annotator_set_status(annotator=org.annotator, action="suspend", actor=None, reason="x")
    with pytest.raises(PermissionDenied):
        claim(org.annotator)
    services.annotator_set_status(
        annotator=org.annotator, action="reinstate", actor=None, reason="y"
    )
    assert claim(org.annotator) is not None


def test_a_submit_asking_for_next_learns_that_its_annotator_was_suspended_meanwhile(org, project):
    """Suspended between the submission and the claim after it: the submission stands, and
    the claim's refusal is told as an outcome, not raised over it."""
    services.annotator_set_status(annotator=org.annotator, action="suspend", actor=None, reason="x")
    result = claim_after_submit(annotator=org.annotator, submitted_now=True)
    assert (result.outcome, result.claimed) == (ClaimOutcome.NOT_ACTIVE, None)
    assert result.message == "Your annotator account is suspended."
    assert not Assignment.objects.exists()


def test_non_member_and_inactive_member_get_nothing(org, project):
    outsider = org.add_annotator("outsider")
    services.annotator_skill_set(
        annotator=outsider, skill="bbox", level=5, source="manual", actor=None
    )
    assert claim(outsider) is None
    project.members.filter(annotator=org.annotator).update(is_active=False)
    assert claim(org.annotator) is None
    project.members.filter(annotator=org.annotator).update(is_active=True)
    assert claim(org.annotator) is not None


def test_inactive_project_gives_nothing(org, project):
    project_update(project=project, actor=None, status="paused")
    assert claim(org.annotator) is None
    project_update(project=project, actor=None, status="active")
    assert claim(org.annotator) is not None


def test_skill_level_below_requirement_gives_nothing(org, project):
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=2, source="manual", actor=None
    )
    assert claim(org.annotator) is None
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=3, source="manual", actor=None
    )
    assert claim(org.annotator) is not None


def test_skill_in_another_kind_does_not_count(org):
    project = make_project(org, required_skill_level=1)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=0, source="manual", actor=None
    )
    services.annotator_skill_set(
        annotator=org.annotator, skill="polygon", level=5, source="manual", actor=None
    )
    assert claim(org.annotator) is None


def test_required_certifications_must_all_be_in_force(org, project):
    med = services.domain_create(
        organization=org.organization, slug="med", name="Med", description="", actor=None
    )
    legal = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    project_update(project=project, actor=None, required_domains=["med", "legal"])
    assert claim(org.annotator) is None
    soon = timezone.now() + timedelta(days=5)
    cert = services.certification_issue(
        annotator=org.annotator, domain=med, issued_by=None, evidence="e", expires_at=soon
    )
    assert claim(org.annotator) is None  # legal still missing
    legal_cert = services.certification_issue(
        annotator=org.annotator, domain=legal, issued_by=None, evidence="e", expires_at=soon
    )
    first = claim(org.annotator)
    assert first is not None
    services.certification_set_status(certification=cert, action="suspend", actor=None, reason="r")
    assert claim(org.annotator) is None
    services.certification_set_status(
        certification=cert, action="reinstate", actor=None, reason="r"
    )
    assert claim(org.annotator) is not None
    # Past its expiry a certification no longer counts, though the beat job has not run.
    type(legal_cert).objects.filter(pk=legal_cert.pk).update(
        issued_at=timezone.now() - timedelta(days=9),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert claim(org.annotator) is None


def test_project_concurrency_limit(org, project):
    project_update(project=project, actor=None, max_concurrent_tasks=2)
    first, second = claim(org.annotator), claim(org.annotator)
    assert first and second
    assert claim(org.annotator) is None
    assignment_submit(assignment=first, payload=BOX)
    assert claim(org.annotator) is not None


def test_annotator_concurrency_limit_across_projects(org, project):
    other = make_project(org, name="other")
    import_rows(other, image_rows(5))
    staff(other, org.annotator)
    services.annotator_update(annotator=org.annotator, actor=None, max_concurrent_tasks=3)
    got = [claim(org.annotator) for _ in range(4)]
    assert [a is not None for a in got] == [True, True, True, False]
    # A lapsed lease no longer counts against the limit.
    expire(got[0])
    assert claim(org.annotator) is not None


@pytest.mark.parametrize("limit", ["annotator", "project"])
def test_work_back_for_rework_is_a_held_lease_under_both_limits(org, project, limit):
    """A rework lease (``assignment_rework``) is a held assignment: the claim counts it against
    the annotator's limit and the project's, and staffing shows it as load."""
    if limit == "annotator":
        services.annotator_update(annotator=org.annotator, actor=None, max_concurrent_tasks=2)
    else:
        project_update(project=project, actor=None, max_concurrent_tasks=2)
    first, second = claim(org.annotator), claim(org.annotator)
    assignment_submit(assignment=first, payload=BOX)
    assignment_submit(assignment=second, payload=BOX)
    assignment_rework(assignment_id=first.pk)
    # One lease held, back for rework: room for one more, not two.
    assert claim(org.annotator) is not None
    assert claim_next(annotator=org.annotator).outcome == ClaimOutcome.AT_LIMIT
    project.refresh_from_db()
    [row] = [r for r in staffing_rank(project=project, now=timezone.now())
             if r["annotator"] == org.annotator.pk]  # fmt: skip
    assert (row["load"]["live_tasks"], row["load"]["live_tasks_here"]) == (2, 2)
    assert row["load"]["has_room"] is False
    # Once its lease lapses the rework no longer counts, as any lease.
    expire(first)
    assert claim(org.annotator) is not None


def test_never_the_same_task_twice_even_after_release(org):
    project = make_project(org)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    assignment = claim(org.annotator)
    assignment_release(assignment=assignment)
    assert claim(org.annotator) is None
    other = org.add_annotator("other")
    staff(project, other)
    assert claim(other).task_id == assignment.task_id


def test_overlap_counts_live_leases_and_submitted_work(org):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(1))
    a, b, c = org.annotator, org.add_annotator("b"), org.add_annotator("c")
    staff(project, a, b, c)
    first = claim(a)
    second = claim(b)
    assert first.task_id == second.task_id
    assert claim(c) is None  # two live leases fill overlap 2
    assignment_submit(assignment=first, payload=BOX)
    assert claim(c) is None  # one submitted and one live still fill it
    expire(second)
    third = claim(c)  # the lapsed lease is claimable without any sweeper
    assert third.task_id == first.task_id


# Ordering ---------------------------------------------------------------------------------


def test_order_project_priority_then_deadline(org):
    a = org.annotator
    low = make_project(org, name="low", priority=1)
    late = make_project(org, name="late", priority=5, deadline=timezone.now() + timedelta(days=9))
    soon = make_project(org, name="soon", priority=5, deadline=timezone.now() + timedelta(days=1))
    undated = make_project(org, name="undated", priority=5)
    for p in (low, late, soon, undated):
        import_rows(p, image_rows(1))
        staff(p, a)
    order = [claim(a).project_id for _ in range(4)]
    assert order == [soon.pk, late.pk, undated.pk, low.pk]


def test_order_started_tasks_first_then_task_priority_then_age(org):
    project = make_project(org, overlap=2)
    rows = image_rows(4)
    rows[2]["priority"] = 9
    import_rows(project, rows)
    a, b = org.annotator, org.add_annotator("b")
    staff(project, a, b)
    ids = dict(Task.objects.filter(project=project).values_list("external_id", "id"))
    assert claim(a).task_id == ids["img-2"]  # highest task priority
    assert claim(b).task_id == ids["img-2"]  # started by a: finish its overlap first
    assert claim(b).task_id == ids["img-0"]  # then oldest
    assert claim(a).task_id == ids["img-0"]  # b started it
    assert claim(a).task_id == ids["img-1"]


def test_claim_in_a_named_project_only(org, project):
    other = make_project(org, name="other", priority=100)
    import_rows(other, image_rows(2))
    staff(other, org.annotator)
    assert claim(org.annotator, project).project_id == project.pk
    assert claim(org.annotator).project_id == other.pk


# Leases and submit --------------------------------------------------------------------------


def test_heartbeat_extends_and_a_lost_lease_is_a_409(org):
    project = make_project(org)
    import_rows(project, image_rows(1))
    b = org.add_annotator("b")
    staff(project, org.annotator, b)
    mine = claim(org.annotator)
    # Let the lease run down to a few seconds, so that an extension shows.
    soon = timezone.now() + timedelta(seconds=5)
    Slot.objects.filter(assignment=mine).update(lease_expires_at=soon)
    Assignment.objects.filter(pk=mine.pk).update(lease_expires_at=soon)
    extended = assignment_heartbeat(assignment=mine).lease_expires_at
    assert extended > timezone.now() + timedelta(seconds=project.lease_seconds - 5)
    assert Slot.objects.get(assignment=mine).lease_expires_at == extended
    expire(mine)
    # Lapsed but nobody took it: the holder may still heartbeat and submit.
    assignment_heartbeat(assignment=mine)
    expire(mine)
    theirs = claim(b)
    assert theirs.task_id == mine.task_id
    with pytest.raises(Conflict) as error:
        assignment_heartbeat(assignment=mine)
    assert error.value.code == "lease_lost"
    with pytest.raises(Conflict):
        assignment_submit(assignment=mine, payload=BOX)
    assert not Annotation.objects.filter(assignment=mine).exists()
    annotation, created = assignment_submit(assignment=theirs, payload=BOX)
    assert created and annotation.annotator_id == b.pk


def test_submit_stores_once_and_repeats_the_same_answer(
    org, project, django_capture_on_commit_callbacks, monkeypatch
):
    seen = []
    monkeypatch.setitem(
        events._handlers, events.ANNOTATION_SUBMITTED, [lambda **kw: seen.append(kw)]
    )
    assignment = claim(org.annotator)
    with django_capture_on_commit_callbacks(execute=True):
        first, created = assignment_submit(assignment=assignment, payload=BOX, active_seconds=3)
    assert created
    with django_capture_on_commit_callbacks(execute=True):
        again, created_again = assignment_submit(
            assignment=assignment, payload=BOX, active_seconds=3
        )
    assert not created_again and again.pk == first.pk
    assert Annotation.objects.filter(assignment=assignment).count() == 1
    # A fresh submission of a regular task, no review layers: its statement wrote its records,
    # nothing is left for a transaction, and the event is not published.
    assert seen == []
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert first.active_seconds == 3 and first.duration_seconds >= 0
    with pytest.raises(Conflict):
        assignment_submit(assignment=assignment, payload={"boxes": []})
    task = Task.objects.get(pk=assignment.task_id)
    assert task.completed_at is not None  # overlap 1 reached


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"boxes": [{"label": "car", "x": 650, "y": 0, "w": 5, "h": 5}]}, "payload.boxes[0].x"),
        ({"boxes": [{"label": "cat", "x": 1, "y": 1, "w": 5, "h": 5}]}, "payload.boxes[0].label"),
        ({"boxes": [{"label": "car", "x": 1, "y": 1, "w": 0, "h": 5}]}, "payload.boxes[0].w"),
        ({"shapes": []}, "payload"),
    ],
)
def test_invalid_payload_names_the_path_and_stores_nothing(org, project, payload, path):
    assignment = claim(org.annotator)
    with pytest.raises(ValidationFailed) as error:
        assignment_submit(assignment=assignment, payload=payload)
    assert any(key.startswith(path) for key in error.value.fields), error.value.fields
    assert not Annotation.objects.exists()
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.ACTIVE


def test_submit_after_release_is_refused(org, project):
    assignment = claim(org.annotator)
    assignment_release(assignment=assignment)
    with pytest.raises(Conflict):
        assignment_submit(assignment=assignment, payload=BOX)


def test_taking_over_a_lapsed_lease_ends_the_holders_assignment(org, project):
    """The claim records the takeover at once; the expiry job has nothing left to record."""
    first = claim(org.annotator)
    expire(first)
    other = org.add_annotator("b")
    staff(project, other)
    second = claim(other)
    assert second.task_id == first.task_id
    first.refresh_from_db()
    assert first.status == AssignmentStatus.EXPIRED
    assert second.status == AssignmentStatus.ACTIVE
    assert assignments_expire() == 0
    with pytest.raises(Conflict):
        assignment_submit(assignment=first, payload=BOX)


def test_expiry_job_leaves_live_and_ended_leases_alone(org, project):
    live, released, submitted = claim(org.annotator), claim(org.annotator), claim(org.annotator)
    assignment_release(assignment=released)
    assignment_submit(assignment=submitted, payload=BOX)
    expire(released)
    expire(submitted)
    assert assignments_expire() == 0
    statuses = dict(Assignment.objects.values_list("pk", "status"))
    assert statuses == {
        live.pk: AssignmentStatus.ACTIVE,
        released.pk: AssignmentStatus.RELEASED,
        submitted.pk: AssignmentStatus.SUBMITTED,
    }


def test_expiry_job_marks_lapsed_assignments_and_holder_can_still_submit(org, project):
    assignment = claim(org.annotator)
    expire(assignment)
    assert assignments_expire() == 1
    assert assignments_expire() == 0
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.EXPIRED
    annotation, created = assignment_submit(assignment=assignment, payload=BOX)
    assert created and annotation.assignment_id == assignment.pk


# What an annotator without work learns ------------------------------------------------------


def test_level_zero_needs_no_skill_row_for_the_claim_or_for_staffing(org):
    project = make_project(
        org, kind="classification", schema={"labels": [{"name": "ok"}, {"name": "spam"}]}
    )
    import_rows(project, [{"external_id": "t1", "data": {"text": "hello"}}])
    newcomer = org.add_annotator("newcomer")
    project_members_add(project=project, annotators=[newcomer], role="annotator", actor=None)
    assert not newcomer.skills.exists()
    row = next(
        r
        for r in staffing_rank(project=project, now=timezone.now())
        if r["annotator"] == newcomer.pk
    )
    assert row["qualified"] and row["reasons"] == [] and row["skill_level"] is None
    assert claim(newcomer) is not None


def test_not_qualified_says_why_for_each_project(org, project):
    other = make_project(org, name="other", required_skill_level=5)
    staff(other, org.annotator, skill_level=1)
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=1, source="manual", actor=None
    )
    result = claim_next(annotator=org.annotator)
    assert result.claimed is None and result.outcome == ClaimOutcome.NOT_QUALIFIED
    assert [(p["project"], p["reasons"]) for p in result.projects] == [
        (project.pk, ["skill bbox level 1 < 3"]),
        (other.pk, ["skill bbox level 1 < 5"]),
    ]
    assert not Assignment.objects.exists()


def test_at_limit_and_none_available_are_told_apart(org, project):
    project_update(project=project, actor=None, max_concurrent_tasks=1)
    assert claim(org.annotator) is not None
    assert claim_next(annotator=org.annotator).outcome == ClaimOutcome.AT_LIMIT
    quiet = make_project(org, name="quiet")
    staff(quiet, org.annotator)
    # A project they may work in with nothing open outranks the limit elsewhere.
    assert claim_next(annotator=org.annotator).outcome == ClaimOutcome.NONE_AVAILABLE


def test_no_projects_when_not_an_active_annotator_member(org, project):
    loner = org.add_annotator("loner")
    assert claim_next(annotator=loner).outcome == ClaimOutcome.NO_PROJECTS
    project_members_add(project=project, annotators=[loner], role="reviewer", actor=None)
    assert claim_next(annotator=loner).outcome == ClaimOutcome.NO_PROJECTS


# Lease state --------------------------------------------------------------------------------


def test_heartbeat_and_release_after_submit_say_it_was_submitted(org, project):
    assignment = claim(org.annotator)
    assignment_submit(assignment=assignment, payload=BOX)
    for action in (assignment_heartbeat, assignment_release):
        with pytest.raises(Conflict) as error:
            action(assignment=assignment)
        assert error.value.code == "already_submitted"
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED


def test_expired_assignments_record_when_the_lease_ended(org, project):
    lapsed, taken_over = claim(org.annotator), claim(org.annotator)
    expire(lapsed)
    expire(taken_over)
    assert assignments_expire() == 2
    lapsed.refresh_from_db()
    assert lapsed.status == AssignmentStatus.EXPIRED
    assert lapsed.ended_at == lapsed.lease_expires_at
    # The holder heartbeats a lapsed lease nobody took: it is theirs again, not ended.
    revived = assignment_heartbeat(assignment=lapsed)
    assert revived.status == AssignmentStatus.ACTIVE and revived.ended_at is None
    other = org.add_annotator("b")
    staff(project, other)
    expire(taken_over)
    Assignment.objects.filter(pk=taken_over.pk).update(status=AssignmentStatus.ACTIVE)
    assert claim(other).task_id == taken_over.task_id
    taken_over.refresh_from_db()
    assert taken_over.status == AssignmentStatus.EXPIRED
    assert taken_over.ended_at == taken_over.lease_expires_at


def test_an_annotator_far_ahead_gets_fresh_work_then_any_open_seat(org):
    """Past the first 64 open slots, a fresh task; past the fresh tasks, any open seat."""
    project = make_project(org, overlap=2, max_concurrent_tasks=1000)
    import_rows(project, image_rows(80))
    ahead = org.add_annotator("ahead", max_concurrent_tasks=1000)
    behind = org.add_annotator("behind", max_concurrent_tasks=1000)
    staff(project, ahead, behind)
    done = [claim(ahead) for _ in range(70)]
    for assignment in done:
        assignment_submit(assignment=assignment, payload=BOX)
    # 70 started tasks wait for a second seat, all of them ahead's own: the next is fresh.
    fresh = claim(ahead).task_id
    assert fresh not in {a.task_id for a in done}
    # Everybody else takes the started tasks first.
    assert claim(behind).task_id == done[0].task_id
    later = [fresh]
    while (assignment := claim(ahead)) is not None:
        assert assignment.task_id not in {a.task_id for a in done}
        later.append(assignment.task_id)
    assert len(later) == 10  # every fresh task
    # Only seats of ahead's own tasks are left, and behind finds every one, past the window.
    taken = []
    while (assignment := claim(behind)) is not None:
        taken.append(assignment.task_id)
    assert sorted(taken) == sorted([a.task_id for a in done[1:]] + later)
    assert not Slot.objects.filter(project=project, state=SlotState.OPEN).exists()


def test_a_claim_tests_each_slot_against_the_annotators_own_tasks_by_one_probe(org):
    """Released tasks stay ahead in the queue; passing them costs one index probe each, not a
    read of all the annotator's assignments per slot (which made claims quadratic in what the
    annotator had skipped, on statistics that lag, as a fresh database's do)."""
    project = make_project(org)
    import_rows(project, image_rows(80))
    staff(project, org.annotator)
    released = [assignment_release(assignment=claim(org.annotator)).task_id for _ in range(70)]
    with nested_plans() as plans:
        assignment = claim(org.annotator)
    assert assignment.task_id not in released
    slot_searches = plans_of(
        plans, "FROM tasks_slot s", "NOT EXISTS (SELECT 1 FROM tasks_assignment"
    )
    assert slot_searches  # the queries that passed the released slots
    for plan in slot_searches:
        assert "Anti Join" not in plan
        assert "SubPlan" in plan
        assert "assignment_once_per_task on tasks_assignment" in plan
        assert "assignment_annotator_idx" not in plan
