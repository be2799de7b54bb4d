"""gunicorn's configuration for Assay's REST API, as the README deploys it.

``gunicorn -c config/gunicorn.conf.py config.wsgi:application -b 0.0.0.0:8000``
"""

import os

# Sync workers, two per core: a sync worker takes a request only when it is free, so the
# kernel's accept queue shares the load out fairly (bench/claims.py).
workers = 2 * (os.cpu_count() or 1)
worker_class = "sync"
# The all-or-nothing check of a large upload and the streamed export of a large project can
# outlast gunicorn's default of 30 s (README, "Full stack").
timeout = 300
