"""The worker side of ``--workers N``: serve the inherited listeners until told to stop."""

from __future__ import annotations

import logging
import os
import random
from typing import TYPE_CHECKING, Any

import gevent
from gevent import socket

from ..conf import FDAddress, ServerConfig
from ..server import SCGIServer, open_listener
from .handoff import Handoff

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)


def requests_limit(max_requests: int, jitter: int, rng: random.Random | None = None) -> int:
    """This worker's request limit: ``max_requests`` plus 0..``jitter``; 0 = none."""
    if not max_requests:
        return 0
    return max_requests + (rng or random).randint(0, jitter)


def serve_worker(
    app: WSGIApplication, handoff: Handoff, config: ServerConfig,
    server_cls: type[SCGIServer] = SCGIServer,
) -> None:
    """Serve ``app`` on the inherited listeners until the supervisor says stop (or goes)."""
    listeners = [
        open_listener(FDAddress(fd), socket_mode=config.socket_mode, backlog=config.backlog)
        for fd in handoff.listeners
    ]
    channel = socket.socket(fileno=handoff.channel)
    for fd in (*handoff.listeners, handoff.channel):
        os.set_inheritable(fd, False)  # not for processes the application starts
    name = f"Worker {handoff.slot + 1} (pid {os.getpid()})"

    def send(word: str) -> None:
        try:
            channel.sendall(word.encode("ascii") + b"\n")
        except OSError:
            pass  # the supervisor is gone: _follow_supervisor sees it too

    def on_ready(server: SCGIServer) -> None:
        send("ready")
        gevent.spawn(_follow_supervisor, channel, server, name)

    def on_max_requests(server: SCGIServer) -> None:
        logger.info("%s served %d requests: asking for a successor.", name, server.max_requests)
        send("retire")

    server = server_cls(
        app, listeners, config, on_ready=on_ready, on_sighup=_ignore_sighup,
        max_requests=requests_limit(config.max_requests, config.max_requests_jitter),
        on_max_requests=on_max_requests,
    )
    server.serve_forever()


def _ignore_sighup(server: SCGIServer) -> None:
    # Reloading is the supervisor's business; a HUP sent to the whole process group
    # (a closed terminal) reaches it too.
    logger.debug("Worker (pid %d): SIGHUP ignored.", os.getpid())


def _follow_supervisor(channel: Any, server: SCGIServer, name: str) -> None:
    while True:
        try:
            data = channel.recv(64)
        except OSError:
            data = b""
        if not data:
            logger.warning("%s: the supervisor is gone; stopping.", name)
            break
        if b"stop" in data:
            logger.info("%s stopping.", name)
            break
    server.stop()
