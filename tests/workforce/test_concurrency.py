"""Concurrent writers on PostgreSQL: each change happens once and is audited once."""

import itertools
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.errors import Conflict
from workforce import services
from workforce.models import AnnotatorSkill, AuditEvent, Certification, CertificationStatus

pytestmark = pytest.mark.django_db(transaction=True)


def run_concurrently(fn, count: int) -> list:
    """Run ``fn(i)`` in ``count`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # collected and asserted on by the caller
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_issues_of_one_certification_grant_it_once(org):
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )

    def attempt(i):
        return services.certification_issue(
            annotator=org.annotator,
            domain=domain,
            issued_by=org.qa_lead.user,
            evidence=f"exam {i}",
            expires_at=None,
        )

    results = run_concurrently(attempt, 8)
    granted = [r for r in results if isinstance(r, Certification)]
    assert len(granted) == 1
    assert all(isinstance(r, Conflict) for r in results if r not in granted)
    assert Certification.objects.count() == 1
    assert AuditEvent.objects.filter(verb="certification.issued").count() == 1


def test_concurrent_suspensions_apply_once(org):
    results = run_concurrently(
        lambda i: services.annotator_set_status(
            annotator=org.annotator, action="suspend", actor=org.qa_lead.user, reason=f"r{i}"
        ),
        6,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    # The others were told it is already suspended, not failed some other way.
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception)), results
    assert AuditEvent.objects.filter(verb="annotator.suspended").count() == 1


def test_concurrent_skill_changes_leave_an_audit_chain_without_gaps(org):
    results = run_concurrently(
        lambda i: services.annotator_skill_set(
            annotator=org.annotator, skill="ner", level=i % 6, source="manual", actor=None
        ),
        6,
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    events = list(AuditEvent.objects.filter(verb="skill.set").order_by("id"))
    assert len(events) == 6
    # Each change saw the level the previous one left: the locks serialised them.
    for previous, current in itertools.pairwise(events):
        assert current.before["level"] == previous.after["level"]
    final = AnnotatorSkill.objects.get(annotator=org.annotator, skill="ner")
    assert final.level == events[-1].after["level"]


def test_concurrent_expiry_jobs_record_each_lapse_exactly_once(org):
    domain = services.domain_create(
        organization=org.organization, slug="med", name="Med", description="", actor=None
    )
    annotators = [org.add_annotator(f"a{i}") for i in range(40)]
    for annotator in annotators:
        services.certification_issue(
            annotator=annotator,
            domain=domain,
            issued_by=None,
            evidence="exam",
            expires_at=timezone.now() + timedelta(days=1),
        )
    Certification.objects.update(
        issued_at=timezone.now() - timedelta(days=2),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    results = run_concurrently(lambda i: services.certifications_expire(batch_size=7), 4)
    assert sum(results) == 40
    assert Certification.objects.filter(status=CertificationStatus.EXPIRED).count() == 40
    assert AuditEvent.objects.filter(verb="certification.expired").count() == 40


ROUNDS = 30


def _certification_row(certification: Certification) -> dict:
    """The certification's stored state in the form its audit events record it."""
    row = Certification.objects.get(pk=certification.pk)
    return {
        "status": row.status,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }


def _events_since(certification: Certification, mark: int) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            target_type="certification", target_id=certification.pk, pk__gt=mark
        ).order_by("pk")
    )


def _start_round(certification: Certification, annotator, domain, *, state: str) -> None:
    """Leave the certification revoked, active, or active past its expiry, through the services.

    Expiry is the one change made directly: the round needs it now, not in a day.
    """
    certification = Certification.objects.with_state().get(pk=certification.pk)
    if certification.state != CertificationStatus.REVOKED:
        services.certification_set_status(
            certification=certification, action="revoke", actor=None, reason="next round"
        )
    if state == CertificationStatus.REVOKED:
        return
    now = timezone.now()
    services.certification_issue(
        annotator=annotator,
        domain=domain,
        issued_by=None,
        evidence="exam",
        expires_at=now + timedelta(days=30),
    )
    if state == CertificationStatus.EXPIRED:
        Certification.objects.filter(pk=certification.pk).update(
            issued_at=now - timedelta(days=2), expires_at=now - timedelta(seconds=1)
        )


def _assert_audit_chain(certification: Certification, events: list[AuditEvent], start: str):
    """Each committed change has one event; each saw what the one before it left."""
    assert events, "a round without any committed change"
    assert events[0].before["status"] == start
    for previous, current in itertools.pairwise(events):
        assert current.before == previous.after
    final = _certification_row(certification)
    assert {k: events[-1].after[k] for k in final} == final


@pytest.fixture
def certified(org):
    """The annotator, a domain, and their certification in it (member rows read up front)."""
    domain = services.domain_create(
        organization=org.organization, slug="legal", name="Legal", description="", actor=None
    )
    annotator = type(org.annotator).objects.select_related("member__user").get(pk=org.annotator.pk)
    certification = services.certification_issue(
        annotator=annotator, domain=domain, issued_by=None, evidence="exam", expires_at=None
    )
    return annotator, domain, certification


def test_reissue_racing_a_suspension_neither_deadlocks_nor_loses_an_audit_event(certified, org):
    annotator, domain, certification = certified
    failures = []
    for round_ in range(ROUNDS):
        start = CertificationStatus.EXPIRED if round_ % 2 else CertificationStatus.REVOKED
        _start_round(certification, annotator, domain, state=start)
        certification.refresh_from_db()
        stored_start = certification.status
        mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

        def race(i):
            if i == 0:
                return services.certification_issue(
                    annotator=annotator,
                    domain=domain,
                    issued_by=org.qa_lead.user,
                    evidence=f"exam {round_}",
                    expires_at=timezone.now() + timedelta(days=30),
                )
            return services.certification_set_status(
                certification=certification, action="suspend", actor=None, reason="rule"
            )

        issued, suspended = run_concurrently(race, 2)
        if not isinstance(issued, Certification) or not isinstance(
            suspended, Certification | Conflict
        ):
            failures.append((round_, issued, suspended))
            continue
        events = _events_since(certification, mark)
        if isinstance(suspended, Conflict):
            # The suspension came first and found nothing in force to suspend.
            assert suspended.code == "invalid_status"
            assert [e.verb for e in events] == ["certification.issued"]
        else:
            # The re-issue came first; the suspension applied to what it issued.
            assert [e.verb for e in events] == ["certification.issued", "certification.suspended"]
        _assert_audit_chain(certification, events, stored_start)
    assert not failures, f"{len(failures)} of {ROUNDS} rounds failed: {failures[:3]}"


def test_renewal_racing_a_suspension_neither_deadlocks_nor_loses_an_audit_event(certified):
    annotator, domain, certification = certified
    failures = []
    for round_ in range(ROUNDS):
        start = CertificationStatus.EXPIRED if round_ % 2 else CertificationStatus.ACTIVE
        _start_round(certification, annotator, domain, state=start)
        certification.refresh_from_db()
        stored_start = certification.status
        mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
        renewed_until = timezone.now() + timedelta(days=60 + round_)

        def race(i):
            if i == 0:
                return services.certification_renew(
                    certification=certification, expires_at=renewed_until, actor=None
                )
            return services.certification_set_status(
                certification=certification, action="suspend", actor=None, reason="rule"
            )

        renewed, suspended = run_concurrently(race, 2)
        if not isinstance(renewed, Certification) or not isinstance(
            suspended, Certification | Conflict
        ):
            failures.append((round_, renewed, suspended))
            continue
        events = _events_since(certification, mark)
        verbs = [e.verb for e in events]
        if isinstance(suspended, Conflict):
            # Only an expired certification refuses a suspension, and only before its renewal.
            assert start == CertificationStatus.EXPIRED
            assert verbs == ["certification.renewed"]
        else:
            assert sorted(verbs) == ["certification.renewed", "certification.suspended"]
            # Whichever came first, a suspension holds: a renewal never lifts it.
            assert events[-1].after["status"] == CertificationStatus.SUSPENDED
        assert _certification_row(certification)["expires_at"] == renewed_until.isoformat()
        _assert_audit_chain(certification, events, stored_start)
    assert not failures, f"{len(failures)} of {ROUNDS} rounds failed: {failures[:3]}"
