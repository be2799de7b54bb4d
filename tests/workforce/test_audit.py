"""The audit log records what an update changed, as JSON values, and nothing for no change."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tasks.services.projects import project_update
from tests.helpers import BBOX_SCHEMA, make_project
from workforce import services
from workforce.models import AuditEvent, AuditVerb
from workforce.services.audit import json_value

pytestmark = pytest.mark.django_db


def _events(target, verb: AuditVerb) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            verb=verb, target_type=target._meta.model_name, target_id=target.pk
        ).order_by("id")
    )


def _domain(org, slug: str):
    return services.domain_create(
        organization=org.organization, slug=slug, name=slug.title(), description="", actor=None
    )


def test_a_project_update_records_each_changed_field_as_json(org):
    _domain(org, "legal")
    _domain(org, "finance")
    project = make_project(org)
    deadline = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    schema = {"labels": [{"name": "car"}, {"name": "truck"}]}
    project_update(
        project=project,
        actor=org.manager.user,
        label_schema=schema,
        deadline=deadline,
        required_domains=["legal", "finance"],
        priority=project.priority,  # unchanged: not recorded
    )
    [event] = _events(project, AuditVerb.PROJECT_UPDATED)
    # Read back from the database: JSON objects, not the repr of Python ones.
    event.refresh_from_db()
    assert event.before == {"label_schema": BBOX_SCHEMA, "deadline": None, "required_domains": []}
    assert event.after == {
        "label_schema": schema,
        "deadline": "2026-03-01T12:30:15.123456+00:00",
        "required_domains": ["finance", "legal"],
    }
    assert event.actor == org.manager.user


def test_a_project_update_that_changes_nothing_writes_no_event(org):
    project = make_project(org, deadline=datetime(2026, 3, 1, 12, tzinfo=UTC))
    # The same moment in another offset is the same deadline.
    same_deadline = datetime(2026, 3, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    project_update(
        project=project,
        actor=org.manager.user,
        label_schema=dict(BBOX_SCHEMA),
        deadline=same_deadline,
        name=project.name,
        required_domains=[],
    )
    assert _events(project, AuditVerb.PROJECT_UPDATED) == []


def test_an_annotator_update_records_only_what_changed(org):
    annotator = org.annotator
    services.annotator_update(
        annotator=annotator, actor=org.manager.user, timezone="UTC", languages=["en", "de"]
    )
    [event] = _events(annotator, AuditVerb.ANNOTATOR_UPDATED)
    assert (event.before, event.after) == ({"languages": []}, {"languages": ["en", "de"]})
    services.annotator_update(annotator=annotator, actor=org.manager.user, languages=["en", "de"])
    assert len(_events(annotator, AuditVerb.ANNOTATOR_UPDATED)) == 1


def test_a_domain_update_records_only_what_changed(org):
    domain = _domain(org, "legal")
    services.domain_update(domain=domain, actor=None, name="Legal", description="Contracts")
    [event] = _events(domain, AuditVerb.DOMAIN_UPDATED)
    assert (event.before, event.after) == ({"description": ""}, {"description": "Contracts"})
    services.domain_update(domain=domain, actor=None, name="Legal", description="Contracts")
    assert len(_events(domain, AuditVerb.DOMAIN_UPDATED)) == 1


def test_changed_fields_reads_relations_by_id_and_values_as_json(org):
    project = make_project(org)
    values = services.field_values(project, ["organization", "gold_rate", "deadline"])
    assert values == {"organization": org.organization.pk, "gold_rate": 0.0, "deadline": None}
    before = services.field_values(project, ["name", "overlap"])
    project.name = "Renamed"
    assert services.changed_fields(project, before) == {"name": (before["name"], "Renamed")}


def test_json_values_are_what_json_can_hold():
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5)))
    assert json_value(moment) == "2026-01-02T08:04:05.000006+00:00"
    assert json_value(Decimal("0.50")) == "0.50"
    assert json_value({"a": (1, None)}) == {"a": [1, None]}
