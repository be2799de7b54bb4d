"""A project's review policy: set whole, validated field by field, audited, never silently
losing a layer or a tag reviews hold; and the adaptive sampling rate each layer applies."""

import pytest
from django.utils import timezone

from qa.models import Accuracy, ErrorTag, Review, ReviewAccuracy, ReviewItem, ReviewLayer
from qa.models import SamplingBasis as Basis
from qa.reviews import Standing, sampling_rate, standing
from tasks.models import Project
from tests.helpers import make_project
from tests.qa.review_helpers import (
    annotator_on,
    item_of,
    judged,
    layer,
    review_project,
    reviewer_on,
    set_policy,
    submit_all,
)
from workforce.models import Annotator, AuditEvent, AuditVerb, Role
from workforce.services import domain_create

pytestmark = pytest.mark.django_db

POLICY = {
    "layers": [
        {"name": "Peer review", "sample_rate": 0.3, "floor_rate": 0.05},
        {
            "name": "QA audit",
            "sample_rate": 0.1,
            "floor_rate": 0.02,
            "role": "qa_lead",
            "min_skill_level": 3,
            "required_domains": ["streets"],
        },
    ],
    "error_tags": [
        {"code": "missed-object", "description": "An object has no box."},
        {"code": "loose-box"},
    ],
}


def url(project) -> str:
    return f"/api/v1/projects/{project.pk}/review-policy"


@pytest.fixture
def streets(org):
    return domain_create(
        organization=org.organization, slug="streets", name="Streets", description="", actor=None
    )


def test_a_manager_sets_the_policy_and_everyone_on_the_project_reads_it(org, streets):
    project = make_project(org)
    manager = org.client(Role.MANAGER)
    assert manager.get(url(project)).json() == {"layers": [], "error_tags": []}

    response = manager.put(url(project), POLICY, format="json")

    assert response.status_code == 200, response.content
    policy = response.json()
    assert [(lay["position"], lay["name"], lay["role"]) for lay in policy["layers"]] == [
        (1, "Peer review", "reviewer"),
        (2, "QA audit", "qa_lead"),
    ]
    assert policy["layers"][0] | {"required_domains": []} == {
        "position": 1,
        "name": "Peer review",
        "sample_rate": 0.3,
        "floor_rate": 0.05,
        "role": "reviewer",
        "min_skill_level": 0,
        "required_domains": [],
    }
    assert policy["layers"][1]["required_domains"] == ["streets"]
    assert policy["error_tags"] == [
        {"code": "loose-box", "description": ""},
        {"code": "missed-object", "description": "An object has no box."},
    ]
    # A QA lead reads it too; an annotator does not; a reviewer may not change it.
    assert org.client(Role.QA_LEAD).get(url(project)).json() == policy
    assert org.client(Role.ANNOTATOR).get(url(project)).status_code == 403
    assert org.client(Role.REVIEWER).put(url(project), POLICY, format="json").status_code == 403


def test_a_reviewer_reads_the_policy_of_a_project_they_review_only(org):
    project = make_project(org)
    set_policy(org, project, [layer()])
    reviewer = org.client(Role.REVIEWER)
    assert reviewer.get(url(project)).status_code == 404
    # Managers take reviewers on through the project's members, by their working profile.
    profile = Annotator.objects.get(member=org.reviewer)
    response = org.client(Role.MANAGER).post(
        f"/api/v1/projects/{project.pk}/members/",
        {"annotators": [profile.pk], "role": "reviewer"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert reviewer.get(url(project)).json()["layers"][0]["name"] == "Peer review"


def test_a_change_is_audited_with_the_policy_before_and_after_and_a_repeat_is_not(org, streets):
    project = make_project(org)
    manager = org.client(Role.MANAGER)
    manager.put(url(project), POLICY, format="json")
    changed = {**POLICY, "error_tags": [{"code": "loose-box", "description": "Too big."}]}
    changed["layers"] = [POLICY["layers"][0] | {"sample_rate": 0.5}, POLICY["layers"][1]]
    manager.put(url(project), changed, format="json")
    manager.put(url(project), changed, format="json")

    events = list(AuditEvent.objects.filter(verb=AuditVerb.REVIEW_POLICY_UPDATED).order_by("id"))
    assert len(events) == 2
    first, second = events
    assert first.before == {"layers": [], "error_tags": []}
    assert first.target_type == "project" and first.target_id == project.pk
    assert first.actor == org.manager.user
    assert second.before == first.after
    assert second.after["layers"][0]["sample_rate"] == 0.5
    assert second.after["error_tags"] == [{"code": "loose-box", "description": "Too big."}]


@pytest.mark.parametrize(
    ("policy", "fields"),
    [
        (
            {"layers": [layer(), layer(sample_rate=0.2, floor_rate=0.3)], "error_tags": []},
            {"layers.1.floor_rate": ["0.3 is above its sample_rate 0.2."]},
        ),
        (
            {"layers": [layer(sample_rate=1.5)], "error_tags": []},
            {"layers.0.sample_rate"},
        ),
        ({"layers": [layer(role="manager")], "error_tags": []}, {"layers.0.role"}),
        ({"layers": [layer(min_skill_level=6)], "error_tags": []}, {"layers.0.min_skill_level"}),
        (
            {"layers": [layer(required_domains=["nowhere"])], "error_tags": []},
            {"layers.0.required_domains": ["Unknown domain 'nowhere'."]},
        ),
        (
            {"layers": [layer(name="")], "error_tags": []},
            {"layers.0.name"},
        ),
        (
            {"layers": [layer()] * 11, "error_tags": []},
            {"layers.non_field_errors"},
        ),
        (
            {"layers": [], "error_tags": [{"code": "a"}, {"code": "b"}, {"code": "a"}]},
            {"error_tags.2.code": ["Repeated: error_tags.0."]},
        ),
        (
            {"layers": [], "error_tags": [{"code": "not a slug"}]},
            {"error_tags.0.code"},
        ),
        ({"layers": [layer() | {"colour": "red"}], "error_tags": []}, {"layers.0.colour"}),
        ({"error_tags": []}, {"layers"}),
        (
            # Both halves wrong: one answer names each.
            {
                "layers": [layer(sample_rate=0.1, floor_rate=0.2)],
                "error_tags": [{"code": "x"}, {"code": "x"}],
            },
            {"layers.0.floor_rate", "error_tags.1.code"},
        ),
    ],
)
def test_a_bad_policy_is_refused_naming_each_field_and_nothing_changes(org, policy, fields):
    project = make_project(org)
    set_policy(org, project, [layer(name="Kept")], [{"code": "kept"}])
    before_events = AuditEvent.objects.count()

    response = org.client(Role.MANAGER).put(url(project), policy, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    if isinstance(fields, dict):
        for name, reasons in fields.items():
            assert error["fields"][name] == reasons
    else:
        assert fields <= set(error["fields"]), error["fields"]
    assert list(ReviewLayer.objects.filter(project=project).values_list("name", flat=True)) == [
        "Kept"
    ]
    assert list(ErrorTag.objects.filter(project=project).values_list("code", flat=True)) == ["kept"]
    assert AuditEvent.objects.count() == before_events


def test_layers_change_in_place_by_position_keeping_their_items(org):
    project = review_project(org, tasks=3, layers=[layer("One"), layer("Two")])
    ann = annotator_on(org, project, "ann")
    annotations = submit_all(ann, project, 2)
    first_layer = ReviewLayer.objects.get(project=project, position=1)

    set_policy(org, project, [layer("One, renamed", sample_rate=0.5), layer("Two")])

    renamed = ReviewLayer.objects.get(project=project, position=1)
    assert renamed.pk == first_layer.pk and renamed.name == "One, renamed"
    assert renamed.sample_rate == 0.5
    assert item_of(annotations[0]).layer_id == first_layer.pk


def test_a_layer_holding_items_is_never_removed_one_without_is(org):
    project = review_project(org, tasks=3, layers=[layer("One")])
    set_policy(org, project, [layer("One"), layer("Two, unused")])
    ann = annotator_on(org, project, "ann")
    submit_all(ann, project, 1)
    manager = org.client(Role.MANAGER)

    # Layer 2 never received anything: it goes.
    response = manager.put(url(project), {"layers": [layer("One")], "error_tags": []}, "json")
    assert response.status_code == 200
    assert ReviewLayer.objects.filter(project=project).count() == 1

    # Layer 1 holds a waiting item: removing it is refused, naming it, and nothing changes.
    response = manager.put(url(project), {"layers": [], "error_tags": [{"code": "new"}]}, "json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "in_use"
    assert "Layer 1 (One)" in error["fields"]["layers"][0]
    assert ReviewLayer.objects.filter(project=project).count() == 1
    assert ReviewItem.objects.filter(project=project).count() == 1
    assert not ErrorTag.objects.filter(project=project).exists()


def test_a_tag_a_verdict_used_stays_while_its_description_may_change(org):
    project = review_project(org, tasks=3)
    set_policy(org, project, [layer()], [{"code": "loose-box"}, {"code": "unused"}])
    ann = annotator_on(org, project, "ann")
    rita = reviewer_on(org, project, "rita")
    (annotation,) = submit_all(ann, project, 1)
    item = item_of(annotation)
    ReviewItem.objects.filter(pk=item.pk).update(
        state="leased", reviewer=rita, lease_expires_at=timezone.now()
    )
    judged(ReviewItem.objects.get(pk=item.pk), rita)
    Review.objects.filter(item=item).update(tags=["loose-box"])
    manager = org.client(Role.MANAGER)

    response = manager.put(url(project), {"layers": [layer()], "error_tags": []}, "json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"]["error_tags"] == [
        "'loose-box' is used by verdicts and cannot be removed."
    ]
    kept = {"layers": [layer()], "error_tags": [{"code": "loose-box", "description": "Too big"}]}
    assert manager.put(url(project), kept, "json").status_code == 200
    assert list(ErrorTag.objects.filter(project=project).values_list("code", "description")) == [
        ("loose-box", "Too big")
    ]


def test_an_archived_projects_policy_stays_as_it_is(org):
    project = make_project(org)
    Project.objects.filter(pk=project.pk).update(status="archived")
    response = org.client(Role.MANAGER).put(
        url(project), {"layers": [layer()], "error_tags": []}, "json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_status"


def test_another_organizations_policy_is_not_found(org, other_org):
    project = make_project(other_org)
    manager = org.client(Role.MANAGER)
    assert manager.get(url(project)).status_code == 404
    body = {"layers": [layer()], "error_tags": []}
    assert manager.put(url(project), body, "json").status_code == 404
    assert not ReviewLayer.objects.filter(project=project).exists()


# Adaptive sampling. A layer at 0.5 with a floor of 0.1, and a target of 0.9: the rate falls by
# 0.4 over the 0.4 between a lower bound of 0.5 and the target, so it reads 1 - lower bound.
LAYER = ReviewLayer(sample_rate=0.5, floor_rate=0.1)
PROJECT = Project(accuracy_target=0.9, newcomer_gold_tasks=5)


def rate_of(scored: int, score_sum: float, raised: float | None = None):
    return sampling_rate(LAYER, PROJECT, Standing(1, scored, score_sum, raised))


def test_a_newcomer_is_sampled_at_the_base_rate():
    assert rate_of(0, 0) == (0.5, Basis.NEWCOMER)
    # Four perfect scores: still fewer than the project's five.
    assert rate_of(4, 4) == (0.5, Basis.NEWCOMER)


def test_the_rate_falls_linearly_from_the_base_to_the_floor():
    # 5 of 10: a lower bound of 0.236593, at most 0.5: the base rate.
    assert rate_of(10, 5) == (0.5, Basis.ADAPTIVE)
    # 60 of 100: lower bound 0.502003, just past 0.5.
    rate, basis = rate_of(100, 60)
    assert basis == Basis.ADAPTIVE and rate == pytest.approx(0.497997, abs=1e-6)
    # 70 of 100: lower bound 0.604151.
    assert rate_of(100, 70)[0] == pytest.approx(0.395849, abs=1e-6)
    # 80 of 100: lower bound 0.711171.
    assert rate_of(100, 80)[0] == pytest.approx(0.288829, abs=1e-6)
    # 95 of 100: lower bound 0.888250, just short of the target.
    assert rate_of(100, 95)[0] == pytest.approx(0.111750, abs=1e-6)


def test_the_rate_is_the_floor_at_the_target_and_beyond():
    # 99 of 100: lower bound 0.945514.
    assert rate_of(100, 99) == (0.1, Basis.ADAPTIVE)
    assert rate_of(10_000, 10_000) == (0.1, Basis.ADAPTIVE)


def test_a_raised_rate_wins_when_higher_only():
    assert rate_of(100, 99, raised=0.7) == (0.7, Basis.RAISED)
    assert rate_of(0, 0, raised=0.9) == (0.9, Basis.RAISED)
    assert rate_of(100, 99, raised=0.05) == (0.1, Basis.ADAPTIVE)
    assert rate_of(0, 0, raised=0.3) == (0.5, Basis.NEWCOMER)


def test_a_submission_records_the_rate_gold_and_review_scores_give_together(org):
    """Standing pools gold and review scores: 50 of 60 gold and 30 of 40 reviewed are 80 of 100."""
    project = review_project(org, tasks=2, layers=[layer(sample_rate=0.5, floor_rate=0.1)])
    ann = annotator_on(org, project, "ann")
    now = timezone.now()
    Accuracy.objects.create(
        annotator=ann, project=project, scored=60, score_sum=50, day=now.date(), updated_at=now
    )
    ReviewAccuracy.objects.create(
        annotator=ann, project=project, reviewed=40, score_sum=30, updated_at=now
    )
    assert standing(annotator_id=ann.pk, project_id=project.pk).scored == 100

    (annotation,) = submit_all(ann, project, 1)

    item = item_of(annotation)
    assert item.basis == Basis.ADAPTIVE
    assert item.rate == pytest.approx(0.288829, abs=1e-6)
    assert item.state == ("open" if item.sampled else "skipped")
    assert item.author_member_id == ann.member_id
