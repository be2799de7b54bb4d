"""The operations staff reach for: task list and detail, cancel and delete a task, remove a
project member, archive a project, and the export's options."""

import json
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.errors import DomainError
from tasks.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ProjectMember,
    ProjectStatus,
    Slot,
    SlotState,
    Task,
)
from tasks.services.claims import assignment_release, assignment_submit, claim_next
from tasks.services.gold import task_gold_set
from tasks.services.tasks import task_cancel
from tests.helpers import Org, image_rows, import_rows, make_project, staff
from workforce.models import AuditEvent, AuditVerb, Role

BOX = {"boxes": [{"label": "car", "x": 1, "y": 1, "w": 10, "h": 10}]}


def _claim(annotator, project) -> Assignment:
    claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
    assert claimed is not None
    return Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)


def _submit(annotator, project, payload=BOX) -> Assignment:
    assignment = _claim(annotator, project)
    assignment_submit(assignment=assignment, payload=payload)
    return assignment


def _client_of(org, annotator) -> APIClient:
    token, _ = Token.objects.get_or_create(user=annotator.member.user)
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_X_ORGANIZATION=org.organization.slug
    )
    return client


def _project_with_work(org, *, overlap: int = 2, rows: int = 3, gold: bool = True):
    """Tasks img-0..: img-0 complete, img-1 started, the rest open; the last is gold if asked."""
    project = make_project(org, overlap=overlap)
    task_rows = image_rows(rows)
    if gold:
        task_rows[-1]["gold_answer"] = BOX
    import_rows(project, task_rows)
    first, second = org.annotator, org.add_annotator("second")
    staff(project, first, second)
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    # Claims prefer started tasks, so each annotator's first claim lands on img-0, then img-1.
    _submit(first, project)
    _submit(second, project)
    _claim(first, project)
    return project, tasks, first, second


# Task list and detail.


def test_task_list_shows_status_and_seats_and_filters(org):
    project, _tasks, *_ = _project_with_work(org)
    client = org.client(Role.MANAGER)
    url = f"/api/v1/projects/{project.pk}/tasks/"
    body = client.get(url).json()
    assert body["count"] == 3
    rows = {row["external_id"]: row for row in body["results"]}
    assert rows["img-0"]["status"] == "complete"
    assert rows["img-0"]["seats"] == {"waiting": 0, "open": 0, "leased": 0, "done": 2, "closed": 0}
    assert rows["img-1"]["status"] == "in_progress"
    assert rows["img-1"]["seats"]["leased"] == 1
    assert rows["img-2"] == rows["img-2"] | {"status": "open", "is_gold": True}
    assert "data" not in rows["img-0"] and "gold_answer" not in rows["img-2"]

    def ids(query: str) -> list[str]:
        return [r["external_id"] for r in client.get(f"{url}?{query}").json()["results"]]

    assert ids("status=complete") == ["img-0"]
    assert ids("status=in_progress") == ["img-1"]
    assert ids("status=open") == ["img-2"]
    assert ids("gold=true") == ["img-2"]
    assert ids("gold=false") == ["img-0", "img-1"]
    assert ids("external_id=img-1") == ["img-1"]
    refused = client.get(f"{url}?status=done")
    assert refused.status_code == 400 and "status" in refused.json()["error"]["fields"]


def test_task_list_queries_do_not_grow_with_the_page(org):
    project = make_project(org)
    import_rows(project, image_rows(60))
    client = org.client(Role.QA_LEAD)
    url = f"/api/v1/projects/{project.pk}/tasks/"
    counts = []
    for size in (2, 50):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{url}?page_size={size}")
        assert len(response.json()["results"]) == size
        counts.append(len(queries))
    # Authentication, the project and its domains, the count, the page, the page's seats.
    assert counts[0] == counts[1] == 6


def test_task_detail_shows_seats_work_and_gold_to_qa_leads_only(org):
    project, tasks, first, second = _project_with_work(org, rows=2, gold=False)
    complete, started = tasks[0], tasks[1]
    # Made gold while first holds it: its seats go, first's lease ends as a cancel ends it.
    task_gold_set(task=started, answer=BOX, actor=org.manager.user)
    url = f"/api/v1/projects/{project.pk}/tasks/{started.pk}"
    qa_client = org.client(Role.QA_LEAD)
    with CaptureQueriesContext(connection) as queries:
        qa = qa_client.get(url).json()
    # Authentication, the project and its domains, the task, its seats, its holders.
    assert len(queries) == 6
    assert qa["gold_answer"] == BOX and qa["is_gold"] is True
    assert qa["data"] == started.data
    assert qa["seats"] == []
    assert [(w["annotator"], w["status"], w["annotation"]) for w in qa["work"]] == [
        (first.pk, "revoked", None)
    ]
    manager = org.client(Role.MANAGER).get(url).json()
    assert "gold_answer" not in manager and manager["is_gold"] is True
    done = org.client(Role.MANAGER).get(f"/api/v1/projects/{project.pk}/tasks/{complete.pk}")
    work = done.json()["work"]
    assert {w["annotator"] for w in work} == {first.pk, second.pk}
    assert all(w["annotation"] and w["submitted_at"] and w["username"] for w in work)


def test_reviewers_read_tasks_of_their_projects_without_gold_and_annotators_not_at_all(org):
    project, tasks, *_ = _project_with_work(org)
    gold = tasks[-1]
    url = f"/api/v1/projects/{project.pk}/tasks/"
    annotator = org.client(Role.ANNOTATOR)
    assert annotator.get(url).status_code == 403
    assert annotator.get(f"{url}{gold.pk}").status_code == 403
    reviewer_member = org.add("rev2", Role.REVIEWER)
    reviewer = org.client(Role.REVIEWER)
    # Not on the project: not found, as any project they do not belong to.
    assert reviewer.get(url).status_code == 404
    # A reviewer, on the project as a reviewer through their working profile.
    from workforce.models import Annotator

    profile = Annotator.objects.get(member=org.reviewer)
    ProjectMember.objects.create(project=project, annotator=profile, role="reviewer")
    rows = reviewer.get(url).json()["results"]
    assert rows and all("is_gold" not in row for row in rows)
    detail = reviewer.get(f"{url}{gold.pk}").json()
    assert "is_gold" not in detail and "gold_answer" not in detail
    refused = reviewer.get(f"{url}?gold=true")
    assert refused.status_code == 400 and "gold" in refused.json()["error"]["fields"]
    assert reviewer_member.role == Role.REVIEWER


def test_other_organizations_tasks_are_not_found(org, other_org):
    project, tasks, *_ = _project_with_work(org, rows=2, gold=False)
    outsider = other_org.client(Role.MANAGER)
    base = f"/api/v1/projects/{project.pk}/tasks/"
    assert outsider.get(base).status_code == 404
    assert outsider.get(f"{base}{tasks[0].pk}").status_code == 404
    assert outsider.post(f"{base}{tasks[1].pk}/cancel").status_code == 404
    assert outsider.delete(f"{base}{tasks[1].pk}").status_code == 404
    # A task of another project of the same organization is not found under this one.
    other = make_project(org, name="other")
    assert (
        org.client(Role.MANAGER).get(f"/api/v1/projects/{other.pk}/tasks/{tasks[0].pk}").status_code
        == 404
    )
    assert Task.objects.filter(project=project, cancelled_at__isnull=True).count() == 2


# Cancel and delete.


def test_cancel_closes_seats_ends_the_lease_and_keeps_submitted_work(org):
    project = make_project(org, overlap=3)
    import_rows(project, image_rows(1))
    first, second = org.annotator, org.add_annotator("second")
    staff(project, first, second)
    submitted = _submit(first, project)
    held = _claim(second, project)
    task = held.task
    client = org.client(Role.MANAGER)
    url = f"/api/v1/projects/{project.pk}/tasks/{task.pk}/cancel"
    assert org.client(Role.QA_LEAD).post(url).status_code == 403
    response = client.post(url, {"reason": "client withdrew the image"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    states = dict(Slot.objects.filter(task=task).values_list("seat", "state"))
    assert states == {0: SlotState.DONE, 1: SlotState.CLOSED, 2: SlotState.CLOSED}
    held.refresh_from_db()
    assert held.status != AssignmentStatus.ACTIVE and held.ended_at is not None
    # Nobody is served it again, and the holder cannot go on with it.
    third = org.add_annotator("third")
    staff(project, third)
    assert claim_next(annotator=third, project_id=project.pk).claimed is None
    assert held.status == AssignmentStatus.REVOKED
    lost = _client_of(org, second).post(f"/api/v1/assignments/{held.pk}/heartbeat")
    assert lost.status_code == 403 and lost.json()["error"]["code"] == "access_ended"
    submitted.refresh_from_db()
    assert submitted.annotation.payload == BOX
    event = AuditEvent.objects.get(verb=AuditVerb.TASK_CANCELLED)
    assert event.target_id == task.pk and event.after["leases_ended"] == [held.pk]
    assert event.reason == "client withdrew the image"
    # Again: the same answer, no second event.
    assert client.post(url).json()["status"] == "cancelled"
    assert AuditEvent.objects.filter(verb=AuditVerb.TASK_CANCELLED).count() == 1


def test_a_cancelled_task_gets_no_new_seat_and_leaves_the_progress(org):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(1))
    first, second = org.annotator, org.add_annotator("second")
    staff(project, first, second)
    released = _claim(first, project)
    _submit(second, project)
    assignment_release(assignment=released)
    task = released.task
    client = org.client(Role.MANAGER)
    assert client.post(f"/api/v1/projects/{project.pk}/tasks/{task.pk}/cancel").status_code == 200
    states = dict(Slot.objects.filter(task=task).values_list("seat", "state"))
    assert states == {0: SlotState.CLOSED, 1: SlotState.DONE}
    # Raising the overlap adds seats to every task but a cancelled one.
    response = client.patch(f"/api/v1/projects/{project.pk}/", {"overlap": 3}, format="json")
    assert response.status_code == 200
    assert Slot.objects.filter(task=task).count() == 2
    progress = client.get(f"/api/v1/projects/{project.pk}/").json()["progress"]
    assert progress | {"annotations_needed": 1, "tasks_in_progress": 0} == progress
    third = org.add_annotator("third")
    staff(project, third)
    assert claim_next(annotator=third, project_id=project.pk).claimed is None


def test_a_complete_task_cannot_be_cancelled(org):
    project = make_project(org, overlap=1)
    import_rows(project, image_rows(1))
    staff(project, org.annotator)
    task = _submit(org.annotator, project).task
    response = org.client(Role.MANAGER).post(
        f"/api/v1/projects/{project.pk}/tasks/{task.pk}/cancel"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_status"
    task.refresh_from_db()
    assert task.cancelled_at is None
    assert not AuditEvent.objects.filter(verb=AuditVerb.TASK_CANCELLED).exists()


def test_cancel_refuses_a_bad_reason_and_changes_nothing(org):
    project = make_project(org)
    import_rows(project, image_rows(1))
    task = Task.objects.get(project=project)
    response = org.client(Role.MANAGER).post(
        f"/api/v1/projects/{project.pk}/tasks/{task.pk}/cancel", {"reason": ["x"]}, format="json"
    )
    assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]
    assert Task.objects.get(pk=task.pk).cancelled_at is None
    assert not Slot.objects.filter(task=task, state=SlotState.CLOSED).exists()


def test_delete_only_while_nobody_holds_or_submitted_the_task(org):
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    done = _submit(org.annotator, project).task
    held = _claim(org.annotator, project).task
    untouched = Task.objects.filter(project=project).exclude(pk__in=[done.pk, held.pk]).get()
    client = org.client(Role.MANAGER)
    base = f"/api/v1/projects/{project.pk}/tasks/"
    for task in (done, held):
        response = client.delete(f"{base}{task.pk}")
        assert response.status_code == 409 and response.json()["error"]["code"] == "in_use"
        assert Task.objects.filter(pk=task.pk).exists()
    assert org.client(Role.QA_LEAD).delete(f"{base}{untouched.pk}").status_code == 403
    assert client.delete(f"{base}{untouched.pk}").status_code == 204
    assert not Task.objects.filter(pk=untouched.pk).exists()
    assert not Slot.objects.filter(task_id=untouched.pk).exists()
    event = AuditEvent.objects.get(verb=AuditVerb.TASK_DELETED)
    assert event.target_id == untouched.pk and event.before["external_id"] == untouched.external_id
    assert client.delete(f"{base}{untouched.pk}").status_code == 404


# Removing a project member.


def test_removing_a_member_ends_their_leases_there_and_is_audited(org):
    project = make_project(org, overlap=1)
    import_rows(project, image_rows(2))
    elsewhere = make_project(org, name="elsewhere", overlap=1)
    import_rows(elsewhere, image_rows(1))
    staff(project, org.annotator)
    staff(elsewhere, org.annotator)
    held = _claim(org.annotator, project)
    kept = _claim(org.annotator, elsewhere)
    url = f"/api/v1/projects/{project.pk}/members/{org.annotator.pk}"
    assert org.client(Role.QA_LEAD).delete(url).status_code == 403
    assert org.client(Role.MANAGER).delete(url).status_code == 204
    membership = ProjectMember.objects.get(project=project, annotator=org.annotator)
    assert membership.is_active is False
    held.refresh_from_db()
    kept.refresh_from_db()
    assert held.status != AssignmentStatus.ACTIVE
    assert Slot.objects.get(pk=held.slot_id).state == SlotState.OPEN
    assert kept.status == AssignmentStatus.ACTIVE
    assert held.status == AssignmentStatus.REVOKED
    lost = org.client(Role.ANNOTATOR).post(f"/api/v1/assignments/{held.pk}/heartbeat")
    assert lost.status_code == 403 and lost.json()["error"]["code"] == "access_ended"
    assert claim_next(annotator=org.annotator, project_id=project.pk).claimed is None
    event = AuditEvent.objects.get(verb=AuditVerb.PROJECT_MEMBER_REMOVED)
    assert event.annotator_id == org.annotator.pk and event.target_id == project.pk
    # Again: nothing more to do, nothing more audited.
    assert org.client(Role.MANAGER).delete(url).status_code == 204
    assert AuditEvent.objects.filter(verb=AuditVerb.PROJECT_MEMBER_REMOVED).count() == 1


def test_removing_someone_not_on_the_project_or_of_another_organization_is_not_found(
    org, other_org
):
    project = make_project(org)
    stranger = other_org.annotator
    manager = org.client(Role.MANAGER)
    assert (
        manager.delete(f"/api/v1/projects/{project.pk}/members/{org.annotator.pk}").status_code
        == 404
    )
    assert manager.delete(f"/api/v1/projects/{project.pk}/members/{stranger.pk}").status_code == 404
    staff(project, org.annotator)
    outsider = other_org.client(Role.MANAGER)
    url = f"/api/v1/projects/{project.pk}/members/{org.annotator.pk}"
    assert outsider.delete(url).status_code == 404
    assert ProjectMember.objects.get(project=project, annotator=org.annotator).is_active


# Archiving.


def test_archive_stops_claims_ends_leases_freezes_settings_and_still_exports(org):
    project, tasks, first, _ = _project_with_work(org, rows=2, gold=False)
    held = Assignment.objects.get(project=project, status=AssignmentStatus.ACTIVE)
    client = org.client(Role.MANAGER)
    base = f"/api/v1/projects/{project.pk}"
    assert org.client(Role.QA_LEAD).post(f"{base}/archive").status_code == 403
    response = client.post(f"{base}/archive", {"reason": "delivered"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "archived"
    held.refresh_from_db()
    assert held.status == AssignmentStatus.REVOKED
    assert Slot.objects.get(pk=held.slot_id).state == SlotState.OPEN
    assert claim_next(annotator=first, project_id=project.pk).claimed is None
    refused = client.patch(base, {"name": "renamed"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "invalid_status"
    assert client.post(f"{base}/tasks/{tasks[1].pk}/cancel").status_code == 409
    row = json.dumps(image_rows(1, start=9)[0]).encode()
    upload = SimpleUploadedFile("more.jsonl", row)
    imported = client.post(f"{base}/tasks/import", {"file": upload}, format="multipart")
    assert imported.status_code == 409 and Task.objects.filter(project=project).count() == 2
    staffed = client.post(f"{base}/members", {"annotators": [first.pk]}, format="json")
    assert staffed.status_code == 409
    export = client.get(f"{base}/export?format=jsonl")
    assert export.status_code == 200
    assert [row["external_id"] for row in _lines(export)] == ["img-0"]
    event = AuditEvent.objects.get(verb=AuditVerb.PROJECT_ARCHIVED)
    assert event.before == {"status": "active"} and event.after["leases_ended"] == 1
    # Unarchived, it comes back paused: nobody claims until a manager activates it.
    assert client.post(f"{base}/unarchive").json()["status"] == "paused"
    assert AuditEvent.objects.filter(verb=AuditVerb.PROJECT_UNARCHIVED).count() == 1
    assert client.post(f"{base}/unarchive").status_code == 409
    assert Project.objects.get(pk=project.pk).name != "renamed"


def test_archived_is_not_a_status_to_patch_or_create_with(org):
    project = make_project(org)
    client = org.client(Role.MANAGER)
    response = client.patch(
        f"/api/v1/projects/{project.pk}/", {"status": "archived"}, format="json"
    )
    assert response.status_code == 400 and "status" in response.json()["error"]["fields"]
    created = client.post(
        "/api/v1/projects/", {"name": "x", "kind": "bbox", "status": "archived"}, format="json"
    )
    assert created.status_code == 400 and "status" in created.json()["error"]["fields"]
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.ACTIVE


def test_other_organizations_cannot_archive(org, other_org):
    project = make_project(org)
    assert (
        other_org.client(Role.MANAGER).post(f"/api/v1/projects/{project.pk}/archive").status_code
        == 404
    )
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.ACTIVE


def _lines(response) -> list[dict]:
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


# Export options.


def _exported_project(org):
    """img-0 complete by two annotators, img-1 started (one of two), img-2 gold, done by both."""
    project = make_project(org, overlap=2, gold_rate=1.0)
    rows = image_rows(3)
    rows[2]["gold_answer"] = BOX
    import_rows(project, rows)
    first, second = org.annotator, org.add_annotator("second")
    staff(project, first, second)
    for annotator, wanted in ((first, {"img-0", "img-1", "img-2"}), (second, {"img-0", "img-2"})):
        # Each claims every task; what it does not submit stays leased, in progress.
        while claimed := claim_next(annotator=annotator, project_id=project.pk).claimed:
            assignment = Assignment.objects.select_related("project", "task").get(
                pk=claimed.assignment_id
            )
            if assignment.task.external_id in wanted:
                assignment_submit(assignment=assignment, payload=BOX)
    return project, first, second


def test_export_rows_say_complete_and_annotators_and_leave_gold_out_by_default(org):
    project, first, second = _exported_project(org)
    url = f"/api/v1/projects/{project.pk}/export"
    client = org.client(Role.MANAGER)
    # By default only the complete tasks, which are not gold.
    complete = _lines(client.get(f"{url}?format=jsonl"))
    assert [row["external_id"] for row in complete] == ["img-0"]
    assert complete[0]["source"] == "merge"
    rows = {
        row["external_id"]: row
        for row in _lines(client.get(f"{url}?format=jsonl&include_incomplete=true"))
    }
    assert set(rows) == {"img-0", "img-1"}
    assert rows["img-0"]["complete"] is True
    assert sorted(rows["img-0"]["annotators"]) == sorted([first.pk, second.pk])
    assert rows["img-1"] == rows["img-1"] | {
        "complete": False,
        "annotators": [first.pk],
        "source": "annotation",
    }
    assert rows["img-0"]["annotation"]["boxes"][0]["label"] == "car"
    # Gold tasks have no seats to fill: ``include_gold`` alone brings them.
    gold = _lines(client.get(f"{url}?format=jsonl&include_gold=true"))
    assert [row["external_id"] for row in gold] == ["img-0", "img-2"]
    everything = _lines(client.get(f"{url}?format=jsonl&include_gold=1&include_incomplete=1"))
    assert [row["external_id"] for row in everything] == ["img-0", "img-1", "img-2"]
    # Formats without room for the facts take the same options.
    coco = json.loads(
        b"".join(
            client.get(
                f"{url}?format=coco&include_gold=true&include_incomplete=true"
            ).streaming_content
        )
    )
    assert len(coco["images"]) == 3


def test_export_options_refuse_what_is_not_a_boolean(org):
    project, *_ = _exported_project(org)
    response = org.client(Role.MANAGER).get(
        f"/api/v1/projects/{project.pk}/export?include_incomplete=maybe&include_gold=sometimes"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"include_incomplete", "include_gold"}


def test_export_command_takes_the_same_options(org, tmp_path):
    from django.core.management import call_command

    project, *_ = _exported_project(org)
    out = tmp_path / "export.jsonl"
    call_command(
        "export_tasks", project.pk, "--include-gold", "--include-incomplete", "--output", out
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["external_id"], row["complete"]) for row in rows] == [
        ("img-0", True),
        ("img-1", False),
        ("img-2", False),
    ]


def test_the_schema_documents_each_kinds_merge_rule_and_the_export_options(client):
    from tasks.exports import merge_rules
    from tasks.kinds import KINDS

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/projects/{id}/export/"]["get"]
    rules = merge_rules()
    assert set(rules) == set(KINDS)
    for kind, rule in rules.items():
        assert f"`{kind}`: {rule}" in operation["description"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["include_incomplete"]["schema"] == {"type": "boolean", "default": False}
    assert parameters["include_gold"]["schema"] == {"type": "boolean", "default": False}


@pytest.mark.django_db(transaction=True)
def test_a_cancel_racing_the_last_submit_keeps_the_work_or_refuses_it_never_both():
    """Either the submit lands first (the task is complete, the cancel a 409) or the cancel
    does (the submit is refused, nothing stored): never a cancelled task that lost work."""
    org = Org("race")
    project = make_project(org, overlap=1)
    import_rows(project, image_rows(6))
    staff(project, org.annotator)
    for _ in range(6):
        assignment = _claim(org.annotator, project)
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}

        def submit(assignment=assignment, barrier=barrier, results=results):
            try:
                barrier.wait()
                assignment_submit(assignment=assignment, payload=BOX)
                results["submit"] = "stored"
            except DomainError as exc:
                results["submit"] = exc.code
            finally:
                connection.close()

        def cancel(assignment=assignment, barrier=barrier, results=results):
            task = Task.objects.select_related("project__organization").get(pk=assignment.task_id)
            try:
                barrier.wait()
                task_cancel(task=task, actor=None)
                results["cancel"] = "cancelled"
            except DomainError as exc:
                results["cancel"] = exc.code
            finally:
                connection.close()

        threads = [threading.Thread(target=submit), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        task = Task.objects.get(pk=assignment.task_id)
        stored = Annotation.objects.filter(assignment=assignment).exists()
        if stored:
            assert results == {"submit": "stored", "cancel": "invalid_status"}
            assert task.completed_at is not None and task.cancelled_at is None
        else:
            assert results == {"submit": "access_ended", "cancel": "cancelled"}
            assert task.cancelled_at is not None
            assert set(Slot.objects.filter(task=task).values_list("state", flat=True)) == {
                SlotState.CLOSED
            }
