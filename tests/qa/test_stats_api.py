"""The hourly stats' API: a project's annotators, one annotator, and your own without gold."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.serializers import json_time
from qa.stats import GOLD_FIELDS, OWN_LIVE_FIELDS, hour_of, stats_add
from qa.verdicts import review_judge
from tasks.models import Assignment
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import image_rows, import_rows, make_project, staff
from tests.qa.agreement_helpers import crowd_project, work
from tests.qa.gold_helpers import label_gold_project, label_gold_submit
from tests.qa.review_helpers import TAGS, lease, verdict_project, waiting_item
from tests.qa.review_helpers import submit as review_submit
from workforce.models import Role

pytestmark = pytest.mark.django_db


BOX = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]}


def add(project, annotator, at, **increments):
    stats_add(project_id=project.pk, annotator_id=annotator.pk, at=at, **increments)


def hours_ago(hours: float) -> datetime:
    return timezone.now() - timedelta(hours=hours)


def test_a_projects_stats_sum_each_annotators_hours_with_their_figures(org):
    project = make_project(org)
    other = org.add_annotator("second")
    # Three hours of the org's annotator: two with submissions, one with only a verdict.
    add(project, org.annotator, hours_ago(5), claimed=4, submitted=4, active_seconds=100.0)
    add(project, org.annotator, hours_ago(3), submitted=2, gold_scored=2, gold_score_sum=1.5)
    add(project, org.annotator, hours_ago(1), reviews_accepted=3, reviews_rejected=1)
    add(project, org.annotator, hours_ago(1), agreement_sum=1.5, agreement_count=2)
    add(project, other, hours_ago(2), submitted=1, reviews_corrected=1, review_score_sum=0.5)
    # Out of the default range (the last 7 days).
    add(project, other, timezone.now() - timedelta(days=8), submitted=50)
    response = org.client(Role.QA_LEAD).get(f"/api/v1/projects/{project.pk}/stats")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["hours"] is None
    first, second = body["annotators"]
    assert (first["annotator"], first["username"]) == (
        org.annotator.pk,
        org.annotator.member.user.username,
    )
    assert (first["claimed"], first["submitted"], first["hours_worked"]) == (4, 6, 2)
    assert first["throughput_per_hour"] == 3.0
    assert first["gold_accuracy"] == 0.75 and first["review_pass_rate"] == 0.75
    assert first["agreement_mean"] == 0.75
    assert (second["annotator"], second["submitted"], second["review_pass_rate"]) == (
        other.pk,
        1,
        0.0,
    )
    assert second["throughput_per_hour"] == 1.0 and second["agreement_mean"] is None
    # By hour, and over a range that leaves the first hour out.
    since = hours_ago(4).isoformat()
    hourly = org.client(Role.MANAGER).get(
        f"/api/v1/projects/{project.pk}/stats", {"since": since, "by": "hour"}
    )
    body = hourly.json()
    assert [row["submitted"] for row in body["annotators"]] == [2, 1]
    hours = [(row["annotator"], row["hour"]) for row in body["hours"]]
    assert hours == sorted(
        [
            (org.annotator.pk, json_time(hour_of(hours_ago(3)))),
            (other.pk, json_time(hour_of(hours_ago(2)))),
            (org.annotator.pk, json_time(hour_of(hours_ago(1)))),
        ],
        key=lambda pair: pair[1],
    )


def test_handling_time_median_and_p90_are_read_from_the_submissions_buckets(org):
    project = make_project(org)
    import_rows(project, image_rows(10))
    staff(project, org.annotator)
    for seconds in (3, 7, 8, 12, 50, 70, 100, 200, 400, 5000):
        claimed = claim_next(annotator=org.annotator).claimed
        Assignment.objects.filter(pk=claimed.assignment_id).update(
            leased_at=timezone.now() - timedelta(seconds=seconds)
        )
        assignment = Assignment.objects.get(pk=claimed.assignment_id)
        assignment_submit(assignment=assignment, payload=BOX)
    [row] = (
        org.client(Role.QA_LEAD).get(f"/api/v1/projects/{project.pk}/stats").json()["annotators"]
    )
    assert row["submitted"] == 10 and 5850 <= row["active_seconds"] < 5851
    # The 5th of ten, 50 s, is in [45, 60); the 9th, 400 s, in [300, 600).
    assert (row["handling_median_seconds"], row["handling_p90_seconds"]) == (60, 600)
    assert sum(row["handling_buckets"]) == 10 and row["handling_buckets"][-1] == 1


def test_stats_refuse_bad_parameters_naming_them(org):
    project = make_project(org)
    client = org.client(Role.QA_LEAD)
    url = f"/api/v1/projects/{project.pk}/stats"
    for query, field in [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        # RFC 3339, as the schema says: no date alone, no time without its offset.
        ({"until": "2026-03-02"}, "until"),
        ({"since": "2026-03-02T10:00:00"}, "since"),
        ({"until": ""}, "until"),
        ({"until": "0001-01-02T00:00:00Z"}, "until"),
        ({"by": "day"}, "by"),
        ({"since": "2026-03-02T10:00:00Z", "until": "2026-03-02T09:00:00Z"}, "since"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ]:
        response = client.get(url, query)
        assert response.status_code == 400, query
        assert set(response.json()["error"]["fields"]) == {field}, query
    assert client.get(f"/api/v1/annotators/{org.annotator.pk}/stats?by=x").status_code == 400
    assert org.client(Role.ANNOTATOR).get("/api/v1/me/stats?since=x").status_code == 400


def test_staff_only_and_nothing_of_another_organization(org, other_org):
    project = make_project(org)
    theirs = make_project(other_org)
    add(theirs, other_org.annotator, hours_ago(1), submitted=1)
    qa = org.client(Role.QA_LEAD)
    assert qa.get(f"/api/v1/projects/{theirs.pk}/stats").status_code == 404
    assert qa.get(f"/api/v1/annotators/{other_org.annotator.pk}/stats").status_code == 404
    for role in (Role.ANNOTATOR, Role.REVIEWER):
        client = org.client(role)
        assert client.get(f"/api/v1/projects/{project.pk}/stats").status_code == 403
        assert client.get(f"/api/v1/annotators/{org.annotator.pk}/stats").status_code == 403
    assert org.client(Role.MANAGER).get("/api/v1/me/stats").status_code == 403


def test_an_annotators_stats_across_projects(org):
    first, second = make_project(org, name="first"), make_project(org, name="second")
    add(first, org.annotator, hours_ago(3), submitted=2, gold_scored=1, gold_score_sum=1.0)
    add(second, org.annotator, hours_ago(2), submitted=4, reviews_accepted=1)
    body = (
        org.client(Role.MANAGER)
        .get(f"/api/v1/annotators/{org.annotator.pk}/stats", {"by": "hour"})
        .json()
    )
    assert [(p["project"], p["name"], p["submitted"]) for p in body["projects"]] == [
        (first.pk, "first", 2),
        (second.pk, "second", 4),
    ]
    total = body["total"]
    assert (total["submitted"], total["hours_worked"], total["throughput_per_hour"]) == (6, 2, 3)
    assert total["gold_accuracy"] == 1.0 and total["review_pass_rate"] == 1.0
    assert [row["project"] for row in body["hours"]] == [first.pk, second.pk]


def test_an_annotators_total_counts_each_hour_worked_once_across_projects(org):
    first, second = make_project(org, name="first"), make_project(org, name="second")
    # Three hours with submissions in the first project, one of them also in the second.
    for hours in (3, 2, 1):
        add(first, org.annotator, hours_ago(hours), submitted=2)
    add(second, org.annotator, hours_ago(2), submitted=3)
    add(second, org.annotator, hours_ago(5), claimed=1)
    body = org.client(Role.MANAGER).get(f"/api/v1/annotators/{org.annotator.pk}/stats").json()
    assert [(p["hours_worked"], p["submitted"]) for p in body["projects"]] == [(3, 6), (1, 3)]
    total = body["total"]
    assert (total["submitted"], total["claimed"], total["hours_worked"]) == (9, 1, 3)
    assert total["throughput_per_hour"] == 3.0


def test_your_own_stats_have_no_gold_and_only_whole_ended_days(org):
    project = make_project(org)
    today = datetime.combine(timezone.now().astimezone(UTC).date(), datetime.min.time(), UTC)
    add(project, org.annotator, today - timedelta(hours=2), submitted=3, gold_scored=1)
    add(project, org.annotator, today - timedelta(days=1), submitted=1, reviews_rejected=1)
    # Today's work, gold scored or not, waits for the day to end.
    add(project, org.annotator, today, submitted=5, gold_scored=1, gold_score_sum=1.0)
    add(project, org.annotator, timezone.now(), submitted=1)
    response = org.client(Role.ANNOTATOR).get("/api/v1/me/stats", {"by": "hour"})
    assert response.status_code == 200, response.content
    body = response.json()
    # Times are written as every other answer writes them: UTC, with Z.
    assert body["until"] == f"{today:%Y-%m-%dT%H:%M:%S}Z"
    assert body["total"]["submitted"] == 4 and body["total"]["review_pass_rate"] == 0.0
    assert [row["submitted"] for row in body["hours"]] == [1, 3]
    for row in [body["total"], *body["projects"], *body["hours"]]:
        assert not GOLD_FIELDS & set(row), row
    assert "gold" not in response.content.decode()
    # A range ending in the future is cut at the start of today too.
    later = (timezone.now() + timedelta(days=1)).isoformat()
    cut = org.client(Role.ANNOTATOR).get("/api/v1/me/stats", {"until": later}).json()
    assert cut["until"] == f"{today:%Y-%m-%dT%H:%M:%S}Z" and cut["total"]["submitted"] == 4


def test_your_throughput_today_is_live_in_total_and_per_project_and_nothing_else(org):
    first, second = make_project(org, name="first"), make_project(org, name="second")
    import_rows(second, image_rows(2))
    staff(second, org.annotator)
    today = datetime.combine(timezone.now().astimezone(UTC).date(), datetime.min.time(), UTC)
    # Yesterday's last hour: in the day-lagged figures, not in today's.
    add(first, org.annotator, today - timedelta(hours=1), claimed=7, submitted=7)
    # Today's first hour, with every other kind of figure, which today leaves out.
    add(first, org.annotator, today, claimed=3, submitted=2, active_seconds=40.0, gold_scored=2,
        gold_score_sum=1.5, reviews_accepted=1, review_score_sum=1.0, agreement_sum=0.5,
        agreement_count=1)  # fmt: skip
    # Two submissions now in the second project, that took 50 s and 400 s.
    for seconds in (50, 400):
        claimed = claim_next(annotator=org.annotator, project_id=second.pk).claimed
        Assignment.objects.filter(pk=claimed.assignment_id).update(
            leased_at=timezone.now() - timedelta(seconds=seconds)
        )
        assignment_submit(assignment=Assignment.objects.get(pk=claimed.assignment_id), payload=BOX)
    # Someone else's today is not yours.
    add(first, org.add_annotator("someone"), today, submitted=9)
    # Just after midnight both are today's first hour.
    hours = len({today, hour_of(timezone.now())})

    response = org.client(Role.ANNOTATOR).get("/api/v1/me/stats")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total"]["submitted"] == 7 and body["until"] == f"{today:%Y-%m-%dT%H:%M:%S}Z"
    found = body["today"]
    assert found["since"] == body["until"]
    total = found["total"]
    assert set(total) == {*OWN_LIVE_FIELDS, "hours_worked"}
    assert (total["claimed"], total["submitted"], total["hours_worked"]) == (3, 4, hours)
    assert total["throughput_per_hour"] == 4 / hours
    assert 490 <= total["active_seconds"] < 491
    # The submissions' buckets: 50 s in [45, 60), 400 s in [300, 600).
    assert (total["handling_median_seconds"], total["handling_p90_seconds"]) == (60, 600)
    assert sum(total["handling_buckets"]) == 2
    assert [
        (row["project"], row["name"], row["claimed"], row["submitted"], row["hours_worked"],
         row["throughput_per_hour"], row["handling_median_seconds"])
        for row in found["projects"]
    ] == [(first.pk, "first", 3, 2, 1, 2.0, None), (second.pk, "second", 0, 2, 1, 2.0, 60)]  # fmt: skip
    for row in found["projects"]:
        assert set(row) == {*OWN_LIVE_FIELDS, "hours_worked", "project", "name"}
    for name in {*total, *found["projects"][0]}:
        assert name not in GOLD_FIELDS and "review" not in name and "agreement" not in name
    assert "gold" not in str(found)


def test_the_stats_queries_do_not_grow_with_the_rows(org):
    project, elsewhere = make_project(org), make_project(org, name="elsewhere")
    client = org.client(Role.QA_LEAD)
    people = [org.add_annotator(f"many-{i}") for i in range(6)]

    def counted(url: str) -> list:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return [len(queries), len(response.json()["hours"])]

    urls = [
        f"/api/v1/projects/{project.pk}/stats?by=hour",
        f"/api/v1/annotators/{people[0].pk}/stats?by=hour",
    ]
    add(project, people[0], hours_ago(1), submitted=1)
    before = [counted(url) for url in urls]
    assert [rows for _, rows in before] == [1, 1]
    for person in people:
        for hours in range(1, 8):
            add(project, person, hours_ago(hours), submitted=1)
    add(elsewhere, people[0], hours_ago(1), submitted=1)
    # 42 hourly rows of six annotators; eight of one annotator in two projects: no more queries.
    assert [counted(url) for url in urls] == [[before[0][0], 42], [before[1][0], 8]]


def test_an_annotators_errors_count_review_tags_and_labels_against_consensus(
    org, other_org, django_capture_on_commit_callbacks
):
    reviewed = verdict_project(org, org.annotator, tasks=3)
    for tags in (["wrong-label"], ["wrong-label", "missed-object"]):
        item = lease(waiting_item(review_submit(org.annotator, reviewed)), org.qa_lead)
        review_judge(item=item, reviewer=org.qa_lead, verdict="reject", tags=tags, comment="No.")
    qa = org.client(Role.QA_LEAD)
    url = f"/api/v1/projects/{reviewed.pk}/annotators/{org.annotator.pk}/errors"
    body = qa.get(url).json()
    assert body["error_tags"] == [
        {"code": "wrong-label", "description": TAGS["wrong-label"], "count": 2},
        {"code": "missed-object", "description": TAGS["missed-object"], "count": 1},
    ]
    assert body["confusion"] is None  # boxes have no label table
    # A classification project: two tasks, three annotators; the first dissents on the second.
    labelled, people = crowd_project(org, tasks=2)
    with django_capture_on_commit_callbacks(execute=True):
        for task in range(2):
            for i, person in enumerate(people):
                work(person, labelled, {"label": "person" if (task, i) == (1, 0) else "car"})
    url = f"/api/v1/projects/{labelled.pk}/annotators/{people[0].pk}/errors"
    with CaptureQueriesContext(connection) as queries:
        body = qa.get(url).json()
    classes = body["confusion"]["classes"]
    car, person = classes.index("car"), classes.index("person")
    matrix = body["confusion"]["confusion"]
    assert matrix[car][car] == 1 and matrix[car][person] == 1 and sum(map(sum, matrix)) == 2
    assert body["error_tags"] == []
    # The member; the project and its domains; the annotator with skills and certifications;
    # the tags and the taxonomy; the labels against consensus.
    assert len(queries) == 9, [q["sql"][:50] for q in queries]
    assert org.client(Role.ANNOTATOR).get(url).status_code == 403
    foreign = make_project(other_org)
    assert (
        qa.get(f"/api/v1/projects/{foreign.pk}/annotators/{org.annotator.pk}/errors").status_code
        == 404
    )
    assert (
        qa.get(
            f"/api/v1/projects/{labelled.pk}/annotators/{other_org.annotator.pk}/errors"
        ).status_code
        == 404
    )


def test_an_annotators_gold_scores_newest_first_for_staff_only(org, other_org):
    project = label_gold_project(org, org.annotator)
    other = org.add_annotator("second")
    staff(project, other)
    mine = [label_gold_submit(project, org.annotator, correct=correct) for correct in
            (False, True, True)]  # fmt: skip
    label_gold_submit(project, other, correct=False)
    qa = org.client(Role.QA_LEAD)
    url = f"/api/v1/projects/{project.pk}/annotators/{org.annotator.pk}/gold-scores"
    body = qa.get(url).json()
    assert [(row["annotation"], row["task"], row["score"]) for row in body] == [
        (annotation.pk, annotation.task_id, score)
        for annotation, score in zip(reversed(mine), (1.0, 1.0, 0.0), strict=True)
    ]
    assert {row["answer_version"] for row in body} == {1}
    assert [row["annotation"] for row in qa.get(url, {"limit": 2}).json()] == [
        mine[2].pk,
        mine[1].pk,
    ]
    for limit in ("0", "1001", "many"):
        refused = qa.get(url, {"limit": limit})
        assert refused.status_code == 400
        assert list(refused.json()["error"]["fields"]) == ["limit"]
    # Never to the annotator (invariant 2), nor across organizations.
    assert org.client(Role.ANNOTATOR).get(url).status_code == 403
    foreign = f"/api/v1/projects/{project.pk}/annotators/{other_org.annotator.pk}/gold-scores"
    assert qa.get(foreign).status_code == 404


def test_every_projects_stats_sum_its_annotators_for_the_staffing_forecast(org, other_org):
    first, second = make_project(org, name="first"), make_project(org, name="second")
    quiet = make_project(org, name="quiet")
    other = org.add_annotator("second")
    add(first, org.annotator, hours_ago(2), submitted=3, gold_scored=1, gold_score_sum=1.0)
    add(first, other, hours_ago(1), submitted=2)
    add(second, other, hours_ago(30), submitted=7)
    add(quiet, other, timezone.now() - timedelta(days=9), submitted=9)
    theirs = make_project(other_org)
    add(theirs, other_org.annotator, hours_ago(1), submitted=100)
    client = org.client(Role.MANAGER)

    def submitted(query: dict) -> dict[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/stats/projects", query)
        assert response.status_code == 200, response.content
        # Auth, then one read of the rows, whatever their number.
        assert len(queries) <= 2
        return {row["project"]: row["submitted"] for row in response.json()["projects"]}

    # The last 7 days by default: another organization's and older work are not counted.
    assert submitted({}) == {first.pk: 5, second.pk: 7}
    # The staffing board's "today": the last 24 hours.
    assert submitted({"since": hours_ago(24).isoformat()}) == {first.pk: 5}
    row = client.get("/api/v1/stats/projects").json()["projects"][0]
    assert (row["hours_worked"], row["gold_accuracy"], row["throughput_per_hour"]) == (2, 1.0, 2.5)
    for query, field in [({"since": "x"}, "since"), ({"by": "hour"}, None)]:
        response = client.get("/api/v1/stats/projects", query)
        if field is None:
            # Not a parameter of this list: ignored, as unknown parameters are everywhere.
            assert response.status_code == 200
        else:
            assert response.status_code == 400
            assert set(response.json()["error"]["fields"]) == {field}
    for role in (Role.ANNOTATOR, Role.REVIEWER):
        assert org.client(role).get("/api/v1/stats/projects").status_code == 403
