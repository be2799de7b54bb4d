"""Celery jobs of projects and tasks: thin, by id, safe to run twice.

Services queue ``run_import`` and ``add_overlap_seats`` after commit through
``workforce.queue.enqueue``, which keeps a message the broker refused and sends it again, so
either may run twice. Beat runs ``expire_assignments``, ``recover_imports`` and
``catch_up_overlap_seats`` (``CELERY_BEAT_SCHEDULE``).
"""

from celery import shared_task

from .models import Project
from .services import claims, imports, projects


@shared_task(name="tasks.expire_assignments")
def expire_assignments() -> int:
    """Record lapsed leases as expired for reporting; claims never wait for this."""
    return claims.assignments_expire()


@shared_task(name="tasks.run_import")
def run_import(import_id: int) -> str | None:
    """Import an uploaded file of tasks; delivered twice, the second run finds it finished."""
    task_import = imports.task_import_run(import_id=import_id)
    return task_import.status if task_import else None


@shared_task(name="tasks.recover_imports")
def recover_imports() -> int:
    """Queue again the imports whose worker stopped (their heartbeat did), or fail them."""
    return imports.task_imports_recover()


@shared_task(name="tasks.add_overlap_seats")
def add_overlap_seats(project_id: int) -> int:
    """Give a project's tasks the seats a raised overlap adds; safe to run again."""
    project = Project.objects.filter(pk=project_id).first()
    return projects.project_seats_add(project=project) if project else 0


@shared_task(name="tasks.catch_up_overlap_seats")
def catch_up_overlap_seats() -> int:
    """Seat the raised overlaps whose ``add_overlap_seats`` run failed or was lost."""
    return projects.project_seats_catch_up()
