"""The annotator's loop over REST: claim, heartbeat, release, submit; and what they may see."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import Annotation, Assignment, Slot
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce.models import Role

pytestmark = pytest.mark.django_db

BOX = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 20, "h": 20}]}
GOLD = {"boxes": [{"label": "person", "x": 111.25, "y": 222.75, "w": 3, "h": 4}]}


@pytest.fixture
def project(org):
    # Gold on at every claim that finds regular work: the first claim is the gold task.
    project = make_project(org, instructions="Box every car.", gold_rate=1.0)
    rows = image_rows(2)
    rows[0]["gold_answer"] = GOLD
    rows[0]["external_id"] = "GOLD-check-17"
    import_rows(project, rows)
    staff(project, org.annotator)
    return project


def claim(org):
    return org.client(Role.ANNOTATOR).post("/api/v1/claims/", {}, format="json")


def test_claim_returns_task_schema_instructions_and_lease(org, project):
    response = claim(org)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["project"]["instructions"] == "Box every car."
    assert body["project"]["label_schema"]["labels"][0]["name"] == "car"
    assert body["task"]["data"]["width"] == 640
    assert Assignment.objects.get(pk=body["id"]).annotator == org.annotator


def test_nothing_eligible_is_a_204_with_a_reason(org, project):
    assert claim(org).status_code == 201
    assert claim(org).status_code == 201
    response = claim(org)
    assert response.status_code == 204
    assert response.headers["X-Reason"]


def test_only_annotators_claim(org, project):
    for role in (Role.MANAGER, Role.QA_LEAD, Role.REVIEWER):
        assert org.client(role).post("/api/v1/claims/", {}).status_code == 403


def test_bad_claim_input_is_a_400(org, project):
    response = org.client(Role.ANNOTATOR).post("/api/v1/claims/", {"project": "x"}, format="json")
    assert response.status_code == 400 and "project" in response.json()["error"]["fields"]
    assert not Assignment.objects.exists()


def test_gold_never_reaches_the_annotator(org, project):
    """Invariant 2: neither the gold answer nor whether a task is gold, anywhere they look."""
    client = org.client(Role.ANNOTATOR)
    response = claim(org)
    bodies = [response.content]
    assignment_id = response.json()["id"]
    for _ in range(2):
        bodies.append(client.get(f"/api/v1/assignments/{assignment_id}/").content)
        bodies.append(client.post(f"/api/v1/assignments/{assignment_id}/heartbeat").content)
        # The next task comes with the submission, as a claim would bring it.
        response = client.post(
            f"/api/v1/assignments/{assignment_id}/submit",
            {"payload": BOX, "next": True},
            format="json",
        )
        bodies.append(response.content)
        assignment_id = (response.json()["next"]["assignment"] or {}).get("id")
    assert assignment_id is None  # both tasks done: the gold one and the other
    bodies.append(client.get("/api/v1/assignments/").content)
    bodies.append(client.get("/api/v1/annotations/").content)
    bodies.append(client.get("/api/v1/projects/").content)
    for body in bodies:
        text = body.decode()
        assert "gold" not in text.lower(), text
        assert "222.75" not in text  # a coordinate found only in the gold answer
        assert "GOLD-check-17" not in text


def test_submit_over_http_validates_and_is_idempotent(org, project):
    client = org.client(Role.ANNOTATOR)
    assignment_id = claim(org).json()["id"]
    url = f"/api/v1/assignments/{assignment_id}/submit"
    bad = client.post(
        url,
        {"payload": {"boxes": [{"label": "car", "x": 650, "y": 0, "w": 5, "h": 5}]}},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["payload.boxes[0].x"] == [
        "650 is outside the image width 640"
    ]
    assert not Annotation.objects.exists()
    assert (
        client.post(url, {"payload": BOX, "active_seconds": -3}, format="json").status_code == 400
    )
    assert client.post(url, "not json", content_type="application/json").status_code == 400
    first = client.post(url, {"payload": BOX, "active_seconds": 2}, format="json")
    assert first.status_code == 201
    again = client.post(url, {"payload": BOX, "active_seconds": 2}, format="json")
    assert again.status_code == 200 and again.json() == first.json()
    different = client.post(url, {"payload": {"boxes": []}}, format="json")
    assert different.status_code == 409
    assert Annotation.objects.count() == 1


def test_a_submit_that_asks_for_next_claims_it_in_the_same_request(org, project):
    """One request per task: the submission is stored, then the next task claimed as
    ``POST /claims/`` claims it, in the shape it answers; at the end, why there is none."""
    project.gold_rate = 0
    project.save(update_fields=["gold_rate"])
    import_rows(project, image_rows(1, start=10))  # two regular tasks in all
    client = org.client(Role.ANNOTATOR)
    first = claim(org).json()
    submitted = client.post(
        f"/api/v1/assignments/{first['id']}/submit", {"payload": BOX, "next": True}, format="json"
    )
    assert submitted.status_code == 201, submitted.content
    body = submitted.json()
    assert (body["assignment"], body["payload"]) == (first["id"], BOX)
    following = body["next"]["assignment"]
    assert (body["next"]["outcome"], body["next"]["message"]) == ("claimed", "")
    assert set(following) == set(first) and following["status"] == "active"
    assert following["project"] == first["project"]
    held = Assignment.objects.get(pk=following["id"])
    assert (held.annotator, held.status, held.task_id) == (
        org.annotator,
        "active",
        following["task"]["id"],
    )
    assert held.task_id != first["task"]["id"]
    # Without ``next``, the answer is the annotation alone.
    plain = client.post(f"/api/v1/assignments/{held.pk}/submit", {"payload": BOX}, format="json")
    assert plain.status_code == 201 and "next" not in plain.json()
    # Nothing left: the submission stands, and ``next`` says why no task came with it.
    assert claim(org).status_code == 204
    done = client.post(
        f"/api/v1/assignments/{first['id']}/submit", {"payload": BOX, "next": True}, format="json"
    )
    assert done.status_code == 200
    assert done.json()["next"] == {
        "outcome": "none_available",
        "message": "No task is available for you right now.",
        "assignment": None,
        "projects": [],
    }
    assert Annotation.objects.count() == 2


def test_a_submit_with_next_sent_again_answers_the_task_it_claimed_not_another(org, project):
    """The answer was lost and the request sent again: the submission is the one stored,
    and ``next`` is the task the first request claimed, which they still hold."""
    project.gold_rate = 0
    project.save(update_fields=["gold_rate"])
    import_rows(project, image_rows(1, start=10))  # two regular tasks in all
    client = org.client(Role.ANNOTATOR)
    url = f"/api/v1/assignments/{claim(org).json()['id']}/submit"
    first = client.post(url, {"payload": BOX, "next": True}, format="json")
    again = client.post(url, {"payload": BOX, "next": True}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["next"]["assignment"] == first.json()["next"]["assignment"]
    assert Assignment.objects.filter(annotator=org.annotator).count() == 2
    # Once that task is submitted too, sending the first again claims the next one anew:
    # nothing is held, and no task is open.
    held = first.json()["next"]["assignment"]["id"]
    client.post(f"/api/v1/assignments/{held}/submit", {"payload": BOX}, format="json")
    assert (
        client.post(url, {"payload": BOX, "next": True}, format="json").json()["next"]["outcome"]
        == "none_available"
    )


def test_a_bad_next_is_a_400_that_names_it_and_stores_nothing(org, project):
    assignment_id = claim(org).json()["id"]
    response = org.client(Role.ANNOTATOR).post(
        f"/api/v1/assignments/{assignment_id}/submit",
        {"payload": BOX, "next": "perhaps"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["next"]
    assert not Annotation.objects.exists()
    assert Assignment.objects.count() == 1


def test_submit_on_a_lease_taken_by_someone_else_is_a_409_that_says_so(org, project):
    other = org.add_annotator("other")
    staff(project, other)
    project.gold_rate = 0
    project.save(update_fields=["gold_rate"])
    assignment_id = claim(org).json()["id"]
    past = timezone.now() - timedelta(seconds=1)
    Slot.objects.filter(assignment_id=assignment_id).update(lease_expires_at=past)
    taken = Assignment.objects.get(pk=assignment_id).task_id
    # The other annotator's claim takes the lapsed slot first.
    from tasks.services.claims import claim_next

    assert claim_next(annotator=other).claimed.task_id == taken
    response = org.client(Role.ANNOTATOR).post(
        f"/api/v1/assignments/{assignment_id}/submit", {"payload": BOX}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "lease_lost"
    assert "someone else" in response.json()["error"]["message"]


def test_release_gives_the_task_back(org, project):
    client = org.client(Role.ANNOTATOR)
    project.gold_rate = 0
    project.save(update_fields=["gold_rate"])
    assignment_id = claim(org).json()["id"]
    response = client.post(f"/api/v1/assignments/{assignment_id}/release")
    assert response.json()["status"] == "released"
    # The regular task's seat is open again; the gold task has none.
    assert Slot.objects.filter(state="open").count() == 1


def test_nobody_acts_on_another_annotators_assignment(org, other_org, project):
    other = org.add_annotator("other")
    staff(project, other)
    assignment_id = claim(org).json()["id"]
    intruder = org.client(Role.ANNOTATOR)
    intruder.force_authenticate(other.member.user)
    for action in ("heartbeat", "release", "submit"):
        response = intruder.post(
            f"/api/v1/assignments/{assignment_id}/{action}", {"payload": BOX}, format="json"
        )
        assert response.status_code == 404
    assert intruder.get(f"/api/v1/assignments/{assignment_id}/").status_code == 404
    outsider = other_org.client(Role.MANAGER)
    assert outsider.get(f"/api/v1/assignments/{assignment_id}/").status_code == 404
    assert Assignment.objects.get(pk=assignment_id).status == "active"


def test_managers_see_the_projects_assignments_and_annotations(org, project):
    client = org.client(Role.ANNOTATOR)
    assignment_id = claim(org).json()["id"]
    client.post(f"/api/v1/assignments/{assignment_id}/submit", {"payload": BOX}, format="json")
    manager = org.client(Role.MANAGER)
    listed = manager.get(f"/api/v1/annotations/?project={project.pk}").json()["results"]
    assert [a["assignment"] for a in listed] == [assignment_id]
    assert json.loads(json.dumps(listed[0]["payload"])) == BOX
    assert manager.get("/api/v1/assignments/?status=submitted").json()["count"] == 1
    assert manager.get("/api/v1/annotations/?project=x").status_code == 400
    assert manager.get("/api/v1/assignments/?status=sleeping").status_code == 400


def test_assignment_and_annotation_lists_do_not_grow_in_queries(org, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks.services.claims import assignment_submit, claim_next

    import_rows(project, image_rows(10, start=100))
    manager = org.client(Role.MANAGER)

    def counts():
        found = []
        for url in ("/api/v1/assignments/", "/api/v1/annotations/"):
            with CaptureQueriesContext(connection) as queries:
                response = manager.get(url)
            assert response.status_code == 200, response.content
            found.append((len(queries), len(response.json()["results"])))
        return found

    def work(n):
        for _ in range(n):
            claimed = claim_next(annotator=org.annotator).claimed
            assignment_submit(
                assignment=Assignment.objects.get(pk=claimed.assignment_id), payload=BOX
            )

    work(1)
    baseline = counts()
    assert [rows for _, rows in baseline] == [1, 1]
    work(4)
    # Five rows on each page now, and not one more query.
    assert counts() == [(queries, 5) for queries, _ in baseline]
