"""Row locks for task rows. Take them only through these helpers.

Order, whenever several are taken in one transaction: annotator (workforce), slot, assignment,
task. The claim locks the annotator then one slot; submit and release lock the slot, then the
assignment, then the task. Taking them in this order everywhere means no deadlock.
"""

from .models import Assignment, Slot, Task


def lock_slot_of(assignment: Assignment) -> Slot | None:
    """Lock the slot an assignment holds, or return None when it no longer holds it."""
    return (
        Slot.objects.select_for_update()
        .filter(pk=assignment.slot_id, assignment_id=assignment.pk)
        .first()
    )


def lock_assignment(assignment_id: int) -> Assignment:
    return (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project", "task")
        .get(pk=assignment_id)
    )


def lock_task(task_id: int) -> Task:
    return Task.objects.select_for_update().get(pk=task_id)
