"""Label Studio as the peer of ``bench/loop.py --peer label-studio``: installed, seeded, served.

Label Studio (``VERSION``) goes into a virtualenv of its own outside the repository (made with
this interpreter's ``venv``; ``pip`` fetches it and uWSGI from PyPI, and uWSGI is compiled, so a C
compiler is needed). It keeps its data in a PostgreSQL database of its own on the bench's server
(``DATABASE``, dropped at the end; the first run keeps a migrated copy, ``TEMPLATE``, to start
the next ones from) and is served by uWSGI as its Docker image serves it
(``deploy/uwsgi.ini`` of its repository: two processes per core, one thread each, a master, its
HTTP router). Its annotators' loop is the one its own labeling stream makes:
``GET /api/projects/{id}/next/``, then ``POST /api/tasks/{id}/annotations/`` with the same
three boxes as Assay's loop, as ``rectanglelabels``. Its tasks are imported over its API, as
``POST /api/projects/{id}/import`` with a JSON array (the Community edition imports while the
request waits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _setup
import psycopg

VERSION = "1.23.2"
DATABASE = os.environ.get("BENCH_PEER_DATABASE", f"{_setup.DB_NAME}_label_studio")
# Its database freshly migrated, kept on the server between runs (drop it to migrate again).
TEMPLATE = f"{DATABASE}_{VERSION.replace('.', '_')}_migrated"
PASSWORD = _setup.PASSWORD
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="car"/><Label value="person"/><Label value="bicycle"/>
  </RectangleLabels>
</View>"""

# Run inside Label Studio's interpreter: an organization whose legacy API tokens work, an owner,
# the annotators, one project per size (one annotation per task), everyone's token, as JSON.
_SEED = """
import json, sys
import django
django.setup()
from organizations.functions import create_organization
from organizations.models import OrganizationMember
from projects.models import Project
from rest_framework.authtoken.models import Token
from users.models import User

spec = json.loads(sys.argv[1])
owner = User.objects.create_user(email="owner@loop.bench", password=spec["password"],
                                 username="owner")
org = create_organization(title="loop bench", created_by=owner, legacy_api_tokens_enabled=True)
owner.active_organization = org
owner.save(update_fields=["active_organization"])
out = {"owner": Token.objects.get_or_create(user=owner)[0].key, "projects": {}, "tokens": {}}
for name in spec["projects"]:
    project = Project.objects.create(title=name, organization=org, created_by=owner,
                                     label_config=spec["label_config"], maximum_annotations=1,
                                     show_skip_button=False)
    out["projects"][name] = project.id
    tokens = []
    for n in range(spec["clients"]):
        user = User.objects.create_user(email=f"annotator-{name}-{n}@loop.bench",
                                        password=spec["password"], username=f"a-{name}-{n}")
        OrganizationMember.objects.create(user=user, organization=org)
        user.active_organization = org
        user.save(update_fields=["active_organization"])
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    out["tokens"][name] = tokens
print(json.dumps(out))
"""


def result_of(payload: dict) -> list[dict]:
    """Assay's bbox payload as Label Studio's ``rectanglelabels`` result, in percent of an image
    of 640 x 480 (the size the boxes were drawn in)."""
    return [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 640,
            "original_height": 480,
            "value": {
                "x": box["x"] / 6.4,
                "y": box["y"] / 4.8,
                "width": box["w"] / 6.4,
                "height": box["h"] / 4.8,
                "rotation": 0,
                "rectanglelabels": [box["label"]],
            },
        }
        for box in payload["boxes"]
    ]


class LabelStudioClient:
    """An annotator of Label Studio: its next task, then an annotation of it."""

    def __init__(self, port: int, token: str, project: int, payload: dict):
        import loop

        self.http = loop.Connection(
            port, {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        )
        self.project = project
        self.body = json.dumps({"result": result_of(payload), "lead_time": 1.0}).encode()

    def claim(self) -> int | None:
        status, body = self.http.call("GET", f"/api/projects/{self.project}/next/")
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"next answered {status}: {body[:300]!r}")
        return json.loads(body)["id"]

    def submit(self, task: int) -> None:
        path = f"/api/tasks/{task}/annotations/?project={self.project}"
        status, body = self.http.call("POST", path, self.body)
        if status != 201:
            raise RuntimeError(f"annotation answered {status}: {body[:300]!r}")


class LabelStudio:
    def __init__(self, venv: Path):
        self.venv = venv.resolve()
        self.python = self.venv / "bin" / "python"
        self.server = None

    # --- installing ----------------------------------------------------------------------------

    @property
    def package(self) -> Path:
        site = self.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        return site / "site-packages" / "label_studio"

    def install(self) -> None:
        """Make the virtualenv and install Label Studio and uWSGI, unless they are there."""
        if self.python.exists():
            shown = subprocess.run(
                [str(self.python), "-m", "pip", "show", "label-studio"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if f"Version: {VERSION}" in shown.stdout and (self.venv / "bin" / "uwsgi").exists():
                return
        root = Path(__file__).resolve().parent.parent
        if self.venv.is_relative_to(root):
            raise SystemExit(f"{self.venv} is inside the repository: choose another --peer-venv")
        print(f"installing Label Studio {VERSION} and uWSGI into {self.venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        subprocess.run(
            [str(self.python), "-m", "pip", "install", "--quiet", f"label-studio=={VERSION}",
             "uwsgi"],
            check=True,
        )  # fmt: skip

    # --- serving -------------------------------------------------------------------------------

    def environment(self, data_dir: Path) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "DB_", "REDIS_", "PYTHONPATH"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="core.settings.label_studio",
            DJANGO_DB="default",
            POSTGRE_NAME=DATABASE,
            POSTGRE_USER="postgres",
            POSTGRE_PASSWORD="",
            POSTGRE_HOST=_setup.HOST,
            POSTGRE_PORT=str(_setup.PORT),
            LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
            DEBUG="false",
            LOG_LEVEL="WARNING",
            # Its imports keep task data in the database, as Assay's do.
            LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
        )
        return env

    def manage(self, env: dict[str, str], *args: str) -> str:
        done = subprocess.run(
            [str(self.python), str(self.package / "manage.py"), *args],
            cwd=self.package, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-3000:]}")
        return done.stdout

    def start(self, tmp: Path, sizes: list[int], clients: int, rows: Path) -> None:
        """A fresh database, migrated and seeded; uWSGI serving it; each size's tasks imported
        over the API from ``rows`` (JSON Lines as ``_setup.write_image_rows`` writes them)."""
        import loop

        data_dir = tmp / "label-studio"
        data_dir.mkdir()
        self.env = self.environment(data_dir)
        self.database_create()
        spec = {
            "password": PASSWORD,
            "label_config": LABEL_CONFIG,
            "clients": clients,
            "projects": [str(size) for size in sizes] + ["import"],
        }
        seeded = subprocess.run(
            [str(self.python), "-c", _SEED, json.dumps(spec)],
            cwd=self.package, env=self.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if seeded.returncode:
            raise RuntimeError(f"seeding Label Studio failed: {seeded.stderr[-3000:]}")
        self.seeded = json.loads(seeded.stdout.strip().splitlines()[-1])
        self.port = _setup.free_port()
        ini = tmp / "uwsgi.ini"
        # deploy/uwsgi.ini of Label Studio's repository, less its logging and stats server.
        ini.write_text(
            "[uwsgi]\n"
            f"chdir = {self.package}\n"
            f"http = {_setup.HOST}:{self.port}\n"
            "module = core.wsgi:application\n"
            "master = true\ncheaper = true\nsingle-interpreter = true\n"
            f"processes = {2 * (os.cpu_count() or 1)}\nthreads = 1\n"
            "vacuum = true\ndie-on-term = true\nbuffer-size = 65535\nhttp-timeout = 300\n"
            # Behind its image's nginx, clients keep their connections; here the router does.
            "http-keepalive = 1\n"
            "need-app = true\nenv = APP_WEBSERVER=uwsgi\n"
            "ignore-sigpipe = true\nignore-write-errors = true\ndisable-write-exception = true\n"
            "harakiri = 120\npost-buffering = 4096\ndisable-logging = true\nlog-5xx = true\n"
            "enable-threads = true\nthunder-lock = true\nlazy-apps = true\n"
            "max-requests = 5000\nreload-on-rss = 2048\nworker-reload-mercy = 300\n"
        )
        self.server = loop.Server(
            [str(self.venv / "bin" / "uwsgi"), "--ini", str(ini)], self.env, tmp / "uwsgi.log",
            cwd=self.package,
        )  # fmt: skip
        self.server.wait_port(self.port, seconds=120)
        # The first requests of each worker load the application (lazy-apps).
        time.sleep(5)
        self.meters = {
            "web": self.server.meter(),
            # It opens a database connection per request (no CONN_MAX_AGE).
            "database": loop.postgres_meter(DATABASE, ended=True),
        }
        for size in sizes:
            seconds = self.import_rows(self.seeded["projects"][str(size)], rows, size)
            print(f"Label Studio imported {size:,} tasks over HTTP in {seconds:.1f} s", flush=True)

    def database_create(self) -> None:
        """Its database, empty and migrated: copied from ``TEMPLATE`` once a first run made it
        (migrating takes minutes)."""
        with psycopg.connect(_setup.ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone():
                conn.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE "{TEMPLATE}"')
                return
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
            started = time.perf_counter()
            self.manage(self.env, "migrate", "--noinput")
            print(f"Label Studio migrated in {time.perf_counter() - started:.0f} s", flush=True)
            conn.execute(f'CREATE DATABASE "{TEMPLATE}" TEMPLATE "{DATABASE}"')

    def import_rows(self, project: int, rows: Path, count: int) -> float:
        """POST the first ``count`` rows of ``rows`` as one JSON array; return the seconds."""
        import loop

        tasks = []
        with rows.open() as lines:
            for line in lines:
                if len(tasks) == count:
                    break
                tasks.append({"data": json.loads(line)["data"]})
        body = json.dumps(tasks).encode()
        del tasks
        conn = loop.Connection(
            self.port,
            {"Authorization": f"Token {self.seeded['owner']}", "Content-Type": "application/json"},
        )
        started = time.perf_counter()
        status, answer = conn.call("POST", f"/api/projects/{project}/import", body)
        elapsed = time.perf_counter() - started
        conn.close()
        if status != 201:
            raise RuntimeError(f"Label Studio's import answered {status}: {answer[:300]!r}")
        imported = json.loads(answer).get("task_count")
        if imported != count:
            raise RuntimeError(f"Label Studio imported {imported} tasks of {count}")
        return elapsed

    def import_timed(self, rows: Path, count: int) -> float:
        return self.import_rows(self.seeded["projects"]["import"], rows, count)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        with psycopg.connect(_setup.ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')

    # --- the loop ------------------------------------------------------------------------------

    def run(self, size: int, index: int, seconds: float, payload: dict):
        import loop

        run = loop.Run(loop.PEER, size, index)
        project = self.seeded["projects"][str(size)]
        clients = [
            LabelStudioClient(self.port, token, project, payload)
            for token in self.seeded["tokens"][str(size)]
        ]
        # Its runs are never reset: they take a few hundred tasks each of thousands.
        limit = max(1, (size // 4) // len(clients))
        loop.run_loop(run, clients, limit, seconds, self.meters)
        self.last = (run, project)
        return run

    def checks(self, run) -> list:
        """The same invariants over Label Studio's tables, for its whole project so far."""
        import loop

        project = self.seeded["projects"][str(run.size)]
        with psycopg.connect(_setup.dsn(DATABASE), autocommit=True) as conn:
            (over,) = conn.execute(
                "SELECT count(*) FROM (SELECT task_id FROM task_completion "
                "WHERE project_id = %s AND NOT was_cancelled GROUP BY task_id "
                "HAVING count(*) > 1) over",
                (project,),
            ).fetchone()
            (twice,) = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM task_completion WHERE project_id = %s "
                "GROUP BY task_id, completed_by_id HAVING count(*) > 1) twice",
                (project,),
            ).fetchone()
            (still_open,) = conn.execute(
                "SELECT count(*) FROM task t WHERE t.project_id = %s AND NOT EXISTS "
                "(SELECT 1 FROM task_completion c WHERE c.task_id = t.id)",
                (project,),
            ).fetchone()
        name = "Label Studio: "
        return [
            loop.Check(name + "no task over its overlap", over == 0,
                       f"{over} tasks annotated beyond maximum_annotations"),
            loop.Check(name + "no annotator twice on a task", twice == 0,
                       f"{twice} (task, annotator) twice"),
            loop.Check(name + "no 'nothing open' while open work remained",
                       run.empty == 0 or still_open == 0,
                       f"{run.empty} empty answers, {still_open:,} tasks open after the run"),
        ]  # fmt: skip
