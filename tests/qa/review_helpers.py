"""Helpers of the review tests: projects with review layers and an error taxonomy, submissions
through the real claim and submit, and review items leased to a reviewer."""

from datetime import timedelta

from django.utils import timezone

from qa.models import ErrorTag, ReviewItem, ReviewItemState, ReviewLayer
from tasks.models import Assignment
from tasks.services.claims import assignment_submit, claim_next
from tasks.services.projects import project_members_add
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce.models import Annotator, Member

CAR = {"label": "car", "x": 10, "y": 10, "w": 40, "h": 40}
PERSON = {"label": "person", "x": 300, "y": 300, "w": 20, "h": 20}
TWO_BOXES = {"boxes": [CAR, PERSON]}
TAGS = {"missed-object": "An object in the image has no box.", "wrong-label": "Wrong label."}


def review_project(org, *annotators, layers=(1.0,), tasks: int = 4, **fields):
    """A bbox project of ``tasks`` tasks staffed with ``annotators``, with one review layer per
    rate in ``layers`` (all at that base rate, floor 0) and the ``TAGS`` taxonomy."""
    fields.setdefault("max_concurrent_tasks", 100)
    project = make_project(org, **fields)
    import_rows(project, image_rows(tasks))
    staff(project, *annotators)
    for position, rate in enumerate(layers, start=1):
        ReviewLayer.objects.create(
            project=project, position=position, name=f"layer {position}", sample_rate=rate
        )
    for code, description in TAGS.items():
        ErrorTag.objects.create(project=project, code=code, description=description)
    return project


def layer(project, position: int) -> ReviewLayer:
    return ReviewLayer.objects.get(project=project, position=position)


def project_reviewer(org, project, username: str) -> Member:
    """A member with the reviewer role, an active reviewer on ``project``."""
    member = org.add(username, "reviewer")
    annotator = Annotator.objects.create(member=member)
    project_members_add(project=project, annotators=[annotator], role="reviewer", actor=None)
    return member


def submit(annotator, project, payload=None):
    """Claim the annotator's next task in ``project`` and submit ``payload``; return the
    annotation."""
    claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
    assert claimed is not None
    assignment = Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)
    annotation, created = assignment_submit(
        assignment=assignment, payload=TWO_BOXES if payload is None else payload
    )
    assert created
    return annotation


def waiting_item(annotation) -> ReviewItem:
    """The item at which the annotation waits for a reviewer."""
    return ReviewItem.objects.get(annotation=annotation, state=ReviewItemState.OPEN)


def lease(item: ReviewItem, reviewer: Member, *, seconds: int = 600) -> ReviewItem:
    """Lease ``item`` to ``reviewer``, as the review claim does (a lapsed lease: ``seconds`` < 0)."""
    now = timezone.now()
    item.state, item.reviewer = ReviewItemState.LEASED, reviewer
    item.leased_at, item.lease_expires_at = now, now + timedelta(seconds=seconds)
    item.save(update_fields=["state", "reviewer", "leased_at", "lease_expires_at"])
    return item
