"""Quality rules that act (``qa.rules``): once per crossing, undone exactly, on PostgreSQL."""

import threading

import psycopg
import pytest
from django.db import connection

from qa.jobs import evaluate_quality_rules
from qa.models import (
    GoldScore,
    LiveEvent,
    LiveEventType,
    QualityAction,
    QualityRule,
    QualityRuleState,
    ReviewItem,
    ReviewLayer,
)
from qa.rules import quality_rule_create, quality_rules_evaluate, rules_for
from qa.verdicts import review_judge
from tasks.models import Annotation, ProjectMember
from tests.faults import broker_at
from tests.helpers import database_url, make_project
from tests.qa.gold_helpers import label_gold_project, label_gold_submit
from tests.qa.live_helpers import checked_event
from tests.qa.review_helpers import lease, verdict_project, waiting_item
from tests.qa.review_helpers import submit as review_submit
from workforce import services
from workforce.models import (
    AnnotatorSkill,
    AuditEvent,
    AuditVerb,
    Certification,
    Domain,
    PendingJob,
    Role,
)

pytestmark = pytest.mark.django_db

CLOSED_PORT = "redis://127.0.0.1:9/0"


def rule(org, project, **fields):
    fields = {
        "metric": "gold_recent_mean",
        "threshold": 0.8,
        "window": 5,
        "min_sample": 1,
        "action": "alert",
    } | fields
    return quality_rule_create(
        organization=org.organization,
        actor=org.qa_lead.user,
        project_id=project.pk if project else None,
        **fields,
    )


def submit(capture, project, annotator, *results: bool) -> None:
    for correct in results:
        with capture(execute=True):
            label_gold_submit(project, annotator, correct=correct)


def actions(**where):
    return list(QualityAction.objects.filter(**where).order_by("id"))


def test_a_rule_fires_once_per_crossing_and_again_after_recovery(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator, gold_tasks=20)
    watched = rule(org, project, min_sample=3)
    # Below the threshold from the first score, but under the minimum sample twice.
    submit(django_capture_on_commit_callbacks, project, org.annotator, False, False)
    assert actions() == []
    submit(django_capture_on_commit_callbacks, project, org.annotator, False, False, False)
    [first] = actions()
    assert (first.rule_id, first.metric, first.value, first.threshold) == (
        watched.pk,
        *("gold_recent_mean", 0.0, 0.8),
    )
    assert first.evidence["scores"] == [0.0, 0.0, 0.0]
    # Recovered: five right answers fill the window.
    submit(django_capture_on_commit_callbacks, project, org.annotator, *[True] * 5)
    assert len(actions()) == 1
    assert not QualityRuleState.objects.get(rule=watched).breached
    # Crossed again: [1, 1, 1, 0, 0] has mean 0.6.
    submit(django_capture_on_commit_callbacks, project, org.annotator, False, False)
    assert len(actions()) == 2
    assert actions()[1].evidence["scores"] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_the_firing_is_audited_with_its_evidence_and_alerts_staff_in_the_live_schema(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator)
    watched = rule(org, project)
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    [action] = actions()
    event = AuditEvent.objects.get(verb=AuditVerb.QUALITY_ACTION_APPLIED)
    assert event.actor is None and event.annotator_id == org.annotator.pk
    assert event.target_id == action.pk
    assert event.after["evidence"]["scores"] == [0.0]
    assert event.after["rule"] == watched.pk and event.after["value"] == 0.0
    alert = LiveEvent.objects.get(type=LiveEventType.QUALITY_ALERT)
    assert alert.staff and alert.member_id is None
    assert alert.organization_id == org.organization.pk
    checked_event(alert.type, alert.data, id=alert.pk)
    assert alert.data == {
        "action": action.pk,
        "rule": watched.pk,
        "annotator": org.annotator.pk,
        "project": project.pk,
        "metric": "gold_recent_mean",
        "value": 0.0,
        "threshold": 0.8,
        "effect": "alert",
    }


def test_the_wilson_lower_bound_waits_for_its_minimum_sample(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator)
    rule(org, project, metric="gold_lower_bound", threshold=0.5, min_sample=4)
    # Three right answers: the bound is 0.44, below 0.5, but the sample is 3.
    submit(django_capture_on_commit_callbacks, project, org.annotator, True, True, True)
    assert actions() == []
    # Four wrong of five... the fourth score fires (bound of 3/4 is 0.30).
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    [action] = actions()
    assert action.evidence["figures"]["scored"] == 4
    assert action.value == pytest.approx(0.3006, abs=1e-3)


def undo(org, action, reason="Reviewed by hand."):
    return org.client(Role.QA_LEAD).post(
        f"/api/v1/quality-actions/{action.pk}/undo", {"reason": reason}, format="json"
    )


def test_suspension_from_the_project_is_undone_exactly_and_audited(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator)
    rule(org, project, action="suspend_project")
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    member = ProjectMember.objects.get(project=project, annotator=org.annotator)
    assert not member.is_active
    [action] = actions()
    assert action.prior == {"is_active": True}
    response = undo(org, action)
    assert response.status_code == 200, response.json()
    member.refresh_from_db()
    assert member.is_active
    event = AuditEvent.objects.get(verb=AuditVerb.QUALITY_ACTION_REVERTED)
    assert (event.actor, event.reason) == (org.qa_lead.user, "Reviewed by hand.")
    assert event.before == {"is_active": False} and event.after == {"is_active": True}
    # Twice is a conflict that changes nothing.
    again = undo(org, action)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_undone"
    assert AuditEvent.objects.filter(verb=AuditVerb.QUALITY_ACTION_REVERTED).count() == 1


def test_undo_refuses_when_someone_changed_the_state_since(org, django_capture_on_commit_callbacks):
    project = label_gold_project(org, org.annotator)
    rule(org, project, action="suspend_project")
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    [action] = actions()
    ProjectMember.objects.filter(project=project).update(is_active=True)
    response = undo(org, action)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "superseded"
    assert "membership" in response.json()["error"]["message"]
    action.refresh_from_db()
    assert action.undone_at is None


def test_a_lowered_skill_is_put_back_to_its_level_and_source(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator)  # staffed at level 5, set by hand
    rule(org, project, action="lower_skill", parameter=2)
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    skill = AnnotatorSkill.objects.get(annotator=org.annotator, skill="classification")
    assert (skill.level, skill.source) == (3, "rule")
    [action] = actions()
    assert action.prior == {"skill": "classification", "level": 5, "source": "manual"}
    assert undo(org, action).status_code == 200
    skill.refresh_from_db()
    assert (skill.level, skill.source) == (5, "manual")


def test_lowering_stops_at_zero(org, django_capture_on_commit_callbacks):
    project = label_gold_project(org, org.annotator)
    rule(org, project, action="lower_skill", parameter=5)
    services.annotator_skill_set(
        annotator=org.annotator, skill="classification", level=5, source="manual", actor=None
    )
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    skill = AnnotatorSkill.objects.get(annotator=org.annotator, skill="classification")
    assert skill.level == 0


def test_suspended_certifications_are_reinstated(org, django_capture_on_commit_callbacks):
    services.domain_create(
        organization=org.organization,
        slug="legal",
        name="Legal",
        description="",
        actor=org.manager.user,
    )
    domain = Domain.objects.get(organization=org.organization, slug="legal")
    services.certification_issue(
        annotator=org.annotator,
        domain=domain,
        issued_by=org.qa_lead.user,
        evidence="exam",
        expires_at=None,
    )
    project = label_gold_project(org, org.annotator, required_domains=["legal"])
    rule(org, project, action="suspend_certification")
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    certification = Certification.objects.get(annotator=org.annotator, domain=domain)
    assert certification.status == "suspended"
    [action] = actions()
    assert undo(org, action).status_code == 200
    certification.refresh_from_db()
    assert certification.status == "active"
    verbs = list(
        AuditEvent.objects.filter(target_type="certification").values_list("verb", flat=True)
    )
    assert verbs.count(AuditVerb.CERTIFICATION_SUSPENDED) == 1
    assert verbs.count(AuditVerb.CERTIFICATION_REINSTATED) == 1


def test_a_project_rule_replaces_the_defaults_of_its_metric(org):
    watched = make_project(org, name="watched")
    other = make_project(org, name="other")
    default = rule(org, None, threshold=0.9)
    default_fast = rule(
        org, None, metric="fast_submissions", threshold=0.5, window=20, min_sample=10
    )
    own = rule(org, watched, threshold=0.5)
    assert {r.pk for r in rules_for(watched.pk)} == {own.pk, default_fast.pk}
    assert {r.pk for r in rules_for(other.pk)} == {default.pk, default_fast.pk}
    # An inactive project rule still replaces the default: that is how a project opts out.
    own.is_active = False
    own.save()
    assert {r.pk for r in rules_for(watched.pk)} == {default_fast.pk}


def test_the_project_rule_acts_where_the_default_would_have(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator)
    rule(org, None, threshold=0.9)
    own = rule(org, project, threshold=0.5, min_sample=2)
    submit(django_capture_on_commit_callbacks, project, org.annotator, True, False)
    # Mean 0.5: below the default's 0.9, not below the project's own 0.5.
    assert actions() == []
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    assert [a.rule_id for a in actions()] == [own.pk]


def test_fast_submissions_fire_against_the_project_median(org, django_capture_on_commit_callbacks):
    steady = org.add_annotator("steady")
    project = label_gold_project(org, org.annotator, steady, gold_tasks=30)
    submit(django_capture_on_commit_callbacks, project, steady, *[True] * 20)
    Annotation.objects.filter(annotator=steady).update(duration_seconds=100)
    submit(django_capture_on_commit_callbacks, project, org.annotator, True, True, True, True)
    Annotation.objects.filter(annotator=org.annotator).update(duration_seconds=10)
    watched = rule(
        org,
        project,
        metric="fast_submissions",
        threshold=0.5,
        window=10,
        min_sample=4,
        fast_fraction=0.25,
    )
    assert quality_rules_evaluate(annotator_id=steady.pk, project_id=project.pk) == 0
    assert quality_rules_evaluate(annotator_id=org.annotator.pk, project_id=project.pk) == 1
    [action] = actions()
    assert action.rule_id == watched.pk and action.value == 1.0
    assert action.evidence["median_seconds"] == 100 and action.evidence["fast"] == 4
    # Still fast: no second action for the same crossing.
    assert quality_rules_evaluate(annotator_id=org.annotator.pk, project_id=project.pk) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_fire_once(org):
    project = label_gold_project(org, org.annotator)
    for _ in range(3):
        label_gold_submit(project, org.annotator, correct=False)  # no rule yet: nothing fires
    rule(org, project, action="suspend_project", min_sample=3)
    # A second rule: each evaluation creates, then locks, both states in one transaction.
    rule(org, None, metric="gold_lower_bound", threshold=0.9, min_sample=3)
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    fired, errors = [], []

    def evaluate():
        try:
            barrier.wait()
            fired.append(
                quality_rules_evaluate(annotator_id=org.annotator.pk, project_id=project.pk)
            )
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(fired) == [0] * (threads_n - 1) + [2]
    assert QualityAction.objects.count() == 2
    assert AuditEvent.objects.filter(verb=AuditVerb.QUALITY_ACTION_APPLIED).count() == 2
    assert LiveEvent.objects.filter(type=LiveEventType.QUALITY_ALERT).count() == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"metric": "gold_recent_mean", "threshold": 0, "action": "alert"}, {"threshold"}),
        (
            {"metric": "fast_submissions", "threshold": 1, "action": "alert", "window": 10},
            {"threshold"},
        ),
        (
            {"metric": "gold_recent_mean", "threshold": 0.8, "window": 51, "action": "alert"},
            {"window"},
        ),
        (
            {"metric": "gold_recent_mean", "threshold": 0.8, "window": 5, "min_sample": 6,
             "action": "alert"},
            {"min_sample"},
        ),
        ({"metric": "gold_recent_mean", "threshold": 0.8, "action": "lower_skill"}, {"parameter"}),
        (
            {"metric": "gold_recent_mean", "threshold": 0.8, "action": "raise_gold_rate",
             "parameter": 1.5},
            {"parameter"},
        ),
        (
            {"metric": "gold_recent_mean", "threshold": 0.8, "action": "alert", "parameter": 2},
            {"parameter"},
        ),
        ({"metric": "nope", "threshold": 2, "action": "alert"}, {"metric", "threshold"}),
        (
            {"metric": "gold_recent_mean", "threshold": 0.8, "action": "alert",
             "project": 999999},
            {"project"},
        ),
        (
            {"metric": "review_recent_mean", "threshold": 0.8, "window": 51, "action": "alert"},
            {"window"},
        ),
        ({"metric": "review_recent_mean", "threshold": 0, "action": "alert"}, {"threshold"}),
        (
            {"metric": "review_recent_mean", "threshold": 0.8, "action": "raise_review_rate"},
            {"parameter"},
        ),
        (
            {"metric": "review_recent_mean", "threshold": 0.8, "action": "raise_review_rate",
             "parameter": 0},
            {"parameter"},
        ),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_naming_each_field(org, body, fields):
    response = org.client(Role.MANAGER).post("/api/v1/quality-rules", body, format="json")
    assert response.status_code == 400, response.json()
    assert set(response.json()["error"]["fields"]) == fields
    assert not QualityRule.objects.exists()


def test_staff_create_change_list_and_delete_rules(org):
    project = make_project(org)
    lead = org.client(Role.QA_LEAD)
    created = lead.post(
        "/api/v1/quality-rules",
        {"project": project.pk, "metric": "gold_lower_bound", "threshold": 0.6,
         "action": "lower_skill", "parameter": 1},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert created.json()["project"] == project.pk
    changed = org.client(Role.MANAGER).patch(
        f"/api/v1/quality-rules/{pk}",
        {"action": "alert", "parameter": None, "threshold": 0.7},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["action"], changed.json()["threshold"]) == ("alert", 0.7)
    # The action's parameter must go with it.
    refused = lead.patch(f"/api/v1/quality-rules/{pk}", {"action": "lower_skill"}, format="json")
    assert set(refused.json()["error"]["fields"]) == {"parameter"}
    fixed = lead.patch(f"/api/v1/quality-rules/{pk}", {"metric": "fast_submissions"}, format="json")
    assert set(fixed.json()["error"]["fields"]) == {"metric"}
    assert lead.get("/api/v1/quality-rules").json()["count"] == 1
    assert org.client(Role.ANNOTATOR).get("/api/v1/quality-rules").status_code == 403
    assert lead.delete(f"/api/v1/quality-rules/{pk}").status_code == 204
    assert not QualityRule.objects.exists()
    # Each change of a rule is audited with who made it and what it changed.
    trail = list(
        AuditEvent.objects.filter(target_type="qualityrule", target_id=pk)
        .order_by("id")
        .values_list("verb", "actor__username", "before", "after")
    )
    assert [verb for verb, *_ in trail] == [
        AuditVerb.QUALITY_RULE_CREATED,
        AuditVerb.QUALITY_RULE_UPDATED,
        AuditVerb.QUALITY_RULE_DELETED,
    ]
    assert trail[1][3] == {"action": "alert", "parameter": None, "threshold": 0.7}
    assert trail[1][2]["action"] == "lower_skill" and trail[1][1] == org.manager.user.username
    assert trail[2][2]["action"] == "alert"


def test_actions_are_listed_per_project_and_annotator_and_only_qa_leads_undo(
    org, django_capture_on_commit_callbacks
):
    project = label_gold_project(org, org.annotator)
    rule(org, project)
    submit(django_capture_on_commit_callbacks, project, org.annotator, False)
    [action] = actions()
    manager = org.client(Role.MANAGER)
    by_project = manager.get(f"/api/v1/projects/{project.pk}/quality-actions")
    by_annotator = manager.get(f"/api/v1/annotators/{org.annotator.pk}/quality-actions")
    assert [a["id"] for a in by_project.json()["results"]] == [action.pk]
    assert [a["id"] for a in by_annotator.json()["results"]] == [action.pk]
    assert by_project.json()["results"][0]["evidence"]["scores"] == [0.0]
    refused = manager.post(f"/api/v1/quality-actions/{action.pk}/undo", {"reason": "x"})
    assert refused.status_code == 403
    assert (
        org.client(Role.ANNOTATOR).get(f"/api/v1/projects/{project.pk}/quality-actions").status_code
        == 403
    )
    # An alert changed nothing; undoing it records that a QA lead overruled it.
    assert undo(org, action).status_code == 200
    blank = org.client(Role.QA_LEAD).post(
        f"/api/v1/quality-actions/{action.pk}/undo", {"reason": " "}, format="json"
    )
    assert blank.status_code == 400


def test_another_organizations_rules_and_actions_are_not_found(
    org, other_org, django_capture_on_commit_callbacks
):
    project = label_gold_project(other_org, other_org.annotator)
    theirs = rule(other_org, project)
    submit(django_capture_on_commit_callbacks, project, other_org.annotator, False)
    [action] = actions()
    lead = org.client(Role.QA_LEAD)
    assert lead.get(f"/api/v1/quality-rules/{theirs.pk}").status_code == 404
    assert (
        lead.patch(
            f"/api/v1/quality-rules/{theirs.pk}", {"threshold": 0.5}, format="json"
        ).status_code
        == 404
    )
    assert lead.delete(f"/api/v1/quality-rules/{theirs.pk}").status_code == 404
    assert lead.get("/api/v1/quality-rules").json()["count"] == 0
    assert lead.get(f"/api/v1/projects/{project.pk}/quality-actions").status_code == 404
    assert (
        lead.get(f"/api/v1/annotators/{other_org.annotator.pk}/quality-actions").status_code == 404
    )
    assert undo(org, action).status_code == 404
    # A rule for their project is refused as an unknown project.
    refused = lead.post(
        "/api/v1/quality-rules",
        {"project": project.pk, "metric": "gold_recent_mean", "threshold": 0.8,
         "action": "alert"},
        format="json",
    )  # fmt: skip
    assert set(refused.json()["error"]["fields"]) == {"project"}


def reject_twice(org, project, capture) -> None:
    """Two of the annotator's submissions rejected at the review layer, with the jobs the
    verdicts queue run after each commit."""
    for _ in range(2):
        item = lease(waiting_item(review_submit(org.annotator, project)), org.qa_lead)
        with capture(execute=True):
            review_judge(
                item=item,
                reviewer=org.qa_lead,
                verdict="reject",
                tags=["wrong-label"],
                comment="No.",
            )


def gold_failed(org, capture):
    """A project where every claim is gold, and a rule raising the gold rate to 0.5 that the
    annotator's one wrong gold answer fires."""
    project = label_gold_project(org, org.annotator, gold_rate=0.1)
    # Every claim gold regardless: the newcomer rate.
    project.newcomer_gold_rate, project.newcomer_gold_tasks = 1.0, 100
    project.save()
    rule(org, project, action="raise_gold_rate", parameter=0.5)
    return project, lambda: submit(capture, project, org.annotator, False)


def reviews_failed(org, capture):
    """A review project, and a rule raising the review rate to 0.5 that two rejections of the
    annotator's work fire."""
    project = verdict_project(org, org.annotator, tasks=4)
    rule(
        org,
        project,
        metric="review_recent_mean",
        threshold=0.8,
        window=3,
        min_sample=2,
        action="raise_review_rate",
        parameter=0.5,
    )
    return project, lambda: reject_twice(org, project, capture)


# The two actions that raise a rate of the annotator's project membership: which membership
# field, and how a project and its firing are made.
RAISED_RATES = pytest.mark.parametrize(
    ("field", "fired"),
    [("gold_rate", gold_failed), ("review_rate", reviews_failed)],
    ids=["gold", "review"],
)


@RAISED_RATES
def test_a_raised_rate_goes_back_to_its_prior_value(
    org, django_capture_on_commit_callbacks, field, fired
):
    project, fire = fired(org, django_capture_on_commit_callbacks)
    fire()
    member = ProjectMember.objects.get(project=project, annotator=org.annotator)
    assert getattr(member, field) == 0.5
    [action] = actions()
    assert (action.prior, action.after) == ({field: None}, {field: 0.5})
    assert undo(org, action).status_code == 200
    member.refresh_from_db()
    assert getattr(member, field) is None


@RAISED_RATES
def test_undoing_a_raised_rate_refuses_when_it_was_changed_since(
    org, django_capture_on_commit_callbacks, field, fired
):
    project, fire = fired(org, django_capture_on_commit_callbacks)
    fire()
    [action] = actions()
    ProjectMember.objects.filter(project=project).update(**{field: 0.7})
    response = undo(org, action)
    assert response.status_code == 409 and response.json()["error"]["code"] == "superseded"
    assert field.replace("_", " ") in response.json()["error"]["message"]
    assert (
        getattr(ProjectMember.objects.get(project=project, annotator=org.annotator), field) == 0.7
    )


@RAISED_RATES
def test_a_rate_already_as_high_is_left_alone(
    org, django_capture_on_commit_callbacks, field, fired
):
    project, fire = fired(org, django_capture_on_commit_callbacks)
    ProjectMember.objects.filter(project=project).update(**{field: 0.95})
    fire()
    [action] = actions()
    assert action.prior == {} and "already" in action.effect
    assert (
        getattr(ProjectMember.objects.get(project=project, annotator=org.annotator), field) == 0.95
    )


def test_a_raised_review_rate_is_every_layers_minimum_and_says_so(
    org, django_capture_on_commit_callbacks
):
    project, fire = reviews_failed(org, django_capture_on_commit_callbacks)
    fire()
    ReviewLayer.objects.filter(project=project).update(sample_rate=0.1)
    item = ReviewItem.objects.filter(annotation=review_submit(org.annotator, project)).get()
    assert (item.rate, item.basis) == (0.5, "raised")
    [action] = actions()
    assert (action.metric, action.value, action.evidence["scores"]) == (
        "review_recent_mean",
        0.0,
        [0.0, 0.0],
    )


@pytest.mark.django_db(transaction=True)
def test_the_rules_act_after_the_gold_submission_commits_without_a_worker(eager_jobs_off, org):
    project = label_gold_project(org, org.annotator)
    watched = rule(org, project)
    with broker_at(CLOSED_PORT):
        label_gold_submit(project, org.annotator, correct=False)
    assert [action.rule_id for action in actions()] == [watched.pk]
    assert not PendingJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_suspension_is_in_force_when_the_submit_that_caused_it_answers(eager_jobs_off, org):
    project = label_gold_project(org, org.annotator)
    rule(org, project, action="suspend_project")
    client = org.client(Role.ANNOTATOR)
    with broker_at(CLOSED_PORT):
        claimed = client.post("/api/v1/claims/", {"project": project.pk})
        assert claimed.status_code == 201
        submitted = client.post(
            f"/api/v1/assignments/{claimed.json()['id']}/submit/", {"payload": {"label": "person"}}
        )
        assert submitted.status_code == 201
        again = client.post("/api/v1/claims/", {"project": project.pk})
    assert again.status_code == 200 and again.json()["outcome"] == "no_projects"
    assert not ProjectMember.objects.get(project=project, annotator=org.annotator).is_active


@pytest.mark.django_db(transaction=True)
def test_an_evaluation_that_fails_after_the_submission_goes_to_the_workers(eager_jobs_off, org):
    """The rules are evaluated in the process that scored the gold submission, after its
    commit: an evaluation that fails there (here a rule's state held past the lock timeout)
    leaves the submission stored and scored, and its job waits for the workers (pending, with
    the broker down too), where it fires."""
    project = label_gold_project(org, org.annotator)
    watched = rule(org, project)
    label_gold_submit(project, org.annotator, correct=True)  # within; the state now exists
    with psycopg.connect(database_url(), autocommit=False) as holder:
        holder.execute(
            "SELECT 1 FROM qa_qualityrulestate WHERE rule_id = %s FOR UPDATE", [watched.pk]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            with broker_at(CLOSED_PORT):
                annotation = label_gold_submit(project, org.annotator, correct=False)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    assert GoldScore.objects.get(annotation=annotation).score == 0.0
    pending = PendingJob.objects.get()
    assert (pending.name, pending.args) == (
        "qa.evaluate_quality_rules",
        [org.annotator.pk, project.pk],
    )
    assert actions() == []
    assert evaluate_quality_rules(*pending.args) == 1
    assert [action.rule_id for action in actions()] == [watched.pk]


def test_an_evaluation_after_each_gold_score_costs_a_few_statements(
    org, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """It runs after every scored gold submission: once the rules' states exist, the states
    locked with the rules that watch the project, the rules read again, and what their metrics
    read (the accuracy row once for both gold metrics), in one transaction (a savepoint here);
    the project is read only when a rule fires."""
    project = label_gold_project(org, org.annotator, gold_tasks=5)
    rule(org, project, threshold=0.1)
    rule(org, None, metric="gold_lower_bound", threshold=0.1)
    submit(django_capture_on_commit_callbacks, project, org.annotator, True)
    with django_assert_num_queries(2 + 3):
        fired = quality_rules_evaluate(annotator_id=org.annotator.pk, project_id=project.pk)
    assert fired == 0
    # Nothing for a project or an annotator that no longer exists.
    assert quality_rules_evaluate(annotator_id=org.annotator.pk, project_id=10**12) == 0
    assert quality_rules_evaluate(annotator_id=10**12, project_id=project.pk) == 0
