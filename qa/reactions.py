"""How quality reacts to what happens in ``tasks``. Subscribed in ``QaConfig.ready()``."""

from . import live


def on_annotation_submitted(*, annotation_id: int) -> None:
    """In the submission's transaction: the live event joins the outbox, or nothing does."""
    live.record_annotation_submitted(annotation_id)


def on_import_progressed(*, import_id: int) -> None:
    """After the import's progress commits: the live event joins the outbox.

    After commit, not within: the import writes its progress outside any transaction of its
    own, and an event written inside a long import transaction would reach nobody until the
    end. A process that dies between the two loses one progress message, which the next one
    (or the import's own row) makes good.
    """
    live.record_import_progressed(import_id)
