import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from config.errors import DomainError
from tasks.models import Project
from tasks.services.imports import OnError, tasks_import
from tasks.task_files import FORMATS, file_problem, guess_format


class Command(BaseCommand):
    help = "Import tasks into a project from a JSON, JSON Lines or CSV file, streamed."

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="Project id.")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file suffix.")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the valid rows and report the others (default: all or nothing).",
        )

    def handle(self, *args, project, file, format, skip_invalid, **options):
        try:
            target = Project.objects.get(pk=project)
        except Project.DoesNotExist as exc:
            raise CommandError(f"No project {project}.") from exc
        fmt = format or guess_format(file.name)
        if fmt is None:
            raise CommandError("Cannot tell the format from the file name; pass --format.")
        if not file.is_file():
            raise CommandError(f"No file {file}.")
        with file.open("rb") as handle:
            if problem := file_problem(handle, fmt):
                raise CommandError(problem)
        total = file.stat().st_size
        with tqdm(total=total, unit="B", unit_scale=True, disable=None) as bar:
            handles = []

            def open_stream():
                handle = file.open("rb")
                handles.append(handle)
                bar.reset()
                return handle

            def progress(rows: int) -> None:
                bar.n = handles[-1].tell()
                bar.set_postfix(rows=rows)
                bar.refresh()

            try:
                report = tasks_import(
                    project=target,
                    open_stream=open_stream,
                    fmt=fmt,
                    on_error=OnError.SKIP if skip_invalid else OnError.ABORT,
                    progress=progress,
                )
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            finally:
                for handle in handles:
                    handle.close()
        for error in report.errors[:20]:
            self.stderr.write(f"row {error.row}: {error.field}: {error.message}")
        summary = json.dumps({k: v for k, v in report.as_dict().items() if k != "errors"})
        if not report.imported:
            raise CommandError(f"Nothing imported: {report.invalid} invalid rows. {summary}")
        self.stdout.write(summary)
