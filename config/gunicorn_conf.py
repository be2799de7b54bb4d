"""gunicorn's configuration for Assay's REST API, as the README deploys it.

``gunicorn -c config/gunicorn_conf.py config.wsgi:application -b 0.0.0.0:8000``

Measured with ``bench/loop.py`` on two cores, 8 annotators claiming and submitting without a
pause: one process per core with four threads each served 1.2-1.9x the cycles per second of
two sync workers per core and of two threads per process, and 1.1-1.4x those of four processes
of four threads, at 10-30 % less CPU per cycle, with p99 latency alike. The threads of a
process share one interpreter, but a request spends most of its time waiting on PostgreSQL,
when its thread lets the others run; and a threaded worker keeps a client's connection open
between requests, where a sync worker makes it connect again for each one.

gunicorn 27 serves the same loop at 15-20 % less web CPU per cycle than gunicorn 23 did, with
the same settings (157-166 cycles/s against 136-154 at 10,000 tasks). Kept-alive connections
stay with the process that accepted them, and a process's threads share one core: under the
loop one process took nearly all of them. Spreading them (``reuse_port``, each process its own
listening socket) was slower on two cores that PostgreSQL shares (129-143 cycles/s, a third more
CPU per cycle), so the processes share one socket. Measured again once the submit was one
statement: eight clients connecting land 8/0, 7/1 or 6/2 on the two processes most of the time,
yet four processes of two threads with a socket each served 0.77-1.24x these cycles per second
(about 0.9x over 10 alternating pairs) at more web CPU per cycle: the machine, not one
interpreter, is what the loop fills.
"""

import os

workers = int(os.environ.get("WEB_PROCESSES", os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# A threaded worker is restarted when its main loop stops answering this long, never for one
# slow request: the all-or-nothing check of a large upload and the streamed export of a large
# project take as long as they need.
timeout = 30
# How long a client's idle connection is kept open between its requests.
keepalive = 5
# No runtime control socket (``gunicornc``): its default path is one per user, which two
# instances on one machine would share.
control_socket_disable = True
