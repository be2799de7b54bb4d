"""WSGI entry point: the REST API and pages, served by ``config/web.py`` in production."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

application = get_wsgi_application()

# Everything loaded so far lives as long as the process. Frozen, the collector no longer walks
# it, so a full collection stops costing every in-flight request tens of milliseconds.
gc.freeze()
