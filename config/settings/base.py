"""Settings for every environment, read from the process environment.

With nothing set, Assay runs on one machine with no installed services: the embedded PostgreSQL
that ``manage.py run_demo`` (``make run``) starts with its data in ``var/postgres``, an in-memory
channel layer, and Celery jobs run in-process. Set ``DATABASE_URL`` for another PostgreSQL and
``REDIS_URL`` for Redis. The database is PostgreSQL in every case.
"""

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# A fixed key is only acceptable for the embedded demo; production.py refuses to start without one.
SECRET_KEY = os.environ.get("SECRET_KEY", "assay-insecure-development-key-change-me")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "workforce",
    "tasks",
    "qa",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # First after security: an oversized body, a NUL in the query or an id beyond bigint is
    # refused before sessions or authentication touch the database; timeouts answer 503.
    "config.middleware.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Messages live in the session: the default cookie storage builds a signer on every request,
# API calls included, which never read a message.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Without DATABASE_URL, the database is the embedded PostgreSQL of this directory. It listens on
# a Unix socket there and on no TCP port (config/embedded.py).
EMBEDDED_POSTGRES_DIR = BASE_DIR / "var" / "postgres"
DATABASES = {
    "default": dj_database_url.config(
        default=f"postgres://postgres@{quote(str(EMBEDDED_POSTGRES_DIR), safe='')}/assay",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        # A health check would cost every request one more round trip. Without it, a request
        # that finds its connection broken (the database restarted) fails once, and Django
        # discards that connection at the end of the request.
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database.")
# Send parameters apart from the query text and let psycopg prepare a statement the fifth time a
# connection runs it: the hot ones (the request's member, the claim) are then parsed and planned
# once per connection. Planning the member lookup took ten times its execution. Behind a pooler
# in transaction mode, set DB_PREPARE_THRESHOLD empty to prepare nothing.
_prepare_threshold = os.environ.get("DB_PREPARE_THRESHOLD", "5")
DATABASES["default"].setdefault("OPTIONS", {}).update(
    {
        "server_side_binding": True,
        "prepare_threshold": int(_prepare_threshold) if _prepare_threshold else None,
    }
)


def env_seconds_ms(name: str, default: float) -> int:
    """A duration in seconds from the environment, in milliseconds (0 turns a timeout off)."""
    return round(float(os.environ.get(name, default)) * 1000)


# manage.py commands that serve requests; every other command is an operator's long job.
_SERVING_COMMANDS = {"runserver", "run_demo"}


def _long_jobs() -> bool:
    """Tell whether this process runs long jobs rather than requests: a Celery worker
    (``celery -A config worker``) or a management command such as ``migrate`` or
    ``import_tasks``. ``DB_TIMEOUTS=worker`` or ``web`` says so explicitly."""
    import sys

    explicit = os.environ.get("DB_TIMEOUTS")
    if explicit:
        return explicit == "worker"
    program, args = sys.argv[0], sys.argv[1:]
    if "celery" in program:
        return "worker" in args
    if os.path.basename(program) == "manage.py":
        return bool(args) and args[0] not in _SERVING_COMMANDS
    return False


# No request waits on another transaction's locks for long, runs a statement for ever, or holds
# a transaction open while it is idle: one lock holder must not take every web worker with it
# (a transaction holding one project's rows for 60 s once stopped every tenant's requests).
# A request that hits a timeout answers 503 with Retry-After (config.middleware).
# Jobs and commands are not on anyone's request path: an all-or-nothing import writes a whole
# file in one transaction, parsing between statements, a migration builds indexes, and a job may
# wait its turn for a lock. They get their own, longer limits (WORKER_DB_*).
if _long_jobs():
    DB_LOCK_TIMEOUT_MS = env_seconds_ms("WORKER_DB_LOCK_TIMEOUT", 60)
    DB_STATEMENT_TIMEOUT_MS = env_seconds_ms("WORKER_DB_STATEMENT_TIMEOUT", 1800)
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_seconds_ms("WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT", 600)
else:
    DB_LOCK_TIMEOUT_MS = env_seconds_ms("DB_LOCK_TIMEOUT", 3)
    DB_STATEMENT_TIMEOUT_MS = env_seconds_ms("DB_STATEMENT_TIMEOUT", 15)
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_seconds_ms("DB_IDLE_IN_TRANSACTION_TIMEOUT", 60)
# Sent as startup parameters of each connection: no round trip per request.
DATABASES["default"]["OPTIONS"]["options"] = (
    f"-c lock_timeout={DB_LOCK_TIMEOUT_MS} -c statement_timeout={DB_STATEMENT_TIMEOUT_MS} "
    f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Uploaded task files wait here for the import job. Web and worker processes must share it (or
# configure an object store as the default storage in STORAGES).
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or BASE_DIR / "var" / "media"
# An all-or-nothing import's job reads the checked file while the upload's check writes it
# (tasks.services.imports). That needs storage where one process sees what another appends as it
# is written: a local disk, shared by web and worker processes on one machine. Off, for an object
# store or a network filesystem that shows appends only once the file is closed (NFS), the job
# starts once the check is done.
IMPORT_STREAMED = env_bool("IMPORT_STREAMED", True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
# The apps' own static folders, and the chart library the pages load from its installed package
# (config/staticfiles.py).
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "config.staticfiles.PackageFileFinder",
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# The largest body read outside uploaded files (multipart files stream to disk; task files have
# their own limit). It fits the largest payloads the kinds accept, written by an ordinary
# client (full-precision floats, json.dumps' spacing): 200,000 video-track boxes are about
# 24 MB, 200,000 polygon points or keypoints about 9 MB (tests/test_request_limits.py builds
# them). A body over it answers 413 (config.middleware, config.parsers).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("MAX_REQUEST_BODY_BYTES", 32 * 1024 * 1024))

REST_FRAMEWORK = {
    # Bodies are parsed within the size limit, and refused when they hold what PostgreSQL will
    # not store or nest deeper than any payload needs (config/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "config.parsers.FormParser",
        "config.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "workforce.tenancy.MemberTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.negotiation.Negotiation",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # Paginated envelopes, filters, integer ids and error responses for every view.
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AssaySchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # `?format=` names an export format (jsonl, coco, conll), not a renderer.
    "URL_FORMAT_OVERRIDE": None,
    # How many proxies in front of Assay append to X-Forwarded-For. Behind one, set 1: otherwise
    # every client has the proxy's address, and shares its authentication budget
    # (workforce/throttles.py).
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", "0")) or None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Assay API",
    "DESCRIPTION": (
        "Workforce and quality management for annotation vendors.\n\n"
        "**Authentication**: `POST /api/v1/auth/token/` with `username` and `password` returns a "
        "token; send it as `Authorization: Token <token>`. Browser sessions work too.\n\n"
        "**Organization**: every request acts inside one organization. Send its slug in the "
        "`X-Organization` header. A user who belongs to exactly one organization may omit it. "
        "Nothing crosses an organization: objects of another one answer 404.\n\n"
        '**Errors** are `{"error": {"code", "message", "fields"}}` where `fields` maps '
        "each bad input field to its reasons."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Request bodies are documented as JSON (the upload states its multipart body itself). The
    # views read forms too (login pages, curl), but a form cannot carry a label schema, a payload
    # or a null, and a generated client offered several types for one model sends the last.
    "PARSER_WHITELIST": ["config.parsers.JSONParser"],
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" or "role"; name each choice set once.
    "ENUM_NAME_OVERRIDES": {
        # A skill is the ability to produce one kind: projects' kinds and skills share it.
        "KindEnum": "workforce.models.Skill.choices",
        "ErrorCodeEnum": "config.openapi.ERROR_CODE_CHOICES",
        "MemberRoleEnum": "workforce.models.Role.choices",
        "ProjectRoleEnum": "tasks.models.ProjectRole.choices",
        "AnnotatorStatusEnum": "workforce.models.AnnotatorStatus.choices",
        "CertificationStatusEnum": "workforce.models.CertificationStatus.choices",
        "ProjectStatusEnum": "tasks.models.ProjectStatus.choices",
        "ProjectSettableStatusEnum": "tasks.models.SETTABLE_PROJECT_STATUSES",
        "TaskStatusEnum": "tasks.models.TaskStatus.choices",
        "SlotStateEnum": "tasks.models.SlotState.choices",
        "AssignmentStatusEnum": "tasks.models.AssignmentStatus.choices",
        "AuditVerbEnum": "workforce.models.AuditVerb.choices",
        "ExamAttemptStatusEnum": "qa.models.exams.AttemptStatus.choices",
        "ReviewerRoleEnum": "qa.models.reviews.ReviewerRole.choices",
        "ReviewItemStateEnum": "qa.models.reviews.ReviewItemState.choices",
        "SamplingBasisEnum": "qa.models.reviews.SamplingBasis.choices",
    },
}

# What tells this deployment's keys apart from another's on a shared Redis: its database.
DEPLOYMENT_KEY = (
    os.environ.get("DEPLOYMENT_KEY")
    or hashlib.sha256("{HOST}:{PORT}/{NAME}".format(**DATABASES["default"]).encode()).hexdigest()[
        :12
    ]
)

# Live events need no channel layer: each ASGI process tails the database's outbox (qa/relay.py).
# No Redis pub/sub is used, whose channels are global to a Redis server whatever database a URL
# names, so deployments sharing a Redis cannot hear each other.
#
# Redis is optional: without it the cache lives in memory and jobs run in-process.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": DEPLOYMENT_KEY,
            # A Redis that stops answering costs a request half a second, never a hang.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True

CELERY_TASK_IGNORE_RESULT = True
# A job's message is acknowledged when the job ends, and given back to the broker when the process
# running it dies (the OOM killer, a deploy): every job is safe to run twice (its docstring says
# how), so a job in flight is never lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker keeps its database connection from job to job, as a web process keeps its own from
# request to request, checked around each job by the same rules (``config/celery.py``). Without
# this Celery closes every connection around every job, and each job pays a new PostgreSQL
# session: a process forked, authentication, its statements planned and prepared again. It still
# closes them after this many jobs.
CELERY_DB_REUSE_MAX = 1000
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "expire-certifications": {
        "task": "workforce.expire_certifications",
        # Hourly: expiry is already respected on read; the job only records it.
        "schedule": 3600.0,
    },
    "expire-assignments": {
        "task": "tasks.expire_assignments",
        "schedule": 300.0,
    },
    "requeue-pending-jobs": {
        "task": "workforce.requeue_pending_jobs",
        # Jobs the broker refused go out within half a minute of its return. A run that waited
        # longer than that in the queue is dropped: the next one does the same work.
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "recover-imports": {
        "task": "tasks.recover_imports",
        # An import whose worker died stops beating; within two minutes it runs again or fails.
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "catch-up-overlap-seats": {
        "task": "tasks.catch_up_overlap_seats",
        # A raise whose seats job failed (its database went away) or was lost is seated by the
        # next run, within two minutes.
        "schedule": 120.0,
        "options": {"expires": 120.0},
    },
    "catch-up-gold-rescores": {
        "task": "qa.catch_up_gold_rescores",
        # A corrected gold answer whose rescore failed midway is rescored again within four
        # minutes of its setting (``qa.gold.RESCORE_OVERDUE``, then this period).
        "schedule": 120.0,
        "options": {"expires": 120.0},
    },
    "catch-up-task-agreements": {
        "task": "qa.catch_up_task_agreements",
        # Tasks whose agreement job the broker refused or a worker lost are computed by the
        # next run, within two minutes. A run stops after 50 s (``qa.task_agreement``).
        "schedule": 120.0,
        "options": {"expires": 120.0},
    },
    "roll-up-claims": {
        "task": "qa.roll_up_claims",
        # Claims reach the hourly stats within half a minute or so of being made
        # (``qa.stats.CLAIMS_SETTLE``); a run that waited longer than its period is dropped.
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    "prune-live-events": {
        "task": "qa.prune_live_events",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
