"""The Celery app. Units of background work are called jobs and live in ``jobs.py`` modules."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("assay")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Jobs are queued after commit by requests (workforce.queue): a broker that cannot be reached or
# stops answering must fail a publish within seconds, not hold the request for the kernel's TCP
# timeouts (minutes) or forever. The read timeout stays above the 1 s a worker's BRPOP waits.
app.conf.broker_transport_options = {"socket_connect_timeout": 1, "socket_timeout": 2}
app.autodiscover_tasks(related_name="jobs")


@signals.task_prerun.connect
@signals.task_postrun.connect
def connections_checked(sender=None, **kwargs) -> None:
    """Before and after each job, do what Django does around each request: drop a connection
    that failed, holds a transaction left open, or outlived ``CONN_MAX_AGE`` (with
    ``CONN_HEALTH_CHECKS``, one that stopped answering), and keep the others for the next job
    (``CELERY_DB_REUSE_MAX``). A job run eagerly is inside its caller's request or transaction,
    whose connection is not the job's to close."""
    if sender is not None and sender.request.is_eager:
        return
    from django.db import close_old_connections

    close_old_connections()
