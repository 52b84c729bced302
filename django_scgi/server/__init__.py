"""The server: sockets, greenlets, timeouts, limits and shutdown, one job per module.

It serves any WSGI callable and never imports Django or reads settings: everything
arrives as a ``ServerConfig``.

- ``listeners``: binding TCP, unix-socket and inherited listeners;
- ``pool``: the worker greenlets and the acceptors that feed them;
- ``allowlist``: which TCP peers may connect;
- ``exchange``: one request: read the head, run the application, write the answer;
- ``body``: ``wsgi.input``, read lazily from the socket;
- ``closing``: how a finished connection is closed;
- ``accesslog``: the access line;
- ``peerlog``: rate-limited warnings about misbehaving peers;
- ``lifecycle``: ``SCGIServer``, which ties them together, and signals and stop.
"""

from __future__ import annotations

from .lifecycle import SCGIServer
from .listeners import Listener, ListenerError, open_listener, open_listeners
from .peerlog import PEER_WARNINGS_PER_INTERVAL, RateLimitedWarnings, peer_warnings

__all__ = [
    "PEER_WARNINGS_PER_INTERVAL", "Listener", "ListenerError", "RateLimitedWarnings",
    "SCGIServer", "open_listener", "open_listeners", "peer_warnings",
]
