"""The certification expiry job on a real Celery worker over the Redis broker."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from workforce import services
from workforce.jobs import expire_certifications
from workforce.models import AuditEvent, Certification, CertificationStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_runs_the_expiry_job_sent_through_the_broker(
    org, celery_worker_process, eager_jobs_off
):
    domain = services.domain_create(
        organization=org.organization, slug="med", name="Med", description="", actor=None
    )
    certification = services.certification_issue(
        annotator=org.annotator,
        domain=domain,
        issued_by=None,
        evidence="exam",
        expires_at=timezone.now() + timedelta(days=1),
    )
    Certification.objects.filter(pk=certification.pk).update(
        issued_at=timezone.now() - timedelta(days=2), expires_at=timezone.now()
    )
    expire_certifications.delay()
    expire_certifications.delay()  # delivered twice: still recorded once
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        certification.refresh_from_db()
        if certification.status == CertificationStatus.EXPIRED:
            break
        time.sleep(0.2)
    assert certification.status == CertificationStatus.EXPIRED
    time.sleep(0.5)  # let the second delivery finish
    assert AuditEvent.objects.filter(verb="certification.expired").count() == 1
