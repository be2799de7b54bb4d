"""Row locks for qa rows. Take them only through these helpers.

Order, whenever several are taken in one transaction: an exam attempt, then the workforce rows
the grants lock (annotator, then certification; ``workforce/locks.py``). Starting an attempt
locks the annotator alone and only inserts an attempt, so it never waits for an attempt's lock.
"""

from .models import ExamAttempt


def lock_exam_attempt(attempt_id: int) -> ExamAttempt:
    """Lock one attempt so its claims and submissions, and its scoring, serialise.

    Its exam, annotator and the annotator's member and organization are read along, not locked.
    """
    return (
        ExamAttempt.objects.select_for_update(of=("self",), no_key=True)
        .select_related(
            "exam__domain", "annotator__member__user", "annotator__member__organization"
        )
        .get(pk=attempt_id)
    )
