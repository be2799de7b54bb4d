"""Helpers of the gold tests: projects with gold tasks, annotators, claims and submissions
through the real services."""

from tasks.models import Assignment, Task
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import CLASS_SCHEMA, image_rows, import_rows, make_project, staff
from workforce.models import Annotator

ANSWER = {"boxes": [{"label": "car", "x": 10, "y": 10, "w": 40, "h": 40}]}
HALF = {
    "boxes": [
        {"label": "car", "x": 10, "y": 10, "w": 40, "h": 40},
        {"label": "person", "x": 300, "y": 300, "w": 20, "h": 20},
    ]
}
WRONG = {"boxes": [{"label": "person", "x": 300, "y": 300, "w": 20, "h": 20}]}


def gold_project(org, *, regular: int, gold: int, answer=ANSWER, **fields):
    """A project (bbox unless ``kind`` says otherwise) of ``regular`` tasks then ``gold`` gold
    ones whose answer is ``answer``."""
    fields.setdefault("max_concurrent_tasks", 1000)
    project = make_project(org, **fields)
    rows = image_rows(regular + gold)
    for row in rows[regular:]:
        row["gold_answer"] = answer
    import_rows(project, rows)
    return project


def label_gold_project(org, *people, gold_tasks: int = 10, **fields):
    """A classification project, staffed with ``people``, where every claim is gold (the answer
    is ``car``). One regular task is there too: the claim only draws gold once it found regular
    work."""
    fields.setdefault("gold_rate", 1.0)
    project = gold_project(
        org,
        regular=1,
        gold=gold_tasks,
        answer={"label": "car"},
        kind="classification",
        schema=CLASS_SCHEMA,
        **fields,
    )
    staff(project, *people)
    return project


def label_gold_submit(project, annotator, *, correct: bool):
    """Claim the annotator's next task in a ``label_gold_project`` (gold) and submit a right or
    wrong label, through the real claim and submit: the score, the accuracy row and the job
    that evaluates quality rules all run (where after-commit callbacks execute)."""
    annotation = submit(annotator, project, lambda task: {"label": "car" if correct else "person"})
    assert annotation.task.is_gold
    return annotation


def annotators(org, project, count: int, *, limit: int = 1000) -> list[Annotator]:
    people = [org.add_annotator(f"gold-{project.pk}-{i}") for i in range(count)]
    Annotator.objects.filter(pk__in=[a.pk for a in people]).update(max_concurrent_tasks=limit)
    staff(project, *people)
    return [Annotator.objects.get(pk=a.pk) for a in people]


def is_gold(claimed) -> bool:
    return Task.objects.filter(pk=claimed.task_id, is_gold=True).exists()


def claim_gold_share(annotator, project, claims: int) -> float:
    """Claim ``claims`` times without submitting; return the share that were gold."""
    gold = 0
    for _ in range(claims):
        claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
        assert claimed is not None
        gold += is_gold(claimed)
    return gold / claims


def submit(annotator, project, payload_for=lambda task: ANSWER):
    """Claim one task and submit ``payload_for(task)``; return the annotation."""
    claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
    assert claimed is not None
    assignment = Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)
    annotation, created = assignment_submit(
        assignment=assignment, payload=payload_for(assignment.task)
    )
    assert created
    return annotation
