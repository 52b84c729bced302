"""The server: its listeners, pool and acceptors, hooks, signals and graceful stop.

``SCGIServer.handle`` is one connection's life: the allow-list, the exchange, the close
policy, the access line. Lifecycle lines (listening, signals, stopped) go to the
``django_scgi.server`` logger, as they always have.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from ..conf import ServerConfig
from ..connection import Connection, peer_address, peer_host
from ..environ import make_base_environ, set_secret_words
from . import closing
from .accesslog import AccessLog
from .allowlist import PeerFilter, PeerShares
from .body import RECV_SIZE
from .exchange import Exchange
from .fcgi_exchange import serve_connection
from .listeners import Listener
from .peerlog import peer_warnings
from .pool import Accepted, Acceptor, Workers
from .sendfile import FileWrapper

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__package__)

# Seconds a connection may wait for its request head while holding a slot that a
# waiting connection needs: a front-end writes a whole request head at once, right
# after it connects, so one that takes this long is idle or trickling on purpose. Only
# when every slot is taken (Acceptor.on_full); otherwise header_timeout applies.
SHED_AFTER = 1.0

# Seconds a connection that has not sent a byte yet may still take once shutdown has
# begun: long enough for a front-end that just connected, short enough that an idle
# peer (a TCP health check) does not hold up the exit for header_timeout.
IDLE_GRACE_ON_STOP = 1.0
# How often idle kept FastCGI connections are looked at: one timer for all of them, so
# they are closed up to this long after --keepalive-timeout.
KEEPALIVE_SWEEP_INTERVAL = 1.0


class SCGIServer:
    """Serves one WSGI application on a set of listeners until told to stop."""

    def __init__(
        self, app: WSGIApplication, listeners: list[Listener], config: ServerConfig, *,
        on_ready: Callable[[SCGIServer], object] | None = None,
        on_stopping: Callable[[SCGIServer], object] | None = None,
        on_sighup: Callable[[SCGIServer], object] | None = None,
        max_requests: int = 0,
        on_max_requests: Callable[[SCGIServer], object] | None = None,
    ) -> None:
        self.app = app
        self.listeners = listeners
        self.config = config
        if config.protocol == "fastcgi":
            # The allow-list and the per-peer shares (handle) apply alike; then all the
            # requests of the connection, one after another.
            self._serve = self._serve_fastcgi  # type: ignore[method-assign]
        self._init_hooks(on_ready, on_stopping, on_sighup, max_requests, on_max_requests)
        self.base_environ = make_base_environ(errors=sys.stderr, file_wrapper=FileWrapper)
        set_secret_words(config.mask_words)  # for every log line about a request
        # Only a server that has a limit pays for counting. FastCGI counts requests as
        # they end (serve_connection): a kept-alive connection carries many.
        counting = bool(max_requests) and config.protocol != "fastcgi"
        handle = self._counting(self.handle) if counting else self.handle
        self.workers = Workers(config.max_connections, handle, config.close_batch)
        for listener in listeners:
            listener.socket.setblocking(False)
        self.acceptors = [Acceptor(listener, self.workers, self._shed_idle)
                          for listener in listeners]
        self._stopping = False
        self._stopped = Event()
        self.allowed = PeerFilter(config.allow_from)
        self._verdicts = self.allowed.verdicts
        self.shares = (PeerShares(config.max_connections_per_peer)
                       if config.max_connections_per_peer else None)
        # After Django configured logging: whether django.server is its default decides
        # how the lines are written (accesslog.py).
        self.access_log = AccessLog() if config.access_log else None
        # Sockets accepted but still waiting for their first byte.
        self.idle_sockets: set[Any] = set()
        # Sockets still waiting for their whole head, and since when (_shed_idle).
        self.heads_waiting: dict[Any, float] = {}
        # FastCGI connections the front-end keeps open (FCGI_KEEP_CONN) while they wait
        # for their next request, with the time they may wait until: closed by
        # _sweep_keepalive once it has passed, and at once on shutdown.
        self.keepalive_sockets: dict[Any, float] = {}

    def handle(self, fd: int, raw_peer: Any, family: int) -> None:
        """Serve one accepted connection: ``fd`` and ``raw_peer`` as accept() gave them."""
        sock = Connection(fd, family)
        host = peer_host(raw_peer, family)
        # admits() for a peer already known to be allowed, inlined: once per connection.
        if host is not None and self._verdicts.get(host) is not True and (
                not self.allowed.admits(host, raw_peer)):
            sock.close()
            return
        shares = self.shares
        if host is not None and shares is not None:
            self._handle_counted(sock, host, raw_peer, shares)
        else:
            self._serve(sock, raw_peer)

    def _handle_counted(self, sock: Connection, host: Any, raw_peer: Any,
                        shares: PeerShares) -> None:
        """``_serve`` within the peer's share of the slots (``max_connections_per_peer``)."""
        if not shares.take(host):
            closing.close_abortive(sock)  # a reset: nothing it sent is worth a lingering close
            peer_warnings.warn("Closed a connection from %s: it already holds %d (max "
                               "connections per peer).", peer_address(raw_peer)[0],
                               shares.limit)
            return
        try:
            self._serve(sock, raw_peer)
        finally:
            shares.release(host)

    def _serve(self, sock: Connection, raw_peer: Any) -> None:
        exchange = Exchange(sock, raw_peer, self.config, self.base_environ, self.idle_sockets,
                            self.heads_waiting)
        try:
            if exchange.read_request():
                exchange.run_application(self.app)
                body = exchange.body
                assert body is not None  # read_request() set it
                if body.parser is not None:  # a request without a body has none left
                    exchange.drain()
        except Exception:
            logger.exception("Unexpected error on a connection from %s", exchange.peer_text)
        except BaseException:
            # Killed mid-request (the graceful timeout ran out, a second signal): a
            # normal close would end a cut response like a complete one, and nginx
            # would give the client a clean end of its chunks. A reset is a failed
            # upstream to every front-end, so the client sees the truncation.
            exchange.abort = exchange.abort or exchange.head_sent
            raise
        finally:
            closing.finish(exchange, sock, self.workers)
        if self.access_log is not None:
            try:
                self.access_log.log(exchange)
            except Exception:
                logger.exception("Unexpected error on a connection from %s", exchange.peer_text)

    def _serve_fastcgi(self, sock: Connection, raw_peer: Any) -> None:
        """Serve one admitted FastCGI connection, all the requests it carries."""
        serve_connection(self, sock, raw_peer)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _sweep_keepalive(self) -> None:
        """Close kept FastCGI connections idle past --keepalive-timeout, once a second."""
        while not self._stopping:
            gevent.sleep(KEEPALIVE_SWEEP_INTERVAL)
            now = time.monotonic()
            for sock, deadline in list(self.keepalive_sockets.items()):
                if deadline <= now:
                    sock.close()  # wakes the connection's wait, which ends it

    def start(self) -> None:
        if self.config.protocol == "fastcgi":
            gevent.spawn(self._sweep_keepalive)
        for acceptor in self.acceptors:
            acceptor.start()

    def _init_hooks(
        self,
        on_ready: Callable[[SCGIServer], object] | None,
        on_stopping: Callable[[SCGIServer], object] | None,
        on_sighup: Callable[[SCGIServer], object] | None,
        max_requests: int,
        on_max_requests: Callable[[SCGIServer], object] | None,
    ) -> None:
        """Hooks for the command and for worker processes (``workers.py``)."""
        self.on_ready = on_ready  # once the listeners accept: banner, sd_notify READY=1
        self.on_stopping = on_stopping  # on the first SIGTERM/SIGINT: STOPPING=1
        self.on_sighup = on_sighup  # None: SIGHUP is logged and ignored
        self.max_requests = max_requests
        self.on_max_requests = on_max_requests  # once, after the max_requests-th connection
        self.requests_handled = 0
        self._signalled = False

    def _counting(self, handle: Callable[[int, Any, int], None]) -> Callable[[int, Any, int], None]:
        def counted(fd: int, raw_peer: Any, family: int) -> None:
            try:
                handle(fd, raw_peer, family)
            finally:
                self.count_request()

        return counted

    def count_request(self) -> None:
        """One more request served; at ``max_requests``, ``on_max_requests`` (once)."""
        self.requests_handled += 1
        if self.requests_handled == self.max_requests and self.on_max_requests:
            self.on_max_requests(self)

    def serve_forever(self, install_signals: bool = True) -> None:
        """Serve until ``stop()`` (or SIGTERM/SIGINT when ``install_signals``) finishes.

        Signal handlers go in on the main thread only: Django's autoreloader runs the
        server in another thread, where its own SIGTERM handler applies.
        """
        if install_signals and threading.current_thread() is threading.main_thread():
            self.install_signal_handlers()
        self.start()
        logger.info("Listening on %s (pid %d).", ", ".join(self.addresses), os.getpid())
        if self.on_ready is not None:
            self.on_ready(self)
        try:
            self._stopped.wait()
        finally:
            self._close_access_log()
        logger.info("Stopped (pid %d).", os.getpid())

    def _close_access_log(self) -> None:
        """Write the access lines still waiting in a batch (every way out calls this)."""
        if self.access_log is not None:
            self.access_log.close()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: graceful stop, a second one exits at once; SIGHUP: ``on_sighup``.

        SIGHUP gets a handler even without a hook: its default action kills the process.
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self._on_signal, signum)
        gevent.signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        # Counted per signal, not from ``_stopping``: a worker told to stop by its
        # supervisor and then sent SIGTERM by systemd (KillMode=control-group signals
        # every process) must go on draining.
        if self._signalled:
            logger.warning("Second %s: exiting at once.", name)
            self._close_access_log()
            self._remove_socket_files()
            os._exit(1)
        self._signalled = True
        logger.info("%s received: finishing in-flight requests (up to %ss).", name,
                    self.config.graceful_timeout)
        if self.on_stopping is not None:
            self.on_stopping(self)
        gevent.spawn(self.stop)

    def _on_sighup(self) -> None:
        if self.on_sighup is not None:
            self.on_sighup(self)
        else:
            logger.info("SIGHUP received and ignored.")

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``timeout``, then kill them."""
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        for sock in list(self.keepalive_sockets):
            sock.close()  # wakes its greenlet, which ends the connection
        self._stop_listening()
        gevent.spawn_later(IDLE_GRACE_ON_STOP, self._close_idle)
        graceful = self.config.graceful_timeout if timeout is None else timeout
        if not self.workers.join(timeout=graceful):
            logger.warning("Cancelling %d request(s) still running after %ss.",
                           self.workers.busy, graceful)
            self.workers.kill(timeout=1)
        self._stopped.set()

    def _stop_listening(self) -> None:
        """Serve what the kernel already accepted, then close the listeners.

        Closing a listener resets the connections waiting in its backlog: those peers
        connected before the signal and may have sent a whole request. So the backlog
        is taken whole first, without waiting for free slots (at the connection cap,
        waiting would let new arrivals queue up behind it for as long as the load
        lasts), the listeners are closed, and then the taken connections are served as
        slots free up. Only connections arriving after this point are refused.
        """
        for acceptor in self.acceptors:
            acceptor.stop()
        for listener in self.listeners:
            listener.remove_socket_file()  # new unix connections fail from here on
        queued: list[Accepted] = []
        for acceptor, listener in zip(self.acceptors, self.listeners):
            queued += acceptor.accept_backlog()
            acceptor.close()
            listener.close()
        self._serve_queued(queued)

    def _serve_queued(self, queued: list[Accepted]) -> None:
        graceful = self.config.graceful_timeout
        deadline = time.monotonic() + graceful
        for index, connection in enumerate(queued):
            if not self.workers.wait_available(timeout=max(deadline - time.monotonic(), 0)):
                logger.warning("Closing %d queued connection(s) that found no free slot in %ss.",
                               len(queued) - index, graceful)
                for fd, *_ in queued[index:]:
                    _close_unserved(fd)
                return
            self.workers.dispatch(connection)

    def _shed_idle(self) -> None:
        """Every slot is taken and a connection waits: close the connections that have
        waited over SHED_AFTER for their request head, so idle or trickling peers
        cannot keep a good request waiting for header_timeout."""
        cutoff = time.monotonic() - SHED_AFTER
        stale = [sock for sock, since in self.heads_waiting.items() if since < cutoff]
        # Kept FastCGI connections between requests (not in heads_waiting while they wait
        # for a request's first byte): their deadline is since + keepalive_timeout.
        kept_cutoff = cutoff + self.config.keepalive_timeout
        stale += [sock for sock, until in self.keepalive_sockets.items()
                  if until < kept_cutoff and sock not in self.heads_waiting]
        for sock in stale:
            sock.close()  # its greenlet wakes with EBADF and ends quietly
        if stale:
            peer_warnings.warn("All %d slots were taken: closed %d connection(s) that had "
                               "not sent their request head within %ss.",
                               self.workers.size, len(stale), SHED_AFTER)

    def _close_idle(self) -> None:
        for sock in list(self.idle_sockets):
            sock.close()

    def _remove_socket_files(self) -> None:
        for listener in self.listeners:
            listener.remove_socket_file()

    @property
    def addresses(self) -> list[str]:
        return [listener.display for listener in self.listeners]


# Bytes read (and dropped) from a queued connection before closing it unserved: a whole
# request from a front-end, bounded for a peer that never stops sending.
UNSERVED_READ_LIMIT = 1024 * 1024


def _close_unserved(fd: int) -> None:
    """Close a connection that was never served, with a FIN rather than a reset.

    Closing a socket whose received bytes are unread makes the kernel send RST, which
    a front-end reports as a broken upstream; read what the peer has sent first.
    """
    try:
        os.set_blocking(fd, False)
        dropped = 0
        while dropped < UNSERVED_READ_LIMIT and (data := os.read(fd, RECV_SIZE)):
            dropped += len(data)
    except OSError:  # BlockingIOError: all read; or the peer is gone already
        pass
    os.close(fd)
