"""Sample projects for the demo organization, with tasks the demo annotators can claim."""

import io
import json
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from tasks.models import Project
from tasks.services.imports import tasks_import
from tasks.services.projects import project_create, project_members_add
from workforce.models import Annotator, Organization
from workforce.services import member_login

PROJECTS = [
    {
        "name": "Street scenes — vehicles and people",
        "client": "Acme Mobility",
        "kind": "bbox",
        "label_schema": {"labels": [{"name": "car", "color": "#e63946"}, {"name": "pedestrian", "color": "#457b9d"}, {"name": "cyclist", "color": "#2a9d8f"}]},
        "required_skill_level": 3,
        "required_domains": ["autonomous-driving"],
        "overlap": 2,
        "gold_rate": 0.05,
        "priority": 10,
        "instructions": "Draw a tight box around every **car**, **pedestrian** and **cyclist**.",
        "members": ["ana", "bo"],
        "rows": lambda i: {"external_id": f"street-{i:04d}", "data": {"image": f"https://example.com/street/{i:04d}.jpg", "width": 1280, "height": 720}},
        "count": 200,
        # Gold: known answers, mixed into the claims at the gold rate (more for newcomers).
        "gold": lambda i: {"boxes": [{"label": "car", "x": 100 + i, "y": 200, "w": 180, "h": 90}]},
        "gold_count": 20,
    },
    {
        "name": "Contract entities",
        "client": "Lex & Partners",
        "kind": "ner",
        "label_schema": {"labels": [{"name": "PARTY"}, {"name": "DATE"}, {"name": "AMOUNT"}]},
        "required_skill_level": 2,
        "required_domains": ["legal"],
        "overlap": 1,
        "priority": 5,
        "instructions": "Mark every party, date and amount in the clause.",
        "members": ["chidi", "dana"],
        "rows": lambda i: {"external_id": f"clause-{i:04d}", "data": {"text": f"On 1 March 2026 Acme Ltd agreed to pay Beta GmbH EUR {1000 + i} under clause {i}."}},
        "count": 100,
    },
    {
        "name": "Product photo moderation",
        "client": "ShopCo",
        "kind": "classification",
        "label_schema": {"labels": [{"name": "ok"}, {"name": "blurry"}, {"name": "offensive"}]},
        "overlap": 3,
        "gold_rate": 0.1,
        "priority": 1,
        "instructions": "Is the product photo fit for the catalogue?",
        "members": ["ana", "bo", "chidi", "dana", "emil"],
        "rows": lambda i: {"external_id": f"photo-{i:04d}", "data": {"image": f"https://example.com/p/{i}.jpg"}},
        "count": 300,
        "gold": lambda i: {"label": ("ok", "blurry", "offensive")[i % 3]},
        "gold_count": 30,
    },
]  # fmt: skip


@transaction.atomic
def seed_projects(organization: Organization) -> list[Project]:
    """Create the sample projects once; a second run leaves them as they are."""
    created = []
    for spec in PROJECTS:
        spec = dict(spec)
        members, make_row, count = spec.pop("members"), spec.pop("rows"), spec.pop("count")
        make_gold, gold_count = spec.pop("gold", None), spec.pop("gold_count", 0)
        if Project.objects.filter(organization=organization, name=spec["name"]).exists():
            continue
        project = project_create(
            organization=organization,
            actor=None,
            status="active",
            deadline=timezone.now() + timedelta(days=30),
            **spec,
        )
        rows = [make_row(i) for i in range(count)]
        rows += [make_row(count + i) | {"gold_answer": make_gold(i)} for i in range(gold_count)]
        body = "".join(json.dumps(row) + "\n" for row in rows).encode()
        tasks_import(project=project, open_stream=lambda body=body: io.BytesIO(body), fmt="jsonl")
        annotators = Annotator.objects.filter(
            member__organization=organization,
            member__user__username__in=[
                member_login(organization=organization, username=name) for name in members
            ],
        )
        project_members_add(
            project=project, annotators=list(annotators), role="annotator", actor=None
        )
        created.append(project)
    return created
