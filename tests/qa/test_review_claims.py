"""The review queue: claim order, leases, lapse, heartbeat and release; invariant 3 by the query
and by the database, after role changes and under concurrent claims; access that ends; the
organization boundary; and what QA leads read of the queues."""

import threading
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qa.models import Review, ReviewItem, Verdict
from qa.reviews import ReviewClaimOutcome, review_claim
from tasks.models import Project
from tasks.services.gold import annotation_promote
from tasks.services.projects import project_member_remove, project_members_add
from tests.helpers import Org, nested_plans, plans_of
from tests.qa.review_helpers import (
    PAYLOAD,
    annotator_on,
    client_of,
    item_of,
    judged,
    layer,
    review_project,
    reviewer_on,
    set_policy,
    submit_all,
)
from workforce.models import Annotator, Member, Role
from workforce.services import annotator_set_status, domain_create, member_role_change

pytestmark = pytest.mark.django_db

CLAIM = "/api/v1/reviews/claim"


def claim(client, **body):
    return client.post(CLAIM, body, format="json")


def lapse(item_id: int) -> None:
    past = timezone.now() - timedelta(seconds=1)
    ReviewItem.objects.filter(pk=item_id).update(lease_expires_at=past)


@pytest.fixture
def queue(org):
    """A project whose one layer samples everything, three annotations waiting, and reviewers
    Rita and Bob on it."""
    project = review_project(org, tasks=10, instructions="Check every car.")
    set_policy(org, project, [layer("Peer review")], [{"code": "loose-box", "description": "Big"}])
    ann = annotator_on(org, project, "ann")
    annotations = submit_all(ann, project, 3)
    rita = reviewer_on(org, project, "rita")
    bob = reviewer_on(org, project, "bob")
    return project, ann, annotations, rita, bob


def test_a_claim_leases_the_oldest_waiting_item_with_what_judging_it_needs(queue):
    project, _ann, annotations, rita, _ = queue

    response = claim(client_of(rita))

    assert response.status_code == 201, response.content
    body = response.json()
    first = item_of(annotations[0])
    assert body["id"] == first.pk and body["state"] == "leased"
    assert body["layer"] == {"position": 1, "name": "Peer review"}
    assert body["project"] == {
        "id": project.pk,
        "name": project.name,
        "kind": "bbox",
        "instructions": "Check every car.",
        "label_schema": project.label_schema,
        "error_tags": [{"code": "loose-box", "description": "Big"}],
    }
    assert body["task"] == {"id": annotations[0].task_id, "data": annotations[0].task.data}
    assert body["annotation"] == {"id": annotations[0].pk, "version": 1, "payload": PAYLOAD}
    held = datetime.fromisoformat(body["lease_expires_at"]) - datetime.fromisoformat(
        body["leased_at"]
    )
    assert held == timedelta(seconds=project.lease_seconds)
    # The work is judged, not its author; nothing tells gold.
    text = response.content.decode().lower()
    assert "author" not in text and "annotator" not in text and "gold" not in text
    first.refresh_from_db()
    assert (first.state, first.reviewer_id) == ("leased", rita.pk)

    assert claim(client_of(rita)).json()["id"] == item_of(annotations[1]).pk


def test_nothing_waiting_answers_204_and_the_other_outcomes_say_why(org, queue):
    project, _, annotations, rita, bob = queue
    for _ in annotations:
        assert claim(client_of(rita)).status_code == 201
    response = claim(client_of(bob))
    assert response.status_code == 204
    assert response["X-Reason"] == "Nothing is waiting for your review right now."

    # A reviewer on no project reviews nowhere.
    loner = org.add("loner", Role.REVIEWER)
    body = claim(client_of(loner)).json()
    assert body["outcome"] == "no_layers" and body["layers"] == []

    # A layer asking for a level and a certification they lack: both named.
    domain = domain_create(
        organization=org.organization, slug="streets", name="Streets", description="", actor=None
    )
    set_policy(
        org, project, [layer("Peer review", min_skill_level=2, required_domains=[domain.slug])]
    )
    body = claim(client_of(bob)).json()
    assert body["outcome"] == "not_qualified"
    assert body["layers"] == [
        {
            "project": project.pk,
            "layer": 1,
            "name": "Peer review",
            "reasons": ["skill bbox no level < 2", "no certification in streets"],
        }
    ]


def test_work_on_a_task_made_gold_since_is_never_handed_to_a_reviewer(org, queue):
    """Gold counts toward nothing, and its answer may be the very payload under review."""
    _, _, annotations, rita, _ = queue
    annotation_promote(annotation=annotations[0], actor=org.qa_lead.user, reason="Clear case")
    assert claim(client_of(rita)).json()["id"] == item_of(annotations[1]).pk
    assert claim(client_of(rita)).json()["id"] == item_of(annotations[2]).pk
    assert claim(client_of(rita)).status_code == 204


def test_a_reviewer_holds_at_most_the_projects_limit_of_reviews(org, queue):
    project, _, _, rita, _ = queue
    Project.objects.filter(pk=project.pk).update(max_concurrent_tasks=2)
    assert claim(client_of(rita)).status_code == 201
    assert claim(client_of(rita)).status_code == 201
    body = claim(client_of(rita)).json()
    assert body["outcome"] == "at_limit"
    assert body["message"] == "You hold as many reviews as you may at once."


def test_a_lapsed_lease_goes_first_to_the_next_claimer_and_its_holder_loses_it(org, queue):
    project, _, annotations, rita, bob = queue
    first = claim(client_of(rita)).json()["id"]
    assert claim(client_of(bob)).json()["id"] == item_of(annotations[1]).pk
    lapse(first)
    carl = reviewer_on(org, project, "carl")

    assert claim(client_of(carl)).json()["id"] == first

    response = client_of(rita).post(f"/api/v1/reviews/{first}/heartbeat")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "lease_lost"
    assert ReviewItem.objects.get(pk=first).reviewer_id == carl.pk


def test_a_lapsed_lease_nobody_took_is_its_holders_again_on_a_heartbeat(queue):
    _, _, _, rita, _ = queue
    item = claim(client_of(rita)).json()["id"]
    lapse(item)
    response = client_of(rita).post(f"/api/v1/reviews/{item}/heartbeat")
    assert response.status_code == 200
    assert ReviewItem.objects.get(pk=item).lease_expires_at > timezone.now()


def test_heartbeat_extends_and_a_released_item_goes_to_others_never_back(queue):
    _, _, annotations, rita, bob = queue
    client = client_of(rita)
    first = claim(client).json()
    expires = ReviewItem.objects.get(pk=first["id"]).lease_expires_at

    response = client.post(f"/api/v1/reviews/{first['id']}/heartbeat")
    assert response.status_code == 200
    assert ReviewItem.objects.get(pk=first["id"]).lease_expires_at > expires

    released = client.post(f"/api/v1/reviews/{first['id']}/release")
    assert released.status_code == 200 and released.json()["state"] == "open"
    item = ReviewItem.objects.get(pk=first["id"])
    assert (item.state, item.reviewer_id, item.released_by) == ("open", None, [rita.pk])
    # Again: the same answer, nothing else changes.
    assert client.post(f"/api/v1/reviews/{first['id']}/release").json() == released.json()
    response = client.post(f"/api/v1/reviews/{first['id']}/heartbeat")
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_released"

    # Never offered to Rita again; Bob gets it first, as the oldest waiting.
    assert claim(client).json()["id"] == item_of(annotations[1]).pk
    assert claim(client_of(bob)).json()["id"] == first["id"]


def test_someone_elses_lease_cannot_be_extended_or_released(queue):
    _, _, _, rita, bob = queue
    item = claim(client_of(rita)).json()["id"]
    for action in ("heartbeat", "release"):
        response = client_of(bob).post(f"/api/v1/reviews/{item}/{action}")
        assert response.status_code == 409 and response.json()["error"]["code"] == "lease_lost"
    assert ReviewItem.objects.get(pk=item).reviewer_id == rita.pk


def test_claims_choose_by_project_and_layer_position(org, queue):
    project, _ann, annotations, rita, _ = queue
    other = review_project(org, tasks=3, priority=5, layers=[layer("A"), layer("B")])
    staff_ann = annotator_on(org, other, "ann2")
    (elsewhere,) = submit_all(staff_ann, other, 1)
    project_members_add(
        project=other, annotators=[Annotator.objects.get(member=rita)], role="reviewer", actor=None
    )
    client = client_of(rita)

    # Asked for the first project, the first project's item, though the other comes first.
    assert claim(client, project=project.pk).json()["id"] == item_of(annotations[0]).pk
    assert claim(client, project=other.pk, layer=2).status_code == 204
    assert claim(client, layer=1).json()["id"] == item_of(elsewhere).pk
    assert claim(client, project=987654321).status_code == 404
    response = claim(client, layer=11)
    assert response.status_code == 400 and "layer" in response.json()["error"]["fields"]


def test_an_annotator_who_became_a_reviewer_never_receives_their_own_work(org, queue):
    project, ann, annotations, _, _ = queue
    bob_ann = annotator_on(org, project, "other-ann")
    theirs = submit_all(bob_ann, project, 2)
    member_role_change(member=ann.member, role=Role.REVIEWER, actor=None)
    project_members_add(project=project, annotators=[ann], role="reviewer", actor=None)
    client = client_of(Member.objects.get(pk=ann.member_id))

    got = [claim(client).json()["id"] for _ in range(2)]

    assert got == [item_of(a).pk for a in theirs]
    assert claim(client).status_code == 204
    assert all(item_of(a).state == "open" for a in annotations)


def test_the_database_refuses_a_reviewer_set_to_the_author(queue):
    _, ann, annotations, _, _ = queue
    item = item_of(annotations[0])
    with (
        pytest.raises(IntegrityError, match="review_item_not_self"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE qa_reviewitem SET reviewer_id = author_member_id, state = 'leased', "
            "lease_expires_at = now() WHERE id = %s",
            [item.pk],
        )
    with pytest.raises(IntegrityError, match="review_not_self"), transaction.atomic():
        Review.objects.create(
            item=item,
            annotation_id=item.annotation_id,
            version=1,
            layer_id=item.layer_id,
            project_id=item.project_id,
            author_member_id=ann.member_id,
            reviewer_id=ann.member_id,
            verdict=Verdict.ACCEPT,
            score=1,
            created_at=timezone.now(),
        )


def test_an_annotation_judged_at_one_layer_never_reaches_its_judge_at_another(org):
    project = review_project(org, tasks=3, layers=[layer("One"), layer("Two")])
    ann = annotator_on(org, project, "ann")
    (annotation,) = submit_all(ann, project, 1)
    rita = reviewer_on(org, project, "rita")
    bob = reviewer_on(org, project, "bob")
    first = review_claim(member=rita).claimed
    judged(ReviewItem.objects.get(pk=first.item_id), rita)
    second = item_of(annotation, 2)
    assert second.state == "open"

    # By the query: Rita is offered nothing; Bob gets it.
    assert review_claim(member=rita).outcome == ReviewClaimOutcome.NONE_AVAILABLE
    # By the database, when the query is bypassed: her holding it.
    with (
        pytest.raises(IntegrityError, match="review_item_one_layer_per_reviewer"),
        transaction.atomic(),
    ):
        ReviewItem.objects.filter(pk=second.pk).update(
            state="leased", reviewer=rita, lease_expires_at=timezone.now()
        )
    assert review_claim(member=bob).claimed.item_id == second.pk


def test_a_review_claim_tests_each_item_against_the_reviewers_judgements_by_one_probe(org):
    """Items a reviewer judged at the first layer wait at the second; passing them costs one
    index probe each for her judgements and for gold, whatever the statistics say (as an
    anti-join, the gold test read every gold task of every project for each item passed)."""
    project = review_project(org, tasks=12, layers=[layer("One"), layer("Two")])
    ann = annotator_on(org, project, "ann")
    submit_all(ann, project, 10)
    rita = reviewer_on(org, project, "rita")
    for _ in range(8):
        judged(ReviewItem.objects.get(pk=review_claim(member=rita).claimed.item_id), rita)
    with nested_plans() as plans:
        claimed = review_claim(member=rita).claimed
    assert item_of_layer(claimed.item_id) == 1  # the second layer's items are all her own work
    item_searches = plans_of(plans, "FROM qa_reviewitem i", "NOT EXISTS (SELECT 1 FROM qa_review r")
    assert item_searches
    for plan in item_searches:
        assert "Anti Join" not in plan
        assert "SubPlan" in plan


def item_of_layer(item_id: int) -> int:
    return ReviewItem.objects.get(pk=item_id).layer.position


@pytest.mark.parametrize(
    "change",
    [
        "removed from the project",
        "made an annotator",
        "membership deactivated",
        "account deactivated",
        "profile suspended",
        "layer given to QA leads",
    ],
)
def test_a_reviewer_who_loses_access_loses_the_lease_and_others_take_it(org, queue, change):
    project, _, _annotations, rita, bob = queue
    item = claim(client_of(rita)).json()["id"]
    client = client_of(rita)
    profile = Annotator.objects.get(member=rita)

    if change == "removed from the project":
        project_member_remove(project=project, annotator=profile, actor=None)
    elif change == "made an annotator":
        member_role_change(member=rita, role=Role.ANNOTATOR, actor=None)
    elif change == "membership deactivated":
        Member.objects.filter(pk=rita.pk).update(is_active=False)
    elif change == "account deactivated":
        type(rita.user).objects.filter(pk=rita.user_id).update(is_active=False)
    elif change == "profile suspended":
        annotator_set_status(annotator=profile, action="suspend", actor=None, reason="Audit")
    else:
        set_policy(org, project, [layer("Peer review", role="qa_lead")])

    held = ReviewItem.objects.get(pk=item)
    assert (held.state, held.reviewer_id, held.lease_expires_at) == ("open", None, None)
    if change in ("removed from the project", "profile suspended", "layer given to QA leads"):
        # Still able to call the API: told why.
        for action in ("heartbeat", "release"):
            response = client.post(f"/api/v1/reviews/{item}/{action}")
            assert response.status_code == 403, response.content
            assert response.json()["error"]["code"] == "access_ended"
    taker = org.qa_lead if change == "layer given to QA leads" else bob
    assert review_claim(member=taker).claimed.item_id == item


def test_a_qa_lead_without_a_profile_reviews_at_level_zero(org, queue):
    project, _, annotations, _, _ = queue
    set_policy(org, project, [layer("Peer review"), layer("Audit", role="qa_lead")])
    assert not Annotator.objects.filter(member=org.qa_lead).exists()
    lead = client_of(org.qa_lead)
    # Layer 1's items wait; a QA lead may take them too.
    assert claim(lead).json()["id"] == item_of(annotations[0]).pk
    set_policy(org, project, [layer("Peer review", min_skill_level=1)])
    body = claim(lead).json()
    assert body["outcome"] == "not_qualified"
    assert body["layers"][0]["reasons"] == ["skill bbox no level < 1"]


def test_a_reviewer_lists_the_items_they_hold_or_judged(queue):
    _, _, _annotations, rita, bob = queue
    client = client_of(rita)
    first = claim(client).json()["id"]
    second = claim(client).json()["id"]
    client.post(f"/api/v1/reviews/{second}/release")
    judged(ReviewItem.objects.get(pk=first), rita)
    claim(client_of(bob))

    body = client.get("/api/v1/reviews").json()

    assert [(r["id"], r["state"]) for r in body["results"]] == [(first, "done")]
    assert set(body["results"][0]) == {
        "id",
        "state",
        "project",
        "layer",
        "task",
        "annotation",
        "version",
        "arrived_at",
        "leased_at",
        "lease_expires_at",
    }


def test_nothing_of_another_organization_is_reachable(org, other_org, queue):
    project, _, annotations, rita, _ = queue
    item = claim(client_of(rita)).json()["id"]
    foreign_reviewer = client_of(other_org.reviewer)
    foreign_lead = client_of(other_org.qa_lead)

    assert claim(foreign_reviewer).json()["outcome"] == "no_layers"
    assert claim(foreign_lead).json()["outcome"] == "no_layers"
    assert claim(foreign_lead, project=project.pk).status_code == 404
    for action in ("heartbeat", "release"):
        assert foreign_lead.post(f"/api/v1/reviews/{item}/{action}").status_code == 404
    assert foreign_lead.get(f"/api/v1/projects/{project.pk}/review-queues").status_code == 404
    response = foreign_lead.get(f"/api/v1/annotations/{annotations[0].pk}/reviews")
    assert response.status_code == 404
    assert ReviewItem.objects.get(pk=item).reviewer_id == rita.pk


def test_qa_leads_see_each_layers_queue(org):
    project = review_project(org, tasks=10, layers=[layer("One"), layer("Two", sample_rate=0.0)])
    ann = annotator_on(org, project, "ann")
    annotations = submit_all(ann, project, 5)
    rita = reviewer_on(org, project, "rita")
    held = [review_claim(member=rita).claimed.item_id for _ in range(3)]
    lapse(held[0])
    judged(ReviewItem.objects.get(pk=held[1]), rita)
    waited = timezone.now() - timedelta(minutes=10)
    ReviewItem.objects.filter(pk=item_of(annotations[3]).pk).update(arrived_at=waited)

    response = client_of(org.qa_lead).get(f"/api/v1/projects/{project.pk}/review-queues")

    assert response.status_code == 200, response.content
    one, two = response.json()
    assert (one["layer"], one["name"], one["open"], one["leased"], one["lapsed"]) == (
        1,
        "One",
        2,
        1,
        1,
    )
    assert 600 <= one["oldest_waiting_seconds"] < 660
    # Arrivals in the window: the waited one is 10 minutes old, inside 24 hours.
    assert (one["sampled"], one["skipped"]) == (5, 0)
    # The judged one went on to layer 2, which samples nothing.
    assert (two["open"], two["sampled"], two["skipped"]) == (0, 0, 1)
    assert two["oldest_waiting_seconds"] is None
    assert client_of(rita).get(f"/api/v1/projects/{project.pk}/review-queues").status_code == 403
    response = client_of(org.qa_lead).get(f"/api/v1/projects/{project.pk}/review-queues?hours=0")
    assert response.status_code == 400 and "hours" in response.json()["error"]["fields"]


def test_qa_leads_see_every_layers_decision_on_an_annotation(org):
    project = review_project(org, tasks=3, layers=[layer("One"), layer("Two", sample_rate=0.0)])
    ann = annotator_on(org, project, "ann")
    (annotation,) = submit_all(ann, project, 1)
    rita = reviewer_on(org, project, "rita")
    judged(ReviewItem.objects.get(pk=review_claim(member=rita).claimed.item_id), rita)
    url = f"/api/v1/annotations/{annotation.pk}/reviews"

    body = client_of(org.manager).get(url).json()

    assert [
        (r["version"], r["layer"]["position"], r["sampled"], r["rate"], r["basis"], r["state"])
        for r in body["results"]
    ] == [(1, 1, True, 1.0, "newcomer", "done"), (1, 2, False, 0.0, "newcomer", "skipped")]
    assert body["results"][0]["verdict"] == "accept"
    assert body["results"][0]["reviewer"] == rita.pk
    assert body["results"][1]["verdict"] is None
    assert client_of(rita).get(url).status_code == 403


def test_the_qa_lead_reads_cost_the_same_whatever_the_page(org):
    project = review_project(org, tasks=30)
    ann = annotator_on(org, project, "ann")
    annotations = submit_all(ann, project, 30)
    rita = reviewer_on(org, project, "rita")
    for _ in range(30):
        judged(ReviewItem.objects.get(pk=review_claim(member=rita).claimed.item_id), rita)
    client = client_of(rita)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    assert queries("/api/v1/reviews?page_size=2") == queries("/api/v1/reviews?page_size=30")
    lead = client_of(org.qa_lead)
    url = f"/api/v1/annotations/{annotations[0].pk}/reviews"
    with CaptureQueriesContext(connection) as captured:
        assert lead.get(url).status_code == 200
    assert len(captured) <= 6


@pytest.mark.django_db(transaction=True)
def test_sixteen_reviewers_claiming_at_once_never_share_an_item_nor_get_their_own():
    """Four of the sixteen annotated first, then became reviewers: their work waits among the
    others', and each claims on a connection of their own."""
    org = Org("conc")
    project = review_project(org, tasks=80)
    authors = [annotator_on(org, project, f"author-{i}") for i in range(4)]
    others = [annotator_on(org, project, f"writer-{i}") for i in range(2)]
    for person in authors + others:
        submit_all(person, project, 10)
    reviewers = [reviewer_on(org, project, f"rev-{i}") for i in range(12)]
    for author in authors:
        member_role_change(member=author.member, role=Role.REVIEWER, actor=None)
        project_members_add(project=project, annotators=[author], role="reviewer", actor=None)
    members = reviewers + [Member.objects.get(pk=a.member_id) for a in authors]
    got: dict[int, list[int]] = {m.pk: [] for m in members}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(members))

    def worker(member: Member) -> None:
        try:
            barrier.wait()
            while True:
                result = review_claim(member=member)
                if result.claimed is None:
                    break
                got[member.pk].append(result.claimed.item_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(m,)) for m in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors[:3]
    handed = [item for items in got.values() for item in items]
    assert len(handed) == len(set(handed)) == 60
    authors_of = dict(ReviewItem.objects.values_list("pk", "author_member_id"))
    for member_id, items in got.items():
        assert all(authors_of[item] != member_id for item in items)
    assert ReviewItem.objects.filter(state="leased").count() == 60


# A layer's worth of waiting items, written at once as the sampling would have one by one.
_WAITING = """
WITH taken AS (
    UPDATE tasks_slot SET state = 'done' WHERE project_id = %(project)s
    RETURNING id, task_id, project_id
), assignment AS (
    INSERT INTO tasks_assignment
        (task_id, slot_id, project_id, annotator_id, status, leased_at, lease_expires_at)
    SELECT task_id, id, project_id, %(annotator)s, 'submitted', now(), now() FROM taken
    RETURNING id, task_id, project_id, annotator_id
), annotation AS (
    INSERT INTO tasks_annotation (assignment_id, task_id, project_id, annotator_id, payload,
                                  version, payload_version, duration_seconds, submitted_at)
    SELECT id, task_id, project_id, annotator_id, '{}', 1, 1, 30, now() FROM assignment
    RETURNING id, task_id, project_id
)
INSERT INTO qa_reviewitem (annotation_id, version, layer_id, project_id, task_id,
                           author_member_id, sampled, rate, basis, arrived_at, state, released_by)
SELECT id, 1, %(layer)s, project_id, task_id, %(author)s, true, 1.0, 'newcomer',
       now() + make_interval(secs => id), 'open', '{}'
FROM annotation
"""


def test_a_review_claim_finds_the_oldest_waiting_item_by_the_waiting_items_index(org):
    """Statistics taken when the whole layer waited (items just sampled, a fresh import's) must
    not send the claim along every item's id: it would walk past each one leased or judged
    since, more with every claim. The waiting items' own index gives their order at once."""
    project = review_project(org, tasks=3000, layers=[layer("One")])
    ann = annotator_on(org, project, "ann")
    with connection.cursor() as cursor:
        cursor.execute(
            _WAITING,
            {
                "project": project.pk,
                "annotator": ann.pk,
                "author": ann.member_id,
                "layer": project.review_layers.get().pk,
            },
        )
        cursor.execute("ANALYZE qa_reviewitem")
    rita = reviewer_on(org, project, "rita")
    for _ in range(300):
        review_claim(member=rita)
    oldest = ReviewItem.objects.filter(project=project, state="open").order_by("arrived_at", "id")
    expected = oldest.first().pk
    with nested_plans() as plans:
        claimed = review_claim(member=rita).claimed
    assert claimed.item_id == expected
    (pick,) = plans_of(plans, "FROM qa_reviewitem i", "i.state = 'open'")
    assert "review_item_open_idx" in pick
    assert "qa_reviewitem_pkey" not in pick
