"""The Celery app. Units of background work are called jobs and live in ``jobs.py`` modules."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("assay")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Jobs are queued after commit by requests (workforce.queue): a broker that cannot be reached or
# stops answering must fail a publish within seconds, not hold the request for the kernel's TCP
# timeouts (minutes) or forever. The read timeout stays above the 1 s a worker's BRPOP waits.
app.conf.broker_transport_options = {"socket_connect_timeout": 1, "socket_timeout": 2}
app.autodiscover_tasks(related_name="jobs")
