"""Workforce services: every change is validated, applied once, and audited."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, ValidationFailed
from workforce import services
from workforce.jobs import expire_certifications
from workforce.models import (
    AnnotatorSkill,
    AnnotatorStatus,
    AuditEvent,
    Certification,
    CertificationStatus,
    Domain,
    Role,
)

pytestmark = pytest.mark.django_db


def issue(org, domain, *, days=30, annotator=None):
    return services.certification_issue(
        annotator=annotator or org.annotator,
        domain=domain,
        issued_by=org.qa_lead.user,
        evidence="Exam passed 0.93",
        expires_at=timezone.now() + timedelta(days=days),
    )


@pytest.fixture
def domain(org):
    return services.domain_create(
        organization=org.organization,
        slug="medical-imaging",
        name="Medical imaging",
        description="",
        actor=org.manager.user,
    )


def test_member_create_gives_annotators_a_profile_and_audits(org):
    member = services.member_create(
        organization=org.organization,
        username="newbie",
        role=Role.ANNOTATOR,
        actor=org.manager.user,
        profile={"languages": ["en", "pt-BR"], "timezone": "Europe/Berlin"},
    )
    assert member.annotator.languages == ["en", "pt-BR"]
    event = AuditEvent.objects.get(verb="member.created", target_id=member.pk)
    assert event.actor == org.manager.user
    assert event.after["role"] == "annotator"


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"languages": ["english"]}, "languages"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"weekly_capacity_hours": 200}, "weekly_capacity_hours"),
        ({"max_concurrent_tasks": 0}, "max_concurrent_tasks"),
    ],
)
def test_member_create_rejects_a_bad_profile_and_creates_nothing(org, profile, field):
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as error:
        services.member_create(
            organization=org.organization,
            username="bad",
            role=Role.ANNOTATOR,
            actor=org.manager.user,
            profile=profile,
        )
    assert field in error.value.fields
    assert not org.organization.members.filter(user__username="bad").exists()
    assert AuditEvent.objects.count() == before


def test_member_create_twice_in_the_same_organization_conflicts(org):
    with pytest.raises(Conflict):
        services.member_create(
            organization=org.organization,
            username=org.manager.username,
            role=Role.QA_LEAD,
            actor=None,
        )


def test_skill_set_records_before_and_after_in_the_audit_log(org):
    services.annotator_skill_set(
        annotator=org.annotator, skill="bbox", level=2, source="manual", actor=org.qa_lead.user
    )
    services.annotator_skill_set(
        annotator=org.annotator,
        skill="bbox",
        level=4,
        source="exam",
        actor=org.qa_lead.user,
        reason="Passed exam",
    )
    row = AnnotatorSkill.objects.get(annotator=org.annotator, skill="bbox")
    assert (row.level, row.source) == (4, "exam")
    events = list(AuditEvent.objects.filter(verb="skill.set").order_by("id"))
    assert events[0].before is None and events[0].after["level"] == 2
    assert events[1].before["level"] == 2 and events[1].after["level"] == 4
    assert events[1].reason == "Passed exam"
    assert events[1].annotator == org.annotator


@pytest.mark.parametrize(
    ("skill", "level", "field"),
    [("bbox", 6, "level"), ("bbox", -1, "level"), ("lidar", 3, "skill"), ("bbox", True, "level")],
)
def test_skill_set_rejects_bad_input_and_changes_nothing(org, skill, level, field):
    with pytest.raises(ValidationFailed) as error:
        services.annotator_skill_set(
            annotator=org.annotator, skill=skill, level=level, source="manual", actor=None
        )
    assert field in error.value.fields
    assert not AnnotatorSkill.objects.exists()
    assert not AuditEvent.objects.filter(verb="skill.set").exists()


def test_the_database_refuses_a_skill_level_above_five(org):
    with pytest.raises(IntegrityError, match="skill_level_0_5"), transaction.atomic():
        AnnotatorSkill.objects.create(
            annotator=org.annotator, skill="bbox", level=9, source="manual"
        )


def test_annotator_status_transitions_are_audited_with_reason(org):
    services.annotator_set_status(
        annotator=org.annotator, action="suspend", actor=org.qa_lead.user, reason="Low accuracy"
    )
    org.annotator.refresh_from_db()
    assert org.annotator.status == AnnotatorStatus.SUSPENDED
    with pytest.raises(Conflict):
        services.annotator_set_status(
            annotator=org.annotator, action="suspend", actor=org.qa_lead.user, reason="again"
        )
    services.annotator_set_status(
        annotator=org.annotator, action="reinstate", actor=org.qa_lead.user, reason="Retrained"
    )
    services.annotator_set_status(
        annotator=org.annotator, action="offboard", actor=org.manager.user, reason="Left"
    )
    with pytest.raises(Conflict):
        services.annotator_set_status(
            annotator=org.annotator, action="reinstate", actor=org.qa_lead.user, reason="back"
        )
    verbs = list(
        AuditEvent.objects.filter(annotator=org.annotator, verb__startswith="annotator.")
        .order_by("id")
        .values_list("verb", "before__status", "after__status", "reason")
    )
    assert verbs == [
        ("annotator.suspended", "active", "suspended", "Low accuracy"),
        ("annotator.reinstated", "suspended", "active", "Retrained"),
        ("annotator.offboarded", "active", "offboarded", "Left"),
    ]


def test_status_change_without_a_reason_is_refused(org):
    with pytest.raises(ValidationFailed) as error:
        services.annotator_set_status(
            annotator=org.annotator, action="suspend", actor=org.qa_lead.user, reason="  "
        )
    assert "reason" in error.value.fields
    org.annotator.refresh_from_db()
    assert org.annotator.status == AnnotatorStatus.ACTIVE


def test_certification_lifecycle_is_audited(org, domain):
    certification = issue(org, domain)
    assert certification.status == CertificationStatus.ACTIVE
    with pytest.raises(Conflict):
        issue(org, domain)
    services.certification_set_status(
        certification=certification, action="suspend", actor=org.qa_lead.user, reason="Audit"
    )
    with pytest.raises(Conflict):
        issue(org, domain)  # suspended: reinstate, do not issue again
    services.certification_set_status(
        certification=certification, action="reinstate", actor=org.qa_lead.user, reason="OK"
    )
    new_expiry = timezone.now() + timedelta(days=400)
    services.certification_renew(
        certification=certification, expires_at=new_expiry, actor=org.qa_lead.user
    )
    services.certification_set_status(
        certification=certification, action="revoke", actor=org.qa_lead.user, reason="Fraud"
    )
    with pytest.raises(Conflict):
        services.certification_renew(
            certification=certification, expires_at=new_expiry, actor=org.qa_lead.user
        )
    reissued = issue(org, domain)  # a revoked certification can be earned again
    assert reissued.pk == certification.pk and reissued.status == CertificationStatus.ACTIVE
    verbs = list(
        AuditEvent.objects.filter(target_type="certification", target_id=certification.pk)
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "certification.issued",
        "certification.suspended",
        "certification.reinstated",
        "certification.renewed",
        "certification.revoked",
        "certification.issued",
    ]
    assert all(
        e.actor == org.qa_lead.user for e in AuditEvent.objects.filter(target_type="certification")
    )


def test_certification_needs_evidence_and_a_future_expiry(org, domain):
    with pytest.raises(ValidationFailed) as error:
        services.certification_issue(
            annotator=org.annotator,
            domain=domain,
            issued_by=org.qa_lead.user,
            evidence=" ",
            expires_at=None,
        )
    assert "evidence" in error.value.fields
    with pytest.raises(ValidationFailed) as error:
        services.certification_issue(
            annotator=org.annotator,
            domain=domain,
            issued_by=org.qa_lead.user,
            evidence="exam",
            expires_at=timezone.now() - timedelta(days=1),
        )
    assert "expires_at" in error.value.fields
    assert not Certification.objects.exists()


def test_certification_in_another_organizations_domain_is_refused(org, other_org):
    foreign = services.domain_create(
        organization=other_org.organization, slug="legal", name="Legal", description="", actor=None
    )
    with pytest.raises(ValidationFailed) as error:
        issue(org, foreign)
    assert "domain" in error.value.fields


def test_expired_certification_is_never_in_force_even_before_the_job(org, domain):
    certification = issue(org, domain)
    Certification.objects.filter(pk=certification.pk).update(
        issued_at=timezone.now() - timedelta(days=10),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.ACTIVE  # the job has not run
    state = Certification.objects.with_state().values_list("state", flat=True)
    assert state.get(pk=certification.pk) == CertificationStatus.EXPIRED
    assert not Certification.objects.in_force().filter(pk=certification.pk).exists()
    with pytest.raises(Conflict):
        services.certification_set_status(
            certification=certification, action="suspend", actor=None, reason="x"
        )
    # A lapsed certification may be issued anew without waiting for the job.
    assert state.get(pk=issue(org, domain).pk) == CertificationStatus.ACTIVE


def test_renewing_a_lapsed_certification_makes_it_active(org, domain):
    certification = issue(org, domain)
    Certification.objects.filter(pk=certification.pk).update(
        issued_at=timezone.now() - timedelta(days=10),
        expires_at=timezone.now() - timedelta(days=1),
    )
    services.certification_renew(
        certification=certification,
        expires_at=timezone.now() + timedelta(days=90),
        actor=org.qa_lead.user,
    )
    certification = Certification.objects.with_state().get(pk=certification.pk)
    assert certification.state == CertificationStatus.ACTIVE
    assert certification.expires_at > timezone.now()


def test_expiry_job_records_each_lapse_once_and_is_safe_to_run_twice(org, domain):
    second = org.add_annotator("second")
    lapsed = issue(org, domain)
    current = issue(org, domain, annotator=second)
    Certification.objects.filter(pk=lapsed.pk).update(
        issued_at=timezone.now() - timedelta(days=10),
        expires_at=timezone.now() - timedelta(minutes=5),
    )
    assert expire_certifications() == 1
    assert expire_certifications() == 0
    lapsed.refresh_from_db()
    current.refresh_from_db()
    assert lapsed.status == CertificationStatus.EXPIRED
    assert current.status == CertificationStatus.ACTIVE
    events = AuditEvent.objects.filter(verb="certification.expired")
    assert events.count() == 1
    assert events.get().actor is None and events.get().annotator == org.annotator


def test_domain_with_certifications_cannot_be_deleted(org, domain):
    issue(org, domain)
    with pytest.raises(Conflict):
        services.domain_delete(domain=domain, actor=org.manager.user)
    assert Domain.objects.filter(pk=domain.pk).exists()


def test_audit_events_cannot_be_changed_or_deleted(org):
    event = AuditEvent.objects.first()
    event.reason = "rewritten"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    # Not through a bulk update either: the database itself refuses.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.reason == ""
