"""Helpers of the review tests: projects with review layers, reviewers on them, and annotations
submitted through the real claim and submit, which meet the layers as production's do; review
items leased to a chosen reviewer, as the review claim leases them."""

from datetime import timedelta

from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from qa.models import Review, ReviewItem, ReviewItemState, ReviewLayer, Verdict
from qa.review_policy import review_policy_set
from qa.reviews import review_arrive
from tasks.models import Annotation
from tasks.services.claims import assignment_submit, claim_next
from tasks.services.projects import project_members_add
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce import services
from workforce.models import Annotator, Member, Role

PAYLOAD = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 40, "h": 40}]}


def layer(name: str = "Peer review", sample_rate: float = 1.0, **fields) -> dict:
    return {
        "name": name,
        "sample_rate": sample_rate,
        "floor_rate": fields.pop("floor_rate", 0.0),
        "role": fields.pop("role", "reviewer"),
        "min_skill_level": fields.pop("min_skill_level", 0),
        "required_domains": fields.pop("required_domains", []),
    }


def set_policy(org, project, layers: list[dict], tags: list[dict] | None = None) -> dict:
    return review_policy_set(
        project=project, layers=layers, error_tags=tags or [], actor=org.manager.user
    )


def review_project(
    org,
    *,
    tasks: int = 20,
    layers: list[dict] | None = None,
    tags: list[dict] | None = None,
    **fields,
):
    """An active bbox project of ``tasks`` tasks whose every submission is sampled at layer 1
    (unless ``layers`` says otherwise), with the error taxonomy ``tags``."""
    fields.setdefault("max_concurrent_tasks", 1000)
    project = make_project(org, **fields)
    import_rows(project, image_rows(tasks))
    set_policy(org, project, layers if layers is not None else [layer()], tags)
    return project


def annotator_on(org, project, username: str) -> Annotator:
    annotator = org.add_annotator(username)
    Annotator.objects.filter(pk=annotator.pk).update(max_concurrent_tasks=1000)
    staff(project, annotator)
    return Annotator.objects.get(pk=annotator.pk)


def reviewer_on(org, project, username: str, *, level: int = 0) -> Member:
    """A new reviewer of the organization, with ``level`` in the project's kind, on the project."""
    member = org.add(username, Role.REVIEWER)
    profile = Annotator.objects.get(member=member)
    if level:
        services.annotator_skill_set(
            annotator=profile, skill=project.kind, level=level, source="manual", actor=None
        )
    project_members_add(project=project, annotators=[profile], role="reviewer", actor=None)
    return member


def submit_all(annotator: Annotator, project, count: int) -> list[Annotation]:
    """Claim and submit ``count`` tasks as ``annotator``; return the annotations in order."""
    done = []
    for _ in range(count):
        claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
        assert claimed is not None
        assignment = annotator.assignments.get(pk=claimed.assignment_id)
        annotation, _ = assignment_submit(assignment=assignment, payload=PAYLOAD)
        done.append(annotation)
    return done


def item_of(annotation: Annotation, position: int = 1) -> ReviewItem:
    return ReviewItem.objects.get(annotation=annotation, layer__position=position)


def judged(item: ReviewItem, reviewer: Member) -> ReviewItem:
    """Record an ``accept`` by ``reviewer`` on a leased item, as a verdict would, and send the
    version on to the next layer. Verdicts have their own module; this only writes the rows."""
    now = timezone.now()
    Review.objects.create(
        item=item,
        annotation_id=item.annotation_id,
        version=item.version,
        layer_id=item.layer_id,
        project_id=item.project_id,
        author_member_id=item.author_member_id,
        reviewer=reviewer,
        verdict=Verdict.ACCEPT,
        score=1.0,
        created_at=now,
    )
    ReviewItem.objects.filter(pk=item.pk).update(state="done", lease_expires_at=None)
    review_arrive(
        annotation=item.annotation, version=item.version, now=now, after=item.layer.position
    )
    return ReviewItem.objects.get(pk=item.pk)


def client_of(member: Member) -> APIClient:
    """An API client acting as ``member``, with a real token."""
    token, _ = Token.objects.get_or_create(user=member.user)
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {token.key}",
        HTTP_X_ORGANIZATION=member.organization.slug,
    )
    return client


# Verdicts: projects with a taxonomy, one submission at a time, items leased to a reviewer.

CAR = {"label": "car", "x": 10, "y": 10, "w": 40, "h": 40}
PERSON = {"label": "person", "x": 300, "y": 300, "w": 20, "h": 20}
TWO_BOXES = {"boxes": [CAR, PERSON]}
TAGS = {"missed-object": "An object in the image has no box.", "wrong-label": "Wrong label."}


def verdict_project(org, *annotators, rates=(1.0,), tasks: int = 4, **fields):
    """A review project staffed with ``annotators``, with a layer named ``layer <position>``
    per base rate in ``rates`` (floor 0) and the ``TAGS`` taxonomy."""
    layers = [layer(f"layer {i}", rate) for i, rate in enumerate(rates, start=1)]
    tags = [{"code": code, "description": text} for code, text in TAGS.items()]
    project = review_project(org, tasks=tasks, layers=layers, tags=tags, **fields)
    staff(project, *annotators)
    return project


def layer_at(project, position: int) -> ReviewLayer:
    return ReviewLayer.objects.get(project=project, position=position)


def submit(annotator, project, payload=None) -> Annotation:
    """Claim the annotator's next task in ``project`` and submit ``payload`` (``TWO_BOXES``)."""
    claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
    assert claimed is not None
    assignment = annotator.assignments.select_related("project", "task").get(
        pk=claimed.assignment_id
    )
    annotation, created = assignment_submit(
        assignment=assignment, payload=TWO_BOXES if payload is None else payload
    )
    assert created
    return annotation


def waiting_item(annotation: Annotation) -> ReviewItem:
    """The item at which the annotation waits for a reviewer."""
    return ReviewItem.objects.get(annotation=annotation, state=ReviewItemState.OPEN)


def lease(item: ReviewItem, reviewer: Member, *, seconds: int = 600) -> ReviewItem:
    """Lease ``item`` to ``reviewer`` as the review claim does (lapsed already for
    ``seconds`` < 0)."""
    now = timezone.now()
    item.state, item.reviewer = ReviewItemState.LEASED, reviewer
    item.leased_at, item.lease_expires_at = now, now + timedelta(seconds=seconds)
    item.save(update_fields=["state", "reviewer", "leased_at", "lease_expires_at"])
    return item
