"""The demo seed: safe to run twice, and its annotators have work they qualify for."""

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks.models import Project, Task
from tasks.services.claims import claim_next
from tasks.staffing import staffing_rank
from workforce.models import Annotator, AuditEvent, Member

pytestmark = pytest.mark.django_db


def test_seed_demo_twice_creates_everything_once_and_ana_can_claim():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    counts = (Member.objects.count(), Project.objects.count(), Task.objects.count())
    events = AuditEvent.objects.count()
    call_command("seed_demo", stdout=io.StringIO())
    assert (Member.objects.count(), Project.objects.count(), Task.objects.count()) == counts
    assert AuditEvent.objects.count() == events
    assert "maria@northwind" in out.getvalue() and "quentin@northwind" in out.getvalue()
    ana = Annotator.objects.get(member__user__username="ana@northwind")
    claimed = claim_next(annotator=ana).claimed
    assert claimed is not None and claimed.kind == "bbox"
    # dana has no legal certification: the contract project is not hers to claim.
    dana = Annotator.objects.get(member__user__username="dana@northwind")
    assert claim_next(annotator=dana).claimed.kind == "classification"


def test_every_demo_member_staffing_calls_qualified_can_claim_in_that_project():
    """The demo's staffing boards and its annotators' queues tell the same story."""
    call_command("seed_demo", stdout=io.StringIO())
    now = timezone.now()
    checked = 0
    for project in Project.objects.all():
        for row in staffing_rank(project=project, now=now):
            if not (row["qualified"] and row["is_member"] and row["load"]["has_room"]):
                continue
            annotator = Annotator.objects.get(pk=row["annotator"])
            result = claim_next(annotator=annotator, project_id=project.pk)
            assert result.claimed is not None, (project.name, row["username"], result.outcome)
            checked += 1
    # ana, bo, chidi, dana and emil on photo moderation, at level 0 with or without a skill row.
    assert checked >= 5
