"""Final writes of FastCGI responses on kept connections, held to go out together.

The FastCGI counterpart of SCGI's close batching (``pool.Workers.close``). On a kept
connection the front-end learns that a response is over from its END_REQUEST record,
and each write that carries one wakes the front-end's worker. Under load several kept
connections become readable in one pass of the event loop, and their greenlets run one
after another before the loop polls again. A greenlet that finishes a small response
while more of them wait to run (``loop.pendingcnt``: the watchers libev has still to
call in this pass) holds its final write (last STDOUT records + END_REQUEST, one
buffer) here; the last of the pass writes them all back to back, so the front-end's
``epoll_wait`` returns several finished upstreams at once.

Bounds, as for SCGI: at most ``close_batch - 1`` held (written with the next), none
added to a batch more than ``CLOSE_HOLD`` after its first, and everything held is
written before the loop polls again (a callback) or when its own connection writes,
replies or closes. So a held response waits at most for the requests that were ready
in the same pass: a view that computes for long without yielding delays the
responses held before it by as long.
A response is never held when nothing else is ready to run: a lone client sees no
added latency. Shutdown cannot lose a held write: a held connection is registered
with the server's kept connections (which shutdown closes) only once written.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from gevent import socket
from gevent.hub import get_hub

from .pool import CLOSE_HOLD

if TYPE_CHECKING:
    from .fcgi_channel import Channel
    from .lifecycle import SCGIServer

logger = logging.getLogger(__name__)

# Largest final write that may be held. The flush writes without waiting, from the
# event loop, so the socket buffer must take it whole: the front-end sends its next
# request only after reading our END_REQUEST, so the buffer is empty, and Linux starts
# a TCP socket's send buffer at 16 KiB (net.ipv4.tcp_wmem) and a unix one far above.
HOLD_SIZE = 8 * 1024


class HeldWrites:
    """The held final writes of one server, oldest first (see the module docstring)."""

    __slots__ = ("_scheduled", "_since", "items", "limit", "loop", "server")

    def __init__(self, server: SCGIServer) -> None:
        self.server = server
        loop: Any = get_hub().loop
        try:
            loop.pendingcnt  # noqa: B018 -- libev has it; a loop without it never holds
        except (AttributeError, NotImplementedError):
            loop = None
        # close_batch N: N-1 held, written with the N-th (1: nothing is ever held).
        self.limit = server.config.close_batch if loop is not None else 1
        # The loop whose pending watchers tell whether others are ready; None: never hold.
        self.loop = loop if self.limit > 1 else None
        self.items: list[tuple[Channel, bytes]] = []
        self._since = 0.0
        self._scheduled = False

    def hold(self, channel: Channel, data: bytes) -> bool:
        """Hold ``data``, the final write of ``channel``'s response; False when the
        caller is to write it now (after everything held, written here first)."""
        items = self.items
        # Only a kept connection's later requests: their greenlet is woken by its own
        # socket's watcher, so the pending count is exactly the other ready watchers.
        # A first request runs from gevent's callbacks (the acceptor hands it over),
        # where the count includes gevent's own prepare watcher.
        if (self.loop is not None and channel.requests > 1 and len(data) <= HOLD_SIZE
                and self.loop.pendingcnt):
            now = time.monotonic()
            if not items:
                self._since = now
                if not self._scheduled:
                    self._scheduled = True
                    self.loop.run_callback(self._flush_from_loop)
            elif len(items) + 1 >= self.limit or now - self._since > CLOSE_HOLD:
                self.flush()
                return False
            items.append((channel, data))
            channel.held = True
            return True
        if items:
            self.flush()
        return False

    def flush(self) -> None:
        """Write everything held, oldest first."""
        items, self.items = self.items, []
        for channel, data in items:
            self._write(channel, data)
        # Once per batch, not per request; the tests read it to see batches happen.
        logger.debug("Wrote %d held FastCGI response(s).", len(items))

    def _flush_from_loop(self) -> None:
        """Before the loop polls again: nothing held waits for another pass."""
        self._scheduled = False
        if self.items:
            self.flush()

    def _write(self, channel: Channel, data: bytes) -> None:
        channel.held = False
        sock = channel.sock
        if sock.fd < 0:
            return  # closed under it (the owner flushes before it closes: not by it)
        try:
            sent = os.write(sock.fd, data)
        except OSError:  # reset, or the buffer full after all (never waited for here)
            sent = -1
        if sent != len(data):
            # Half a response, or none: the connection cannot go on. Its greenlet
            # waits for the next request: a shutdown wakes it with EOF, and it closes.
            channel.broken = True
            logger.debug("A held FastCGI response to %s could not be written whole.",
                         channel.peer_text)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        kept = channel.kept_wait
        if kept is not None:  # its greenlet waits for the next request already
            channel.kept_wait = None
            if self.server.stopping:
                sock.close()  # shutdown closed the other kept ones already: it ends
            else:
                kept[0][sock] = kept[1]
