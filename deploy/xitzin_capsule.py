"""django-scgi behind Xitzin (a Gemini framework): Xitzin serves TLS, runscgi serves Django.

Xitzin's own SCGI client forwards every request below the mount to runscgi, over TCP
or a unix socket. Run it with the settings in the environment::

    SCGI_BACKEND=unix:/run/capsule/scgi.sock SCGI_MOUNT=/app \\
    GEMINI_HOST=0.0.0.0 GEMINI_PORT=1965 GEMINI_CERT=cert.pem GEMINI_KEY=key.pem \\
        python xitzin_capsule.py

``SCGI_BACKEND`` is where runscgi listens: ``127.0.0.1:4000`` or ``unix:/path``.
``SCGI_MOUNT`` is the prefix Django serves ("/" for all of it). Xitzin's SCGI client
keeps at most 1 MiB of an answer by default (its ``SCGIConfig.max_response_size``) and
hands the client the whole answer at once, after runscgi has finished it.
"""

from __future__ import annotations

import os

from xitzin import Xitzin


def make_app(environ: dict[str, str] | None = None) -> Xitzin:
    """The Xitzin application with runscgi mounted, from ``environ`` (os.environ)."""
    environ = dict(os.environ if environ is None else environ)
    backend = environ.get("SCGI_BACKEND", "127.0.0.1:4000")
    mount = environ.get("SCGI_MOUNT", "/app")
    app = Xitzin()
    if backend.startswith("unix:"):
        app.scgi(mount, socket_path=backend[len("unix:"):], timeout=30)
    else:
        host, _, port = backend.rpartition(":")
        app.scgi(mount, host=host, port=int(port), timeout=30)
    return app


if __name__ == "__main__":
    make_app().run(
        host=os.environ.get("GEMINI_HOST", "localhost"),
        port=int(os.environ.get("GEMINI_PORT", "1965")),
        certfile=os.environ.get("GEMINI_CERT"),
        keyfile=os.environ.get("GEMINI_KEY"),
    )
