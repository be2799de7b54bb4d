"""Background jobs of the workforce registry."""

from celery import shared_task

from . import services


@shared_task(name="workforce.expire_certifications")
def expire_certifications() -> int:
    """Record lapsed certifications as expired. Expiry is already respected on read."""
    return services.certifications_expire()
