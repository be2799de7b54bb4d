"""Background jobs of projects and tasks."""

from celery import shared_task

from .services import claims, imports


@shared_task(name="tasks.expire_assignments")
def expire_assignments() -> int:
    """Record lapsed leases as expired for reporting; claims never wait for this."""
    return claims.assignments_expire()


@shared_task(name="tasks.run_import")
def run_import(import_id: int) -> str | None:
    """Import an uploaded file of tasks; delivered twice, the second run finds it finished."""
    job = imports.task_import_run(import_id=import_id)
    return job.status if job else None
