"""A client generated from the OpenAPI schema works against the live server.

``openapi-python-client`` generates a typed client from the schema the server serves, into a
temporary directory (generated code is never committed). The test lists, creates a project,
claims and submits a bbox payload through it, and checks the typed results: a client learns
what to send and what comes back from the schema alone.
"""

import importlib
import inspect
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.helpers import Org, asgi_server, image_rows, import_rows, make_project, staff

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "assay_generated_client"


def generate_client(base: str, directory: Path):
    """Generate a client package from the live server's schema and import it."""
    schema = httpx.get(
        f"{base}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}
    ).json()
    path = directory / "schema.json"
    path.write_text(json.dumps(schema))
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [str(generator), "generate", "--path", str(path), "--meta", "none",
         "--output-path", str(directory / PACKAGE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(directory))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    return schema, importlib.import_module(PACKAGE)


def snake(name: str) -> str:
    """An operation id as the generator names its module."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-zA-Z0-9]+", "_", name).strip("_").lower()


class Operations:
    """The generated client's functions, found by path and method through the schema."""

    def __init__(self, schema: dict, package):
        self.schema = schema
        self.package = package

    def __call__(self, method: str, path: str):
        operation = self.schema["paths"][path][method]
        tag = snake(operation["tags"][0])
        return importlib.import_module(
            f"{self.package.__name__}.api.{tag}.{snake(operation['operationId'])}"
        )

    @staticmethod
    def body(module, value: dict):
        """The request model the function takes, built from ``value`` by the model itself."""
        hints = typing.get_type_hints(module.sync_detailed)
        for candidate in typing.get_args(hints["body"]) or (hints["body"],):
            if inspect.isclass(candidate) and hasattr(candidate, "from_dict"):
                return candidate.from_dict(value)
        raise AssertionError(f"No request model in {hints['body']}")


def test_a_generated_client_lists_creates_claims_and_submits(tmp_path):
    org = Org("gen")
    project = make_project(org, kind="bbox", name="Street scenes")
    import_rows(project, image_rows(3))
    staff(project, org.annotator)
    tokens = {
        role: Token.objects.get_or_create(user=org.member(role).user)[0].key
        for role in ("manager", "annotator")
    }

    with asgi_server() as base:
        schema, package = generate_client(base, tmp_path)
        operations = Operations(schema, package)

        def client(role: str):
            return package.AuthenticatedClient(
                base_url=base,
                token=tokens[role],
                prefix="Token",
                headers={"X-Organization": org.organization.slug},
                raise_on_unexpected_status=True,
            )

        manager, annotator = client("manager"), client("annotator")

        # A list is a page: count, next, previous and typed results.
        listing = operations("get", "/api/v1/projects/").sync_detailed(client=manager)
        assert listing.status_code == 200
        page = listing.parsed
        assert page.count == 1
        assert [p.name for p in page.results] == ["Street scenes"]
        assert page.results[0].id == project.pk

        # Create a project from a request model the schema describes.
        create = operations("post", "/api/v1/projects/")
        created = create.sync_detailed(
            client=manager,
            body=Operations.body(
                create,
                {
                    "name": "Generated",
                    "kind": "bbox",
                    "label_schema": {"labels": [{"name": "car"}]},
                    "overlap": 2,
                    "gold_rate": 0.1,
                    "status": "active",
                },
            ),
        )
        assert created.status_code == 201, created.content
        assert isinstance(created.parsed.id, int)
        assert created.parsed.name == "Generated"
        assert created.parsed.overlap == 2
        listing = operations("get", "/api/v1/projects/").sync_detailed(client=manager)
        assert listing.parsed.count == 2

        # Claim a task and submit boxes for it.
        claim = operations("post", "/api/v1/claims/")
        claimed = claim.sync_detailed(
            client=annotator, body=Operations.body(claim, {"project": project.pk})
        )
        assert claimed.status_code == 201, claimed.content
        assignment = claimed.parsed
        assert assignment.project.id == project.pk
        task_ids = set(project.tasks.values_list("pk", flat=True))
        assert assignment.task.id in task_ids

        submit = operations("post", "/api/v1/assignments/{id}/submit/")
        payload = {"boxes": [{"label": "car", "x": 10, "y": 20, "w": 50, "h": 30}]}
        submitted = submit.sync_detailed(
            assignment.id,
            client=annotator,
            body=Operations.body(submit, {"payload": payload, "active_seconds": 1}),
        )
        assert submitted.status_code == 201, submitted.content
        annotation = submitted.parsed
        assert annotation.task == assignment.task.id
        assert annotation.assignment == assignment.id
        stored = annotation.payload
        assert (stored.to_dict() if hasattr(stored, "to_dict") else stored) == payload

        # The annotator's own annotations, as a typed page.
        mine = operations("get", "/api/v1/annotations/").sync_detailed(client=annotator)
        assert mine.parsed.count == 1
        assert mine.parsed.results[0].id == annotation.id
