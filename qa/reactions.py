"""How quality reacts to what happens in ``tasks``. Subscribed in ``QaConfig.ready()``."""

from tasks.models import Annotation

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
