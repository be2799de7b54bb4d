from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import ValidationFailed
from tasks.exports import export_project
from tasks.models import Project


class Command(BaseCommand):
    help = (
        "Export a project's annotated tasks (jsonl, coco, conll or spacy, by kind), streamed; "
        "every format names a task by its external_id."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="Project id.")
        parser.add_argument("--format", default="jsonl")
        parser.add_argument("--output", type=Path, help="Default: standard output.")

    def handle(self, *args, project, format, output, **options):
        try:
            target = Project.objects.get(pk=project)
        except Project.DoesNotExist as exc:
            raise CommandError(f"No project {project}.") from exc
        try:
            chunks, _, _ = export_project(target, format)
        except ValidationFailed as exc:
            raise CommandError(exc.message) from exc
        if output is None:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            return
        with output.open("w", encoding="utf-8") as stream:
            stream.writelines(chunks)
