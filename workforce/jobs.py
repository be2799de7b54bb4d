"""Background jobs of the workforce registry."""

from celery import shared_task

from . import queue, services


@shared_task(name="workforce.expire_certifications")
def expire_certifications() -> int:
    """Record lapsed certifications as expired. Expiry is already respected on read."""
    return services.certifications_expire()


@shared_task(name="workforce.requeue_pending_jobs")
def requeue_pending_jobs() -> int:
    """Send the jobs the broker refused again; safe to run twice or concurrently."""
    return queue.pending_jobs_requeue()
