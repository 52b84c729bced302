"""The in-process ceiling: Django's WSGIHandler called in a loop, no server at all.

    python bench/inprocess.py [--gevent] [--path /] [-n 2000]          # CPU µs per request
    python bench/inprocess.py [--gevent] --handshake -n 100            # under callgrind
    python bench/inprocess.py --launcher ...                           # patched as runscgi is

The environ is built once, the way a server would build it from the variables that
``scgi_load`` sends (Debian nginx's ``scgi_params``), and copied for each call with a
fresh empty ``wsgi.input``; the response is iterated and closed (``request_finished``
fires, as in a server). With ``--gevent``, ``gevent.monkey.patch_all()`` runs before
Django is imported, as a correctly set-up gevent server does. With ``--launcher``,
``django_scgi.launch.patch()`` does it, as for ``runscgi``.

``--handshake``: after the warm-up print ``READY`` and wait for a line on stdin; run
the loop; print ``DONE`` and wait for stdin to close. ``bench/run.py`` switches
callgrind's instrumentation on, zeroes the counters and dumps them around the loop, so
only the loop is counted.

Server overhead = a server's CPU µs (or instructions) per request minus this.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_environ(path: str) -> dict:
    uri_path, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET", "REQUEST_URI": path, "QUERY_STRING": query,
        "CONTENT_TYPE": "", "CONTENT_LENGTH": "0", "DOCUMENT_URI": uri_path,
        "DOCUMENT_ROOT": "/var/www/html", "SCGI": "1", "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "53412",
        "SERVER_PORT": "80", "SERVER_NAME": "localhost", "HTTP_HOST": "127.0.0.1",
        "HTTP_USER_AGENT": "django-scgi-bench", "HTTP_ACCEPT": "*/*",
        "HTTP_CONNECTION": "close",
        "SCRIPT_NAME": "", "PATH_INFO": uri_path,
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def start_response(status, headers, exc_info=None):
    return None


def run(app, base: dict, count: int) -> None:
    for _ in range(count):
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        result = app(environ, start_response)
        for _chunk in result:
            pass
        result.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gevent", action="store_true", help="monkey.patch_all() first")
    parser.add_argument("--launcher", action="store_true",
                        help="patch as runscgi's launcher does (django_scgi.launch.patch())")
    parser.add_argument("--path", default="/")
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--handshake", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    if args.launcher:
        from django_scgi import launch

        launch.patch()
    elif args.gevent:
        from gevent import monkey

        monkey.patch_all()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
    sys.path.insert(1, os.path.join(ROOT, "bench"))
    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    app = get_wsgi_application()
    base = base_environ(args.path)
    run(app, base, args.warmup)
    local_class = type(connections._connections._storage)
    local_name = f"{local_class.__module__}.{local_class.__qualname__}"
    if args.handshake:
        print("READY", flush=True)
        sys.stdin.readline()
        run(app, base, args.count)
        print("DONE", flush=True)
        sys.stdin.read()
        return 0
    count = max(1, min(args.count, 1_000_000))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run(app, base, count)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    json.dump({"requests": count, "cpu_us_per_req": cpu / count * 1e6,
               "req_per_s": count / wall, "local_class": local_name}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
