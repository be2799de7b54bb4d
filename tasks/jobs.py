"""Background jobs of projects and tasks."""

from celery import shared_task

from .services import claims


@shared_task(name="tasks.expire_assignments")
def expire_assignments() -> int:
    """Record lapsed leases as expired for reporting; claims never wait for this."""
    return claims.assignments_expire()
