"""Settings for the test suite: PostgreSQL and Redis on localhost unless told otherwise.

When nothing answers at these addresses, the test session starts an embedded PostgreSQL and
Redis and points these settings at them (``tests/conftest.py``).
"""

import os
import uuid

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/assay")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Each test session keys its cache entries (authentication counters among them) apart from the
# last session's on the same Redis; the processes it starts inherit the key.
os.environ.setdefault("DEPLOYMENT_KEY", f"test-{uuid.uuid4().hex[:12]}")

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Jobs run eagerly in the test process; the worker fixture starts a real worker with this off.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)  # noqa: F405
CELERY_TASK_EAGER_PROPAGATES = True
# The worker fixture gives each test session a queue of its own, for its worker and the jobs
# that worker sends in turn, so that no other session's worker on the same broker takes them.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Serve static files straight from the apps, as the docs test needs, without collectstatic.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
