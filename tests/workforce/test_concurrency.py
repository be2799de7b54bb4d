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
    assert AuditEvent.objects.filter(verb="annotator.suspend").count() == 1


def test_concurrent_skill_changes_leave_an_audit_chain_without_gaps(org):
    run_concurrently(
        lambda i: services.annotator_skill_set(
            annotator=org.annotator, skill="ner", level=i % 6, source="manual", actor=None
        ),
        6,
    )
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
