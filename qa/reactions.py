"""How quality reacts to what happens in ``tasks``. Subscribed in ``QaConfig.ready()``."""

from tasks.models import Annotation, TaskImport

from .live import send_to_organization


def on_annotation_submitted(*, annotation_id: int) -> None:
    """Tell the organization's live dashboards that work came in."""
    annotation = (
        Annotation.objects.select_related("project")
        .only("id", "task_id", "annotator_id", "duration_seconds", "project__organization_id")
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        return
    send_to_organization(
        annotation.project.organization_id,
        "annotation.submitted",
        {
            "annotation": annotation.pk,
            "project": annotation.project_id,
            "task": annotation.task_id,
            "annotator": annotation.annotator_id,
            "duration_seconds": annotation.duration_seconds,
        },
    )


def on_import_progressed(*, import_id: int) -> None:
    """Tell the organization's live dashboards how far an import has come."""
    job = (
        TaskImport.objects.select_related("project")
        .only("id", "status", "rows_read", "report", "project__organization_id")
        .filter(pk=import_id)
        .first()
    )
    if job is None:
        return
    report = job.report or {}
    send_to_organization(
        job.project.organization_id,
        "import.progressed",
        {
            "import": job.pk,
            "project": job.project_id,
            "status": job.status,
            "rows_read": job.rows_read,
            "created": report.get("created"),
            "invalid": report.get("invalid"),
        },
    )
