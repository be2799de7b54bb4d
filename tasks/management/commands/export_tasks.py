import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
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
        parser.add_argument(
            "--include-incomplete",
            action="store_true",
            help="Tasks with seats still open too (default: tasks whose every seat is submitted).",
        )
        parser.add_argument("--include-gold", action="store_true", help="Gold tasks too.")

    def handle(self, *args, project, format, output, include_incomplete, include_gold, **options):
        try:
            target = Project.objects.get(pk=project)
        except Project.DoesNotExist as exc:
            raise CommandError(f"No project {project}.") from exc
        try:
            chunks, _, _ = export_project(
                target, format, include_incomplete=include_incomplete, include_gold=include_gold
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if output is None:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            return
        # Written beside the output and renamed over it once complete: a run that fails leaves
        # the output as it was (absent, or a previous export), never a partial file.
        handle, temporary = tempfile.mkstemp(
            dir=output.parent, prefix=f".{output.name}.", suffix=".partial"
        )
        try:
            with open(handle, "w", encoding="utf-8") as stream:
                stream.writelines(chunks)
            # mkstemp makes the file private; the export gets the mode any new file would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
            os.replace(temporary, output)
        except BaseException as exc:
            Path(temporary).unlink(missing_ok=True)
            if isinstance(exc, Exception):
                raise CommandError(f"The export failed; {output} was not written: {exc!r}") from exc
            raise
