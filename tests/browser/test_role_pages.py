"""The pages of the three roles, driven in Chromium against the real server: the annotator
claims and submits, the QA lead's dashboard follows live, the manager staffs a project, and
each page refuses the roles it is not for.

Every page is kept as a screenshot (test-artifacts/screenshots/) to look at.
"""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from qa.exams import exam_create
from qa.models import QualityAction, ReviewItem
from qa.rules import quality_rule_create
from qa.stats import stats_add
from qa.task_agreement import task_agreement_compute
from qa.verdicts import review_judge
from tasks.models import Annotation, ProjectMember, Task
from tests.helpers import image_rows, import_rows, make_project, staff
from tests.qa.agreement_helpers import crowd_project, work
from tests.qa.gold_helpers import label_gold_project, label_gold_submit
from tests.qa.review_helpers import TAGS, layer, lease, set_policy
from workforce import services

# The server is another process: it sees only what the test has committed.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Instructions are a manager's markdown, shown to annotators: markup in them stays text.
INSTRUCTIONS = (
    "# Vehicles\n"
    "Label **cars** only; a van is a `car`.\n\n"
    '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'
)
LIVE_WITHIN_MS = 2_000


def alert_rule(org, project, **fields):
    return quality_rule_create(
        organization=org.organization,
        actor=org.qa_lead.user,
        project_id=project.pk,
        **{"metric": "gold_recent_mean", "threshold": 0.8, "window": 5, "min_sample": 1}
        | {"action": "alert"}
        | fields,
    )


def test_an_annotators_submission_reaches_the_qa_leads_dashboard_live_without_a_reload(
    org, signed_in
):
    project = label_gold_project(org, org.annotator, instructions=INSTRUCTIONS)
    alert_rule(org, project)
    lead = signed_in(org.qa_lead.user)
    lead.page.goto(f"/qa/projects/{project.pk}/")
    row = lead.page.locator(f'#leaderboard tr[data-annotator="{org.annotator.pk}"]')
    expect(row).to_contain_text("acme-annotator")
    expect(lead.page.locator("#live")).to_have_text("Live")
    scored = row.locator("td").nth(3)
    expect(scored).to_have_text("0")
    # No work yet: the stats columns say so, nothing is made up.
    per_hour = row.locator("td").nth(5)
    expect(per_hour).to_have_text("—")
    lead.page.evaluate("window.notReloaded = true")

    worker = signed_in(org.annotator_member.user)
    worker.page.goto("/work/")
    expect(worker.page.get_by_role("banner").get_by_role("link", name="Work")).to_be_visible()
    # Their own throughput today, live: nothing yet.
    today = worker.page.locator("#today")
    expect(worker.page.locator("#live")).to_have_text("Live")
    expect(today).to_contain_text("0submitted")
    expect(worker.page.locator("#today-per-hour")).to_have_text("—")
    worker.page.evaluate("window.notReloaded = true")
    worker.page.get_by_role("button", name="Claim next task").click()
    instructions = worker.page.locator("#instructions")
    expect(instructions.get_by_role("heading", name="Vehicles")).to_be_visible()
    expect(instructions.locator("strong")).to_have_text("cars")
    expect(instructions).to_contain_text('<img src="x" onerror="window.pwned = 2">')
    expect(worker.page.locator("#lease")).to_contain_text("left")
    worker.page.get_by_label("person").check()  # wrong: the gold answer is "car"
    worker.screenshot("work-task-classification")
    worker.page.get_by_role("button", name="Submit and stop").click()
    submitted = time.monotonic()

    expect(worker.page.locator("#work-notice")).to_contain_text("Submitted")
    # The annotator's Today follows their submission (a gold task, counted as any other).
    expect(worker.page.locator("#today-submitted")).to_have_text("1", timeout=LIVE_WITHIN_MS)
    expect(worker.page.locator("#today-per-hour")).to_have_text("1.0")
    expect(worker.page.locator("#today-median")).to_have_text(re.compile(r"^≤ \d+ (s|min)$"))
    expect(scored).to_have_text("1", timeout=LIVE_WITHIN_MS)
    expect(row.locator('td[data-key="live"]')).to_have_text("1", timeout=LIVE_WITHIN_MS)
    expect(lead.page.locator("#stat-live")).to_have_text("1", timeout=LIVE_WITHIN_MS)
    # Their stats of the hour follow (stats.updated), as the next snapshot would give them.
    expect(row.locator('td[data-key="hour"]')).to_have_text("1", timeout=LIVE_WITHIN_MS)
    # Its hourly stats, read again after the submission: one in the hour worked.
    expect(per_hour).to_have_text("1.0", timeout=LIVE_WITHIN_MS)
    # The wrong answer crossed the rule: the alert shows at once.
    alert = lead.page.locator("#alerts li").first
    expect(alert).to_contain_text("acme-annotator", timeout=LIVE_WITHIN_MS)
    expect(alert).to_contain_text("gold_recent_mean 0.00 crossed 0.80")
    assert time.monotonic() - submitted < LIVE_WITHIN_MS / 1000 + 1  # the click's own round trip
    assert lead.page.evaluate("window.notReloaded") is True
    assert worker.page.evaluate("window.notReloaded") is True
    assert worker.page.evaluate("window.pwned") is None
    worker.screenshot("work-submitted")
    lead.screenshot("qa-project-live")
    assert lead.errors == [] and worker.errors == []
    assert lead.offsite_requests() == [] and worker.offsite_requests() == []


def test_the_annotator_sees_the_servers_validation_error_by_path_and_nothing_is_stored(
    org, signed_in
):
    project = make_project(org, name="Street scenes", instructions="Box every **car**.")
    import_rows(project, image_rows(2))
    staff(project, org.annotator)
    domain = services.domain_create(
        organization=org.organization, slug="driving", name="Driving", description="", actor=None
    )
    services.certification_issue(
        annotator=org.annotator,
        domain=domain,
        issued_by=org.qa_lead.user,
        evidence="Passed the road-scene exam.",
        expires_at=timezone.now() + timedelta(days=12),
    )
    exam_create(
        organization=org.organization,
        actor=None,
        name="Road scenes",
        kind="classification",
        label_schema={"labels": [{"name": "car"}, {"name": "person"}]},
        items=[{"data": {"text": "a car"}, "answer": {"label": "car"}}],
        pass_threshold=0.8,
        domain=domain,
        certification_days=365,
    )
    worker = signed_in(org.annotator_member.user)
    page = worker.page
    page.goto("/work/")
    expect(page.locator("#certifications")).to_contain_text("driving")
    expect(page.locator("#certifications")).to_contain_text("(in 12 days)")
    expect(page.locator("#exams")).to_contain_text("Road scenes")
    expect(page.locator("#accuracy")).to_contain_text("No gold checks counted yet")
    page.get_by_role("button", name="Claim next task").click()
    editor = page.get_by_label("Answer (bbox payload, JSON)")
    editor.fill('{"boxes": [{"label": "car", "x": 1, "y": 1, "w": 0, "h": 5}]}')
    first_task = page.locator("#task-id").text_content()

    page.get_by_role("button", name="Submit and next").click()

    errors = page.locator("#answer-errors")
    expect(errors.locator("li")).to_contain_text(["payload.boxes[0].w: "])
    worker.screenshot("work-validation-error")
    assert not Annotation.objects.filter(annotator=org.annotator).exists()
    # Still holding the task: the fixed answer goes in.
    editor.fill('{"boxes": [{"label": "car", "x": 1, "y": 1, "w": 30, "h": 20}]}')
    page.get_by_role("button", name="Submit and next").click()
    # The next task came with the submission, in the same request: no claim to click.
    expect(page.locator("#work-notice")).to_contain_text("Submitted. Here is your next task.")
    expect(page.locator("#task-id")).not_to_have_text(first_task)
    expect(page.locator("#today-submitted")).to_have_text("1")
    assert Annotation.objects.filter(annotator=org.annotator).count() == 1
    worker.screenshot("work-next-task")
    editor.fill('{"boxes": [{"label": "car", "x": 2, "y": 2, "w": 30, "h": 20}]}')
    page.get_by_role("button", name="Submit and next").click()
    # The last one: stored, and the page says why no task came with it.
    expect(page.locator("#work-notice")).to_have_text(
        "Submitted. No task is available for you right now."
    )
    expect(page.locator("#task")).to_be_hidden()
    expect(page.locator("#today-submitted")).to_have_text("2")
    assert Annotation.objects.filter(annotator=org.annotator).count() == 2
    # A 400 is an answer the page shows, not an error of the page; the console says so alone.
    assert [e for e in worker.errors if "status of 400" not in e] == []


def test_the_qa_lead_follows_an_annotator_live_and_undoes_an_automatic_action(org, signed_in):
    project = label_gold_project(org, org.annotator)
    alert_rule(org, project, action="suspend_project")
    label_gold_submit(project, org.annotator, correct=False)  # the rule suspends them here
    action = QualityAction.objects.get(annotator=org.annotator)
    lead = signed_in(org.qa_lead.user)
    page = lead.page
    page.goto(f"/qa/projects/{project.pk}/annotators/{org.annotator.pk}/")
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator("#fig-n")).to_have_text("1")
    item = page.locator(f'#actions li[data-action="{action.pk}"]')
    expect(item).to_contain_text("gold_recent_mean 0.00 crossed 0.80")
    expect(page.locator("#audit")).to_contain_text("acme-annotator")

    item.get_by_label("Reason to undo").fill("The gold task was ambiguous.")
    item.get_by_role("button", name="Undo").click()

    expect(item).to_contain_text("Undone")
    expect(item).to_contain_text("The gold task was ambiguous.")
    action.refresh_from_db()
    assert action.undone_at is not None and action.undone_by == org.qa_lead.user
    # Back on the project: their gold scores arrive live, in the table and the chart.
    assert ProjectMember.objects.get(project=project, annotator=org.annotator).is_active
    for correct in (True, True):
        label_gold_submit(project, org.annotator, correct=correct)
    expect(page.locator("#gold tbody tr")).to_have_count(3, timeout=LIVE_WITHIN_MS)
    expect(page.locator("#fig-n")).to_have_text("3", timeout=LIVE_WITHIN_MS)
    expect(page.locator("#trend .scatterlayer .point")).to_have_count(3)
    # Newest first; the miss scored before the page opened is there too, as in the chart.
    expect(page.locator("#gold tbody tr td.num")).to_have_text(["1.00", "1.00", "0.00"])
    lead.screenshot("qa-annotator")
    assert lead.errors == []
    assert lead.offsite_requests() == []


def test_the_leaderboard_and_drill_down_show_stats_error_tags_and_labels_against_consensus(
    org, signed_in
):
    """Three annotators label four tasks; a QA lead corrects some of one annotator's work with
    tags. The leaderboard shows their throughput, review pass rate and agreement; the
    drill-down the tags reviewers gave and that annotator's labels against consensus."""
    project, people = crowd_project(org, tasks=4, name="Street signs")
    set_policy(
        org,
        project,
        [layer(sample_rate=1.0)],
        [{"code": code, "description": text} for code, text in TAGS.items()],
    )
    dissenter = people[0]
    for task in range(4):
        for person in people:
            label = "person" if person == dissenter and task < 2 else "car"
            work(person, project, {"label": label})
    # Each task's agreement and consensus, as its job computes them (done already, eagerly).
    for task in Task.objects.filter(project=project):
        task_agreement_compute(task_id=task.pk)
    for item in ReviewItem.objects.filter(state="open").order_by("id"):
        verdict = "accept"
        if item.annotation.annotator == dissenter and item.annotation.payload["label"] == "person":
            verdict = "correct"
        lease(item, org.qa_lead)
        review_judge(
            item=item,
            reviewer=org.qa_lead,
            verdict=verdict,
            tags=["wrong-label"] if verdict == "correct" else [],
            corrected_payload={"label": "car"} if verdict == "correct" else None,
        )
    lead = signed_in(org.qa_lead.user)
    lead.page.goto(f"/qa/projects/{project.pk}/")
    row = lead.page.locator(f'#leaderboard tr[data-annotator="{dissenter.pk}"]')
    expect(row.locator("td").nth(5)).to_have_text("4.0")
    expect(row.locator("td").nth(7)).to_have_text("50 %")
    # Two tasks of full agreement, two where they stood alone: (1 + 1 + 0 + 0) / 4.
    expect(row.locator("td").nth(8)).to_have_text("50 %")
    lead.screenshot("qa-project-stats")
    lead.page.goto(f"/qa/projects/{project.pk}/annotators/{dissenter.pk}/")
    expect(lead.page.locator("#work-submitted")).to_have_text("4")
    expect(lead.page.locator("#work-pass")).to_have_text("50 %")
    expect(lead.page.locator("#error-tags tbody tr")).to_have_count(1)
    expect(lead.page.locator("#error-tags")).to_contain_text("wrong-label")
    expect(lead.page.locator("#error-tags tbody td.num")).to_have_text("2")
    confusion = lead.page.locator("#confusion")
    expect(confusion.locator("td.agree")).to_have_text(["2", "·"])
    expect(confusion.locator("td.confused")).to_have_text(["2"])
    lead.screenshot("qa-annotator-stats")
    assert lead.errors == []
    assert lead.offsite_requests() == []


def test_the_manager_adds_and_removes_a_member_from_the_staffing_board(org, signed_in):
    project = make_project(
        org,
        name="Street scenes",
        required_skill_level=2,
        deadline=timezone.now() + timedelta(days=10, hours=1),
    )
    import_rows(project, image_rows(5))
    set_policy(org, project, [layer("Peer review")])
    bea = org.add_annotator("bea")
    services.annotator_skill_set(annotator=bea, skill="bbox", level=3, source="manual", actor=None)
    carl = org.add_annotator("carl")
    # Another project, behind: at the last 24 hours' pace (24 submitted, 1 an hour) its 60
    # annotations left take 60 hours, past its deadline in a day.
    behind = make_project(org, name="Night drive", deadline=timezone.now() + timedelta(days=1))
    import_rows(behind, image_rows(60))
    stats_add(
        project_id=behind.pk, annotator_id=carl.pk, at=timezone.now() - timedelta(hours=3),
        submitted=24,
    )  # fmt: skip
    manager = signed_in(org.manager.user)
    page = manager.page
    page.goto("/staffing/")
    expect(page.get_by_role("banner").get_by_role("link", name="Staffing")).to_be_visible()
    projects = page.locator(f'#projects tr[data-project="{project.pk}"]')
    expect(projects).to_contain_text("0 / 5 annotations")
    expect(projects).to_contain_text("0.5/day")
    expect(projects).to_contain_text("no work in the last 24 h")
    late = page.locator(f'#projects tr[data-project="{behind.pk}"]')
    expect(late).to_contain_text("at 1.0/h")
    expect(late.locator("span.late", has_text="finishes")).to_be_visible()
    projects.get_by_role("button", name="Street scenes").click()
    row = page.locator(f'#staffing tr[data-annotator="{bea.pk}"]')
    expect(row).to_contain_text("qualified")
    expect(page.locator(f'#staffing tr[data-annotator="{carl.pk}"]')).to_contain_text(
        "skill bbox no level < 2"
    )

    row.get_by_role("button", name="Add").click()

    expect(page.locator("#staffing-notice")).to_have_text("bea@acme joined Street scenes.")
    expect(row).to_contain_text("member")
    assert ProjectMember.objects.get(project=project, annotator=bea).is_active
    manager.screenshot("staffing")

    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#staffing-notice")).to_contain_text("bea@acme left Street scenes")
    expect(row.get_by_role("button", name="Add")).to_be_visible()
    assert not ProjectMember.objects.get(project=project, annotator=bea).is_active
    # Reviewers are staffed for the project's review layers, beside the annotators.
    reviewer = page.locator(f'#reviewers tr[data-reviewer="{org.reviewer.annotator.pk}"]')
    expect(reviewer).to_contain_text("Peer review: qualified")
    reviewer.get_by_role("button", name="Add").click()
    expect(page.locator("#staffing-notice")).to_contain_text("joined Street scenes as a reviewer")
    expect(reviewer.locator(".badge.active")).to_have_text("reviewer")
    joined = ProjectMember.objects.get(project=project, annotator=org.reviewer.annotator)
    assert joined.is_active and joined.role == "reviewer"
    manager.screenshot("staffing-reviewers")
    assert manager.errors == []
    assert manager.offsite_requests() == []


def test_a_late_answer_for_the_project_first_shown_does_not_replace_the_one_chosen_since(
    org, signed_in
):
    chosen = make_project(org, name="Street scenes", required_skill_level=2)
    # Listed first, by its nearer deadline, so the page shows it on loading.
    other = make_project(org, name="Night drive", deadline=timezone.now() + timedelta(days=1))
    carl = org.add_annotator("carl")
    manager = signed_in(org.manager.user)
    page = manager.page
    held = []

    def hold_other_projects(route):
        if f"/projects/{chosen.pk}/" in route.request.url:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/projects/\d+/(review-)?staffing"), hold_other_projects)
    page.goto("/staffing/")
    expect(page.locator(f'#projects tr[data-project="{other.pk}"]')).to_be_visible()
    page.locator(f'#projects tr[data-project="{chosen.pk}"]').get_by_role("button").click()
    carl_row = page.locator(f'#staffing tr[data-annotator="{carl.pk}"]')
    expect(carl_row).to_contain_text("skill bbox no level < 2")
    # The page chose the first project on loading; its answers arrive only now, late.
    assert {route.request.url.split("/projects/")[1] for route in held} == {
        f"{other.pk}/staffing",
        f"{other.pk}/review-staffing",
    }
    for route in held:
        with page.expect_response(route.request.url) as answer:
            route.continue_()
        answer.value.finished()
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")
    expect(carl_row).to_contain_text("skill bbox no level < 2")
    expect(page.locator("#staffing-project")).to_contain_text("Street scenes")
    assert manager.errors == []


def test_each_page_refuses_the_roles_it_is_not_for_and_sends_strangers_to_log_in(
    org, other_org, signed_in, tab
):
    project = make_project(org)
    foreign = make_project(other_org)
    worker = signed_in(org.annotator_member.user)
    for path in (f"/qa/projects/{project.pk}/", "/qa/", "/staffing/"):
        assert worker.page.goto(path).status == 403
    expect(worker.page.get_by_role("heading", name="Not for your role")).to_be_visible()
    worker.screenshot("refused")
    # The annotator's own page: on no project, the claim says so.
    worker.page.goto("/work/")
    worker.page.get_by_role("button", name="Claim next task").click()
    expect(worker.page.locator("#work-notice")).to_contain_text(
        "not an active member of an active project"
    )
    worker.screenshot("work-no-projects")

    lead = signed_in(org.qa_lead.user)
    assert lead.page.goto("/work/").status == 403
    assert lead.page.goto("/staffing/").status == 403
    assert lead.page.goto(f"/qa/projects/{foreign.pk}/").status == 404
    assert lead.page.goto("/qa/").status == 200
    nav = lead.page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link")).to_have_text(["Quality", "API"])
    expect(lead.page.get_by_role("link", name=project.name)).to_be_visible()
    lead.screenshot("qa-projects")
    reviewer = signed_in(org.reviewer.user)
    for path in ("/work/", "/qa/", "/staffing/"):
        assert reviewer.page.goto(path).status == 403

    tab.page.goto("/staffing/")
    expect(tab.page).to_have_url(f"{tab.origin}/accounts/login/?next=/staffing/")
