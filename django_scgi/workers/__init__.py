"""``--workers N`` (N > 1): a supervisor process (``supervisor``) and the worker side
of it (``worker``); ``handoff`` is what passes from one to the other.

The supervisor is the process ``runscgi`` was started as (same PID, so systemd's
``MAINPID`` and Docker's PID 1 stay right). The command opens the listeners once and
hands them to ``Supervisor``, which

- starts N worker processes that share the listeners (the kernel spreads the
  connections), and reports ready once all of them listen;
- restarts a worker that dies, after a delay that doubles with each death in a row
  (``backoff_delay``), and logs it;
- on SIGTERM/SIGINT tells every worker to stop, waits for their in-flight requests
  (``graceful_timeout`` plus a margin), kills what is left, exits 0: no orphans. A
  second signal kills the workers and exits 1 at once;
- on SIGHUP replaces the workers one at a time: a new worker is started and must
  report ready before the old one is told to stop, so there is always a full set
  accepting; a new worker that fails to start leaves the old ones serving.
  ``max_requests`` recycling uses the same replacement.

**Fresh code.** A worker is a new interpreter, not a fork of the supervisor: it runs the
command line the supervisor was started with (through the launcher, so gevent patches
before Django loads) with ``DJANGO_SCGI_WORKER`` naming the descriptors it inherits:
the listening sockets and its end of a socketpair to the supervisor. It imports settings,
models, the URLconf and views from disk as a fresh start does, so a reload loads
everything that changed; and nothing crosses over but those descriptors: no database
connection, no module state. (A forking supervisor would have to avoid importing the
project, and Django's set-up and system checks import most of it.)

**The channel** (one ``socketpair`` per worker) carries one word per line: the worker
sends ``ready`` once it listens and ``retire`` when it reached its request limit; the
supervisor sends ``stop``. End of file on the worker's side means the supervisor is gone
(even after SIGKILL: the kernel closes its end): the worker then drains and exits.
Stopping by message rather than by signal means a worker that also gets systemd's
SIGTERM (KillMode=control-group signals every process) sees one request to stop, not a
second "hurry" signal.

Imports: stdlib, gevent, ``server``, ``conf``; never Django (the command passes the
worker command line and, in a worker, the WSGI application).
"""

from __future__ import annotations

from .handoff import WORKER_ENV, Handoff, handoff_from_environ
from .supervisor import (
                         BACKOFF_FIRST,
                         BACKOFF_MAX,
                         STABLE_AFTER,
                         START_TIMEOUT,
                         STOP_MARGIN,
                         Supervisor,
                         Worker,
                         WorkerStartError,
                         backoff_delay,
                         describe_exit,
)
from .worker import requests_limit, serve_worker

__all__ = [
    "BACKOFF_FIRST", "BACKOFF_MAX", "STABLE_AFTER", "START_TIMEOUT", "STOP_MARGIN", "WORKER_ENV",
    "Handoff", "Supervisor", "Worker", "WorkerStartError", "backoff_delay", "describe_exit",
    "handoff_from_environ", "requests_limit", "serve_worker",
]
