"""The admin reads every model and writes none that the services must write."""

import io

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files import File
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from rest_framework.authtoken.models import Token, TokenProxy

from qa.agreement_report import project_agreement_report
from qa.exams import answer_submit, attempt_claim, attempt_start, exam_create
from qa.gold import gold_rescore_due
from qa.models import (
    ErrorTag,
    Review,
    ReviewAccuracy,
    ReviewItem,
    ReviewItemState,
    ReviewLayer,
    SamplingBasis,
    Verdict,
)
from qa.rules import quality_rule_create, quality_rules_evaluate
from qa.stats import CLAIMS_SETTLE, claims_roll_up
from qa.task_agreement import task_agreement_compute
from tasks.models import AnnotationVersion
from tasks.services.claims import assignment_submit, claim_next
from tasks.services.imports import task_import_start
from tests.helpers import Org, image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Organization, PendingJob

pytestmark = pytest.mark.django_db

User = get_user_model()

# The models a superuser may edit in the admin, and why that is safe. Every other registered
# model must be read-only there.
SAFE_TO_EDIT = {
    Organization: "the tenant's name and slug: nothing is audited or copied from them "
    "(deleting one is refused)",
    User: "accounts, passwords and staff flags; a person's role and status live on Member, "
    "which is read-only (deleting a user is refused: it would drop memberships unaudited)",
    Group: "Django permission groups, which Assay's roles do not use",
    TokenProxy: "API tokens: issuing and revoking credentials is what the admin is for",
    PeriodicTask: "when beat queues a job; jobs are idempotent and audit their own changes",
    IntervalSchedule: "a beat schedule",
    CrontabSchedule: "a beat schedule",
    SolarSchedule: "a beat schedule",
    ClockedSchedule: "a beat schedule",
}

# A changelist's queries: session, user, the page, its count, and one per filter or date level.
MAX_CHANGELIST_QUERIES = 10
# A change page's: the row, each related row it names, each inline.
MAX_CHANGE_QUERIES = 12


def build_world(slug: str) -> None:
    """At least one row of every registered model, through the services where they exist."""
    org = Org(slug)
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    services.certification_issue(
        annotator=org.annotator,
        domain=domain,
        issued_by=org.qa_lead.user,
        evidence="exam",
        expires_at=None,
    )
    services.invitation_create(
        organization=org.organization, login="someone@elsewhere", role="annotator", actor=None
    )
    project = make_project(org, overlap=2)
    import_rows(project, image_rows(3))
    second = org.add_annotator(f"{slug}-second")
    staff(project, org.annotator, second)
    for annotator in (org.annotator, second):
        claimed = claim_next(annotator=annotator).claimed
        assignment = project.assignments.get(pk=claimed.assignment_id)
        payload = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 30, "h": 40}]}
        assignment_submit(assignment=assignment, payload=payload)
    # What the completed task's agreement job and a QA lead's report store.
    task_agreement_compute(task_id=assignment.task_id)
    project_agreement_report(project=project)
    claim_next(annotator=org.annotator)
    # The claims roll-up's cursor (the submissions wrote their hourly stats).
    claims_roll_up(now=timezone.now() + CLAIMS_SETTLE)
    build_quality(org, domain, second)
    upload = File(io.BytesIO(b'{"external_id": "late", "data": {"width": 1, "height": 1}}\n'))
    task_import_start(project=project, upload=upload, fmt="jsonl", actor=org.manager.user)
    Token.objects.create(user=org.manager.user)
    # As the queue records a job the broker refused.
    PendingJob.objects.create(name="tasks.add_overlap_seats", args=[project.pk], error="down")
    # Configuration rows of Django and celery beat, made as their own admins would.
    Group.objects.create(name=f"{slug}-auditors")
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name=f"{slug} expiry", task="noop", interval=every_hour)
    CrontabSchedule.objects.create(minute="5")
    SolarSchedule.objects.create(event="sunrise", latitude=org.organization.pk % 90, longitude=11)
    ClockedSchedule.objects.create(clocked_time=timezone.now())


def build_quality(org, domain, second) -> None:
    """A scored gold task, a rule that acted on it, and an exam taken: quality's rows."""
    project = make_project(org, name="gold checks", gold_rate=1.0)
    rows = image_rows(2)
    rows[1]["gold_answer"] = {"boxes": [{"label": "car", "x": 1, "y": 2, "w": 30, "h": 40}]}
    import_rows(project, rows)
    staff(project, second)
    quality_rule_create(
        organization=org.organization,
        actor=None,
        project_id=project.pk,
        metric="gold_recent_mean",
        threshold=0.99,
        window=1,
        min_sample=1,
        action="alert",
    )
    claimed = claim_next(annotator=second, project_id=project.pk).claimed
    assignment = project.assignments.get(pk=claimed.assignment_id)
    assignment_submit(assignment=assignment, payload={"boxes": []})
    assert quality_rules_evaluate(annotator_id=second.pk, project_id=project.pk) == 1
    gold_rescore_due(assignment.task_id)  # as a corrected answer leaves it until rescored
    exam = exam_create(
        organization=org.organization,
        actor=None,
        name="Legal basics",
        kind="classification",
        label_schema={"labels": [{"name": "ok"}, {"name": "bad"}]},
        items=[{"data": {"text": "a clause"}, "answer": {"label": "ok"}}],
        pass_threshold=0.5,
        domain=domain,
        certification_days=365,
    )
    answer, _ = attempt_claim(attempt=attempt_start(exam=exam, annotator=second))
    answer_submit(answer=answer, payload={"label": "ok"})
    build_review(project, org, assignment.annotation)


def build_review(project, org, annotation) -> None:
    """A review layer, an error tag, and one verdict on an annotation: review's rows."""
    now = timezone.now()
    layer = ReviewLayer.objects.create(project=project, position=1, name="first", sample_rate=1.0)
    ErrorTag.objects.create(project=project, code="missed-object")
    author = annotation.annotator.member
    reviewer = org.organization.members.exclude(pk=author.pk).first()
    item = ReviewItem.objects.create(
        annotation=annotation,
        version=annotation.version,
        layer=layer,
        project=project,
        task=annotation.task,
        author_member=author,
        sampled=True,
        rate=1.0,
        basis=SamplingBasis.NEWCOMER,
        arrived_at=now,
        state=ReviewItemState.DONE,
        reviewer=reviewer,
    )
    Review.objects.create(
        item=item,
        annotation=annotation,
        version=annotation.version,
        layer=layer,
        project=project,
        author_member=author,
        reviewer=reviewer,
        verdict=Verdict.REJECT,
        tags=["missed-object"],
        score=0.0,
        created_at=now,
    )
    ReviewAccuracy.objects.create(
        annotator=annotation.annotator, project=project, reviewed=1, score_sum=0.0, updated_at=now
    )
    # The rejected payload, as a resubmission keeps it.
    AnnotationVersion.objects.create(
        annotation=annotation, version=1, payload=annotation.payload, submitted_at=now
    )


@pytest.fixture
def superuser_client(client):
    superuser = User.objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(superuser)
    return client


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _rows(model) -> list[dict]:
    return list(model._default_manager.order_by("pk").values())


def _count_queries(client, url: str) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return len(queries), response


def test_every_model_of_ours_is_in_the_admin():
    registered = set(admin.site._registry)
    ours = {
        model
        for app in ("workforce", "tasks", "qa")
        for model in apps.get_app_config(app).get_models()
    }
    assert ours <= registered, sorted(m.__name__ for m in ours - registered)


def test_every_admin_model_is_read_only_unless_listed_as_safe_to_edit(superuser_client):
    build_world("acme")
    read_only = [model for model in admin.site._registry if model not in SAFE_TO_EDIT]
    assert read_only
    for model in read_only:
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {model.__name__} row to try to change"
        before = _rows(model)
        edits = {
            field.attname: "changed"
            for field in model._meta.concrete_fields
            if not field.primary_key
        }
        attempts = {
            "add": (_url(model, "add"), edits),
            "change": (_url(model, "change", obj.pk), edits),
            "delete": (_url(model, "delete", obj.pk), {"post": "yes"}),
        }
        for view, (url, data) in attempts.items():
            assert superuser_client.post(url, data).status_code == 403, (model.__name__, view)
        # Nor can the list's bulk actions delete: the action is not offered.
        superuser_client.post(
            _url(model, "changelist"),
            {"action": "delete_selected", ACTION_CHECKBOX_NAME: [obj.pk], "post": "yes"},
        )
        assert _rows(model) == before, model.__name__


def test_deleting_a_user_or_an_organization_is_refused(superuser_client):
    build_world("acme")
    user = User.objects.get(username="acme-manager@acme")
    organization = Organization.objects.get(slug="acme")
    assert superuser_client.post(_url(User, "delete", user.pk), {"post": "yes"}).status_code == 403
    url = _url(Organization, "delete", organization.pk)
    assert superuser_client.post(url, {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=user.pk).exists()
    assert Organization.objects.filter(pk=organization.pk).exists()


def test_every_admin_page_renders_with_a_bounded_number_of_queries(superuser_client):
    build_world("acme")
    counts = {}
    for model in admin.site._registry:
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {model.__name__} row to show"
        queries, response = _count_queries(superuser_client, _url(model, "changelist"))
        assert response.status_code == 200, model.__name__
        assert response.context["cl"].result_count >= 1, model.__name__
        assert queries <= MAX_CHANGELIST_QUERIES, (model.__name__, queries)
        counts[model] = queries
        queries, response = _count_queries(superuser_client, _url(model, "change", obj.pk))
        assert response.status_code == 200, model.__name__
        assert queries <= MAX_CHANGE_QUERIES, (model.__name__, queries)
    # More rows on every page, the same queries: no list reads a related row per row.
    build_world("globex")
    grown = {
        model: _count_queries(superuser_client, _url(model, "changelist"))[0] for model in counts
    }
    assert grown == counts
