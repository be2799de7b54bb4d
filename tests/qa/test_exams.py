"""Qualification exams: defining them, attempts, scoring, grants, cooldown and renewal."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from qa import exams
from qa.models import AttemptStatus, Exam, ExamAnswer, ExamAttempt, ExamItem
from tests.helpers import BBOX_SCHEMA, Org
from workforce import services
from workforce.models import AnnotatorSkill, AuditEvent, AuditVerb, Certification, Role

CAR = {"label": "car", "x": 10, "y": 20, "w": 50, "h": 30}
RIGHT = {"boxes": [CAR]}
WRONG = {"boxes": [{"label": "person", "x": 300, "y": 300, "w": 20, "h": 20}]}
DATA = {"image": "s3://exams/1.jpg", "width": 640, "height": 480}


def exam_body(domain: str | None = "driving", **fields) -> dict:
    body = {
        "name": "Boxes on street scenes",
        "kind": "bbox",
        "label_schema": BBOX_SCHEMA,
        "items": [{"data": DATA, "answer": RIGHT} for _ in range(3)],
        "domain": domain,
        "pass_threshold": 0.6,
        "certification_days": 365,
        "skill_level": 3,
        "cooldown_hours": 24,
        "max_attempts": 2,
    }
    return body | fields


@pytest.fixture
def domain(org):
    return services.domain_create(
        organization=org.organization, slug="driving", name="Driving", description="", actor=None
    )


@pytest.fixture
def exam(org, domain) -> Exam:
    response = org.client(Role.QA_LEAD).post("/api/v1/exams", exam_body(), format="json")
    assert response.status_code == 201, response.json()
    return Exam.objects.get(pk=response.json()["id"])


def take(client, exam_id: int, payloads: list) -> dict:
    """Start an attempt and answer every item through the API; return the last answer."""
    response = client.post(f"/api/v1/me/exams/{exam_id}/attempts")
    assert response.status_code == 201, response.json()
    attempt_id = response.json()["id"]
    body = None
    for payload in payloads:
        claim = client.post(f"/api/v1/me/exam-attempts/{attempt_id}/claim")
        assert claim.status_code == 201, claim.json()
        response = client.post(
            f"/api/v1/me/exam-answers/{claim.json()['id']}/submit",
            {"payload": payload, "active_seconds": 0},
            format="json",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
    return body


def my_exam(client, exam_id: int) -> dict:
    rows = client.get("/api/v1/me/exams").json()["results"]
    return next(row for row in rows if row["id"] == exam_id)


def test_a_pass_grants_the_certification_and_the_level_through_audited_services(org, exam):
    client = org.client(Role.ANNOTATOR)
    last = take(client, exam.pk, [RIGHT, RIGHT, WRONG])
    attempt = last["attempt"]
    assert attempt["status"] == "passed" and attempt["passed"] is True
    assert attempt["score"] == pytest.approx(2 / 3)
    certification = Certification.objects.get(annotator=org.annotator, domain=exam.domain)
    assert certification.status == "active"
    expected = timezone.now() + timedelta(days=365)
    assert abs((certification.expires_at - expected).total_seconds()) < 60
    assert f"attempt #{attempt['id']}" in certification.evidence
    skill = AnnotatorSkill.objects.get(annotator=org.annotator, skill="bbox")
    assert (skill.level, skill.source) == (3, "exam")
    events = AuditEvent.objects.filter(annotator=org.annotator)
    issued = events.get(verb=AuditVerb.CERTIFICATION_ISSUED)
    assert f"#{attempt['id']}" in issued.reason
    assert f"#{attempt['id']}" in events.get(verb=AuditVerb.SKILL_SET).reason
    passed = events.get(verb=AuditVerb.EXAM_PASSED)
    assert passed.target_type == "examattempt" and passed.target_id == attempt["id"]
    assert passed.after["granted"]["certification"]["action"] == "issued"
    assert passed.after["granted"]["skill"] == {"skill": "bbox", "before": None, "level": 3}
    state = my_exam(client, exam.pk)
    assert state["passed_at"] is not None and state["available"] is False
    assert state["reason"] == "already_passed" and state["renewal_due"] is False
    # Passed and not due for renewal: no new attempt.
    refused = client.post(f"/api/v1/me/exams/{exam.pk}/attempts")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "already_passed"


def test_a_pass_never_lowers_a_level_held_already(org, exam):
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=5, source="manual", actor=None
    )
    take(org.client(Role.ANNOTATOR), exam.pk, [RIGHT, RIGHT, RIGHT])
    assert AnnotatorSkill.objects.get(annotator=org.annotator, skill="bbox").level == 5
    assert AuditEvent.objects.filter(verb=AuditVerb.SKILL_SET).count() == 1  # the manual one


def test_a_fail_starts_the_cooldown_and_a_start_during_it_is_refused(org, exam):
    client = org.client(Role.ANNOTATOR)
    last = take(client, exam.pk, [RIGHT, WRONG, WRONG])
    assert last["attempt"]["status"] == "failed" and last["attempt"]["passed"] is False
    assert not Certification.objects.filter(annotator=org.annotator).exists()
    assert not AnnotatorSkill.objects.filter(annotator=org.annotator).exists()
    failed = AuditEvent.objects.get(verb=AuditVerb.EXAM_FAILED, annotator=org.annotator)
    assert failed.after["score"] == pytest.approx(1 / 3) and failed.after["cooldown_until"]
    state = my_exam(client, exam.pk)
    assert state["cooldown_until"] is not None and state["available"] is False
    assert (state["attempts_used"], state["attempts_left"]) == (1, 1)
    refused = client.post(f"/api/v1/me/exams/{exam.pk}/attempts")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "exam_cooldown"
    assert ExamAttempt.objects.filter(annotator=org.annotator).count() == 1


def test_failed_attempts_stop_at_the_maximum(org, exam):
    client = org.client(Role.ANNOTATOR)
    for used in (1, 2):
        take(client, exam.pk, [WRONG, WRONG, WRONG])
        # The cooldown over, as if a day had passed.
        ExamAttempt.objects.filter(annotator=org.annotator).update(
            finished_at=timezone.now() - timedelta(hours=25),
            started_at=timezone.now() - timedelta(hours=26),
        )
        assert my_exam(client, exam.pk)["attempts_used"] == used
    state = my_exam(client, exam.pk)
    assert state["attempts_left"] == 0 and state["reason"] == "attempts_exhausted"
    refused = client.post(f"/api/v1/me/exams/{exam.pk}/attempts")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "attempts_exhausted"


def test_a_certification_expiring_within_30_days_can_be_renewed_by_a_retake(org, exam):
    client = org.client(Role.ANNOTATOR)
    take(client, exam.pk, [RIGHT, RIGHT, RIGHT])
    certification = Certification.objects.get(annotator=org.annotator)
    # Not due: the exam stays closed.
    assert client.post(f"/api/v1/me/exams/{exam.pk}/attempts").status_code == 409
    soon = timezone.now() + timedelta(days=10)
    Certification.objects.filter(pk=certification.pk).update(expires_at=soon)
    state = my_exam(client, exam.pk)
    assert state["renewal_due"] is True and state["available"] is True
    last = take(client, exam.pk, [RIGHT, RIGHT, RIGHT])
    assert last["attempt"]["renewal"] is True and last["attempt"]["passed"] is True
    certification.refresh_from_db()
    assert certification.expires_at > timezone.now() + timedelta(days=360)
    renewed = AuditEvent.objects.get(verb=AuditVerb.CERTIFICATION_RENEWED)
    assert f"#{last['attempt']['id']}" in renewed.reason
    passed = AuditEvent.objects.filter(verb=AuditVerb.EXAM_PASSED).first()
    assert passed.after["granted"]["certification"]["action"] == "renewed"
    assert my_exam(client, exam.pk)["renewal_due"] is False


def test_the_annotator_sees_the_overall_score_never_an_item_score_or_answer(org, exam):
    client = org.client(Role.ANNOTATOR)
    start = client.post(f"/api/v1/me/exams/{exam.pk}/attempts").json()
    claim = client.post(f"/api/v1/me/exam-attempts/{start['id']}/claim").json()
    assert set(claim) >= {"id", "status", "leased_at", "lease_expires_at", "task", "project"}
    assert claim["task"]["data"] == DATA and claim["project"]["kind"] == "bbox"
    assert "answer" not in str(claim)
    submitted = client.post(
        f"/api/v1/me/exam-answers/{claim['id']}/submit", {"payload": WRONG}, format="json"
    ).json()
    assert "score" not in submitted and submitted["attempt"]["score"] is None
    assert "answer" not in submitted and "details" not in submitted
    for payload in (RIGHT, RIGHT):
        claim = client.post(f"/api/v1/me/exam-attempts/{start['id']}/claim").json()
        client.post(
            f"/api/v1/me/exam-answers/{claim['id']}/submit", {"payload": payload}, format="json"
        )
    mine = client.get(f"/api/v1/me/exam-attempts/{start['id']}").json()
    assert mine["score"] == pytest.approx(2 / 3) and "answers" not in mine
    # Staff see each item's score.
    staff_view = org.client(Role.MANAGER).get(f"/api/v1/exams/{exam.pk}/attempts").json()
    answers = staff_view["results"][0]["answers"]
    assert [a["score"] for a in answers] == [0.0, 1.0, 1.0]
    # The annotator may not read the staff views.
    assert client.get(f"/api/v1/exams/{exam.pk}/attempts").status_code == 403
    assert client.get(f"/api/v1/exams/{exam.pk}").status_code == 403


def test_items_are_answered_in_order_once_each(org, exam):
    client = org.client(Role.ANNOTATOR)
    start = client.post(f"/api/v1/me/exams/{exam.pk}/attempts").json()
    first = client.post(f"/api/v1/me/exam-attempts/{start['id']}/claim")
    again = client.post(f"/api/v1/me/exam-attempts/{start['id']}/claim")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and first.json()["position"] == 0
    url = f"/api/v1/me/exam-answers/{first.json()['id']}/submit"
    assert client.post(url, {"payload": RIGHT}, format="json").status_code == 201
    assert client.post(url, {"payload": RIGHT}, format="json").status_code == 200
    other = client.post(url, {"payload": WRONG}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_submitted"
    second = client.post(f"/api/v1/me/exam-attempts/{start['id']}/claim").json()
    assert second["position"] == 1
    # Another attempt in progress is refused.
    refused = client.post(f"/api/v1/me/exams/{exam.pk}/attempts")
    assert refused.json()["error"]["code"] == "attempt_in_progress"


def test_a_bad_payload_is_refused_by_path_and_stores_nothing(org, exam):
    client = org.client(Role.ANNOTATOR)
    start = client.post(f"/api/v1/me/exams/{exam.pk}/attempts").json()
    claim = client.post(f"/api/v1/me/exam-attempts/{start['id']}/claim").json()
    bad = {"boxes": [CAR | {"x": 700}]}
    response = client.post(
        f"/api/v1/me/exam-answers/{claim['id']}/submit", {"payload": bad}, format="json"
    )
    assert response.status_code == 400
    assert any(path.startswith("payload.boxes[0]") for path in response.json()["error"]["fields"])
    answer = ExamAnswer.objects.get(pk=claim["id"])
    assert answer.submitted_at is None and answer.payload is None and answer.score is None


def test_a_bad_answer_is_refused_by_path_and_stores_nothing(org, domain):
    body = exam_body()
    body["items"][2] = {"data": DATA, "answer": {"boxes": [CAR | {"x": "left"}]}}
    body["items"][1] = {"data": {"image": "x"}, "answer": RIGHT}
    response = org.client(Role.MANAGER).post("/api/v1/exams", body, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "items[2].answer.boxes[0].x" in fields
    assert any(path.startswith("items[1].data") for path in fields)
    assert not Exam.objects.exists() and not ExamItem.objects.exists()


def test_an_exam_must_grant_something_and_a_certification_needs_a_domain(org, domain):
    manager = org.client(Role.MANAGER)
    body = exam_body(domain=None, skill_level=None)
    response = manager.post("/api/v1/exams", body, format="json")
    assert response.status_code == 400 and "domain" in response.json()["error"]["fields"]
    body = exam_body(certification_days=None, skill_level=None)
    response = manager.post("/api/v1/exams", body, format="json")
    assert response.status_code == 400
    assert "certification_days" in response.json()["error"]["fields"]
    unknown = org.client(Role.MANAGER).post(
        "/api/v1/exams", exam_body(domain="nowhere"), format="json"
    )
    assert unknown.status_code == 400 and "domain" in unknown.json()["error"]["fields"]


def test_staff_deactivate_an_exam_and_its_content_freezes_once_attempted(org, exam):
    manager = org.client(Role.MANAGER)
    annotator = org.client(Role.ANNOTATOR)
    annotator.post(f"/api/v1/me/exams/{exam.pk}/attempts")
    frozen = manager.patch(
        f"/api/v1/exams/{exam.pk}", {"items": [{"data": DATA, "answer": WRONG}]}, format="json"
    )
    assert frozen.status_code == 409 and frozen.json()["error"]["code"] == "frozen"
    off = manager.patch(f"/api/v1/exams/{exam.pk}", {"is_active": False}, format="json")
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert annotator.get("/api/v1/me/exams").json()["count"] == 0
    assert annotator.post(f"/api/v1/me/exams/{exam.pk}/attempts").status_code == 404


def test_another_organizations_exam_is_not_found(org, other_org, exam):
    outsider = other_org.client(Role.ANNOTATOR)
    assert outsider.get("/api/v1/me/exams").json()["count"] == 0
    assert outsider.post(f"/api/v1/me/exams/{exam.pk}/attempts").status_code == 404
    assert other_org.client(Role.MANAGER).get(f"/api/v1/exams/{exam.pk}").status_code == 404
    assert (
        other_org.client(Role.QA_LEAD).get(f"/api/v1/exams/{exam.pk}/attempts").status_code == 404
    )
    attempt = org.client(Role.ANNOTATOR).post(f"/api/v1/me/exams/{exam.pk}/attempts").json()
    assert outsider.post(f"/api/v1/me/exam-attempts/{attempt['id']}/claim").status_code == 404
    claim = org.client(Role.ANNOTATOR).post(f"/api/v1/me/exam-attempts/{attempt['id']}/claim")
    submit = outsider.post(
        f"/api/v1/me/exam-answers/{claim.json()['id']}/submit", {"payload": RIGHT}, format="json"
    )
    assert submit.status_code == 404
    # Nor a domain of another organization.
    services.domain_create(
        organization=other_org.organization,
        slug="theirs",
        name="Theirs",
        description="",
        actor=None,
    )
    response = org.client(Role.MANAGER).post(
        "/api/v1/exams", exam_body(domain="theirs"), format="json"
    )
    assert response.status_code == 400


def _run_at_once(count: int, work) -> tuple[list, list[BaseException]]:
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:  # collected and checked by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_create_one_attempt():
    org = Org("acme")
    domain = services.domain_create(
        organization=org.organization, slug="driving", name="Driving", description="", actor=None
    )
    body = exam_body()
    exam = exams.exam_create(
        organization=org.organization,
        actor=None,
        **{k: v for k, v in body.items() if k != "domain"},
        domain=domain,
    )
    results, errors = _run_at_once(
        6, lambda: exams.attempt_start(exam=exam, annotator=org.annotator)
    )
    assert len(results) == 1
    assert len(errors) == 5
    assert all(getattr(e, "code", None) == "attempt_in_progress" for e in errors), errors
    assert ExamAttempt.objects.filter(exam=exam).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_last_submissions_grant_once():
    org = Org("acme")
    domain = services.domain_create(
        organization=org.organization, slug="driving", name="Driving", description="", actor=None
    )
    body = exam_body(items=[{"data": DATA, "answer": RIGHT}])
    exam = exams.exam_create(
        organization=org.organization,
        actor=None,
        **{k: v for k, v in body.items() if k != "domain"},
        domain=domain,
    )
    attempt = exams.attempt_start(exam=exam, annotator=org.annotator)
    answer, _ = exams.attempt_claim(attempt=attempt)

    def submit():
        fresh = ExamAnswer.objects.select_related("attempt__exam", "item").get(pk=answer.pk)
        return exams.answer_submit(answer=fresh, payload=RIGHT)[1]

    results, errors = _run_at_once(4, submit)
    assert not errors, errors
    assert sorted(results) == [False, False, False, True]
    assert ExamAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.PASSED
    assert AuditEvent.objects.filter(verb=AuditVerb.EXAM_PASSED).count() == 1
    assert AuditEvent.objects.filter(verb=AuditVerb.CERTIFICATION_ISSUED).count() == 1
    assert AuditEvent.objects.filter(verb=AuditVerb.SKILL_SET).count() == 1


def test_creating_and_changing_an_exam_is_audited(org, exam):
    lead = org.client(Role.QA_LEAD)
    assert (
        lead.patch(f"/api/v1/exams/{exam.pk}", {"pass_threshold": 0.8}, format="json").status_code
        == 200
    )
    trail = list(
        AuditEvent.objects.filter(target_type="exam", target_id=exam.pk)
        .order_by("id")
        .values_list("verb", "before", "after")
    )
    assert [verb for verb, *_ in trail] == [AuditVerb.EXAM_CREATED, AuditVerb.EXAM_UPDATED]
    assert trail[0][2]["items"] == 3 and trail[0][2]["pass_threshold"] == 0.6
    assert (trail[1][1], trail[1][2]) == ({"pass_threshold": 0.6}, {"pass_threshold": 0.8})
