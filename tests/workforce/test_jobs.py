"""The certification expiry job on a real Celery worker over the Redis broker."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.helpers import wait_for
from workforce import services
from workforce.jobs import expire_certifications
from workforce.models import AuditEvent, Certification, CertificationStatus

pytestmark = pytest.mark.django_db(transaction=True)


def lapsed_certification(org, slug: str) -> Certification:
    """A certification issued two days ago whose expiry has just passed, still ``active``."""
    domain = services.domain_create(
        organization=org.organization, slug=slug, name=slug.title(), description="", actor=None
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
    return certification


def expired(certification: Certification) -> bool:
    certification.refresh_from_db()
    return certification.status == CertificationStatus.EXPIRED


def expiry_audits(certification: Certification) -> int:
    return AuditEvent.objects.filter(
        verb="certification.expired", target_type="certification", target_id=certification.pk
    ).count()


def test_worker_runs_the_expiry_job_sent_through_the_broker_and_a_second_run_records_nothing_twice(
    org, celery_worker_process, eager_jobs_off
):
    first = lapsed_certification(org, "med")
    expire_certifications.delay()
    wait_for(lambda: expired(first), timeout=20, what="the first delivery to expire it")

    # Deliver the job again. Only this second run can expire ``second``: its expiry is set after
    # the first run took its ``now``. So once ``second`` is expired the second run has done its
    # work, and it must not have recorded ``first`` again.
    second = lapsed_certification(org, "law")
    expire_certifications.delay()
    wait_for(lambda: expired(second), timeout=20, what="the second delivery to expire it")

    assert expiry_audits(first) == 1
    assert expiry_audits(second) == 1
    assert AuditEvent.objects.filter(verb="certification.expired").count() == 2


def sessions_started() -> int:
    """How many sessions were ever opened on the test database (PostgreSQL's own count)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_the_worker_keeps_its_database_connection_from_one_job_to_the_next(
    org, celery_worker_process, eager_jobs_off
):
    """A job does not pay a new PostgreSQL session (a process forked, its plans made again):
    the worker's connection outlives the job, as a web process's outlives a request."""
    first = lapsed_certification(org, "med")
    expire_certifications.delay()
    wait_for(lambda: expired(first), timeout=20, what="the first job")
    opened = sessions_started()

    for slug in ("law", "tax", "bio"):
        certification = lapsed_certification(org, slug)
        expire_certifications.delay()
        wait_for(lambda c=certification: expired(c), timeout=20, what=f"the {slug} job")

    assert sessions_started() == opened
