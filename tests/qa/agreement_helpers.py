"""Helpers of the agreement and consensus tests: projects whose tasks several annotators work
on, through the real claim and submit."""

from tasks.models import Assignment, Task
from tasks.services.claims import assignment_submit, claim_next
from tests.helpers import CLASS_SCHEMA, image_rows, import_rows, make_project
from tests.qa.gold_helpers import annotators

NER_SCHEMA = {"labels": [{"name": "PER"}, {"name": "ORG"}]}
TEXT = "Ana works at Acme."
ANA = {"start": 0, "end": 3, "label": "PER"}
ACME = {"start": 13, "end": 17, "label": "ORG"}
CAR = {"label": "car", "x": 10, "y": 10, "w": 40, "h": 40}
PERSON = {"label": "person", "x": 300, "y": 300, "w": 20, "h": 20}


def crowd_project(org, *, kind="classification", tasks=1, people=3, schema=None, **fields):
    """A project of ``tasks`` tasks with overlap ``people`` (unless given), staffed with
    ``people`` annotators; returns (project, annotators)."""
    fields.setdefault("overlap", people)
    fields.setdefault("max_concurrent_tasks", 1000)
    schema = schema or {"classification": CLASS_SCHEMA, "ner": NER_SCHEMA}.get(kind)
    project = make_project(org, kind=kind, schema=schema, **fields)
    if kind == "ner":
        rows = [{"external_id": f"t{i}", "data": {"text": TEXT}} for i in range(tasks)]
    else:
        rows = image_rows(tasks)
    import_rows(project, rows)
    return project, annotators(org, project, people)


def work(annotator, project, payload) -> Assignment:
    """The annotator claims their next task in the project and submits ``payload`` (a payload,
    or a function of the task returning one); returns the assignment."""
    claimed = claim_next(annotator=annotator, project_id=project.pk).claimed
    assert claimed is not None
    assignment = Assignment.objects.select_related("project", "task").get(pk=claimed.assignment_id)
    body = payload(assignment.task) if callable(payload) else payload
    assignment_submit(assignment=assignment, payload=body)
    return assignment


def one_task(project) -> Task:
    return Task.objects.get(project=project)
