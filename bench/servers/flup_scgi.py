"""flup 1.0.3's threaded SCGI (or FastCGI) server serving the demo project: the flup anchor.

    python bench/servers/flup_scgi.py --port 18404 [--app testproject.wsgi:application]
    python bench/servers/flup_scgi.py --port 18411 --protocol fastcgi

``--protocol fastcgi``: ``flup.server.fcgi.WSGIServer``, also threaded, which keeps a
connection open when the front-end asks (FCGI_KEEP_CONN).

One process, one thread per connection from flup's pool (``flup.server.scgi.WSGIServer``
is the threaded one), the application object imported the way uWSGI and gunicorn
import it. flup logs no access lines. Runs until SIGINT/SIGTERM.
"""

import argparse
import importlib
import logging
import os
import sys


def load(spec):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "application")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", default="testproject.wsgi:application")
    parser.add_argument("--protocol", choices=("scgi", "fastcgi"), default="scgi")
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    application = load(args.app)
    if args.protocol == "fastcgi":
        from flup.server.fcgi import WSGIServer

        # The FastCGI server takes its peer allow-list from FCGI_WEB_SERVER_ADDRS (unset:
        # any peer) and has no logging level; the rest as for SCGI.
        server = WSGIServer(application, bindAddress=(args.host, args.port))
    else:
        from flup.server.scgi import WSGIServer

        # allowedServers=None: accept any peer (loopback only anyway); maxThreads is
        # flup's default (unbounded), so 5,000 sleeping requests get 5,000 threads.
        server = WSGIServer(application, bindAddress=(args.host, args.port),
                            allowedServers=None, loggingLevel=logging.WARNING)
    print(f"flup {args.protocol} on {args.host}:{args.port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
