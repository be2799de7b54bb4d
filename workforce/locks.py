"""Row locks for workforce rows. Take them only through these helpers, in primary-key order."""

from .models import Annotator, Certification


def lock_annotator(annotator_id: int) -> Annotator:
    """Lock one annotator row so concurrent status or skill changes serialise."""
    return Annotator.objects.select_for_update().select_related("member").get(pk=annotator_id)


def lock_certification(certification_id: int) -> Certification:
    """Lock one certification row so concurrent suspend/revoke/renew see each other's result."""
    return (
        Certification.objects.select_for_update()
        .select_related("domain", "annotator__member")
        .get(pk=certification_id)
    )
