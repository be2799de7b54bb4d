import signal
import sys

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from config import embedded


class Command(BaseCommand):
    help = (
        "Serve the demo on one machine: start the embedded PostgreSQL unless DATABASE_URL names "
        "another, migrate, collect static files, seed the demo and serve it with uvicorn. The "
        "embedded server stops when this command does."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        # Stop the way Ctrl-C does, through the `finally` below, also when told to terminate.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        database = settings.DATABASES["default"]
        server = None
        try:
            if database["HOST"] == str(settings.EMBEDDED_POSTGRES_DIR):
                server = embedded.postgres_start(settings.EMBEDDED_POSTGRES_DIR)
                server.database_create(database["NAME"])
                self.stdout.write(f"PostgreSQL (embedded): {server.url(database['NAME'])}")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            call_command("seed_demo", stdout=self.stdout)
            # The server's threads open their own connections.
            connections.close_all()
            self.stdout.write(
                f"Assay is at http://{host}:{port}  (API docs: /api/docs/, admin: /admin/)"
            )
            # uvicorn shuts down gracefully on SIGINT or SIGTERM, then raises that signal again.
            uvicorn.run("config.asgi:application", host=host, port=port)
        except KeyboardInterrupt:
            pass
        finally:
            connections.close_all()
            if server is not None:
                server.stop()
