"""An SCGIServer in a process of its own, for test_follow_up.py.

    python tests/follow_up_server.py [CLOSE_BATCH]

Opens a listener on 127.0.0.1 (any port), prints ``ADDRESS host:port`` and waits for a
line on stdin, so the test can fill the listen backlog first; then starts a 1 ms timer
and serves until SIGTERM. The WSGI app answers:

- ``/pass``: the number of the event loop's pass that served the request;
- ``/burn``: the same, after 30 ms of CPU without yielding;
- ``/wait``: the same, after sleeping 0.5 s (cooperatively);
- ``/nap``: the same, after sleeping 2 s (cooperatively);
- ``/log``: JSON with the paths served in order (``timer`` where the timer fired), how
  many times the acceptor has called accept(), and the sizes of the batches of held
  connections closed together (``ClosingQueue.flush``).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import gevent  # noqa: E402

from django_scgi import conf, server  # noqa: E402
from django_scgi.connection import ClosingQueue  # noqa: E402

BURN_SECONDS = 0.03

served: list[str] = []
accept_calls = 0
flushed: list[int] = []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/log":
        body = json.dumps({"served": served, "accepts": accept_calls,
                           "flushed": flushed}).encode()
    else:
        if path == "/burn":
            end = time.perf_counter() + BURN_SECONDS
            while time.perf_counter() < end:
                pass
        elif path == "/wait":
            gevent.sleep(0.5)
        elif path == "/nap":
            gevent.sleep(2)
        served.append(path)
        body = str(gevent.get_hub().loop.iteration).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def counting(accept):
    def counted(fd):
        global accept_calls
        accept_calls += 1
        return accept(fd)

    return counted


class RecordingQueue(ClosingQueue):
    __slots__ = ()

    def flush(self) -> None:
        if self.fds:
            flushed.append(len(self.fds))
        super().flush()


def main() -> None:
    options = {"bind": ["127.0.0.1:0"], "access_log": False}
    if len(sys.argv) > 1:
        options["close_batch"] = int(sys.argv[1])
    config = conf.resolve(options, settings=types.SimpleNamespace())
    listeners = server.open_listeners(config.bind, socket_mode=0o660, backlog=128)
    scgi = server.SCGIServer(application, listeners, config)
    scgi.workers.closing = RecordingQueue()
    for acceptor in scgi.acceptors:
        acceptor._accept = counting(acceptor._accept)
    print("ADDRESS", scgi.addresses[0], flush=True)
    sys.stdin.readline()
    gevent.spawn_later(0.001, served.append, "timer")
    scgi.serve_forever()


if __name__ == "__main__":
    main()
