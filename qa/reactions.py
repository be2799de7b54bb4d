"""How quality reacts to what happens in ``tasks``. Subscribed in ``QaConfig.ready()``."""

from tasks.models import Annotation, TaskImport

from .live import send_live


def on_annotation_submitted(*, annotation_id: int) -> None:
    """Tell the organization's staff, and the annotator, that work came in."""
    annotation = (
        Annotation.objects.select_related("project", "annotator")
        .only(
            "id",
            "task_id",
            "duration_seconds",
            "project__organization_id",
            "annotator__member_id",
        )
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None:
        return
    send_live(
        "annotation.submitted",
        {
            "annotation": annotation.pk,
            "project": annotation.project_id,
            "task": annotation.task_id,
            "annotator": annotation.annotator_id,
            "duration_seconds": annotation.duration_seconds,
        },
        organization_id=annotation.project.organization_id,
        member_id=annotation.annotator.member_id,
    )


def on_import_progressed(*, import_id: int) -> None:
    """Tell the organization's staff how far an import has come."""
    job = (
        TaskImport.objects.select_related("project")
        .only("id", "status", "rows_read", "report", "project__organization_id")
        .filter(pk=import_id)
        .first()
    )
    if job is None:
        return
    report = job.report or {}
    send_live(
        "import.progressed",
        {
            "import": job.pk,
            "project": job.project_id,
            "status": job.status,
            "rows_read": job.rows_read,
            "created": report.get("created"),
            "invalid": report.get("invalid"),
        },
        organization_id=job.project.organization_id,
    )
