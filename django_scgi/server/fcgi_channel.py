"""One FastCGI connection's records: reading requests and bodies, watching for aborts.

A :class:`Channel` owns the socket and the sans-I/O ``fastcgi.ServerConnection`` of one
connection. The connection's greenlet reads through it: the next request's head
(``next_request``), then that request's body (``fcgi_body.FastCGIBody``, lazily, as
the application asks). Replies the protocol gives by itself (GET_VALUES_RESULT,
UNKNOWN_TYPE, END_REQUEST refusing a second request) are written as they come.

While the application runs and is not reading its body, nothing else would read the
socket, so a libev watcher does: an ABORT_REQUEST, the front-end's close or garbage
interrupts the application at once (``RequestInterrupted`` thrown into its greenlet),
which closes its iterable and frees the slot. The same watcher, the socket's own read
watcher with a callback (``Channel._on_readable``), wakes the greenlet waiting for the
next request on a kept connection: started once, it runs from request to request
(a start and a stop per request and per wait would cost more than the wait itself).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from gevent import socket
from gevent.hub import get_hub, getcurrent

from .. import fastcgi
from ..conf import ServerConfig
from ..protocol import ProtocolError
from .body import RECV_SIZE, BodyLimits, IncompleteBody
from .peerlog import peer_warnings

if TYPE_CHECKING:
    from .fcgi_batch import HeldWrites

logger = logging.getLogger(__name__)

_READ = 1
# Body bytes the watch (Channel.watch) may take off the socket and keep for an
# application that has not read them yet: four full records. Past it the watch stops and
# the front-end's writes wait, until the application reads.
WATCH_BACKLOG = 4 * fastcgi.MAX_CONTENT


class RequestInterrupted(BaseException):
    """Thrown into a request's greenlet: the front-end aborted it or went away.

    A BaseException, so that neither Django's exception handling nor the exchange's
    500 path takes it for an application error.
    """


class Channel:
    """The socket and protocol state of one FastCGI connection."""

    def __init__(self, sock: Any, config: ServerConfig, peer_text: str,
                 heads_waiting: dict[Any, float] | None = None) -> None:
        self.sock = sock
        # The server's connections waiting for a request head, and since when: when
        # every slot is taken the server closes those that have waited too long
        # (SCGIServer._shed_idle), kept connections idle between requests included.
        self.heads_waiting = {} if heads_waiting is None else heads_waiting
        self.config = config
        self.peer_text = peer_text
        self.conn = fastcgi.ServerConnection(
            max_header_size=config.max_header_size, max_body_size=config.max_body_size or None,
            max_conns=config.max_connections,
        )
        # The body's limits are the same for every request of the connection (only
        # body_timeout applies to STDIN records), and nothing changes them.
        self.body_limits = BodyLimits(config.body_timeout)
        self.request_id = 0  # the request in progress, 0 between requests
        self.requests = 0  # requests taken on this connection so far
        self.stdin_done = True
        self.aborted = False  # ABORT_REQUEST for the current request
        self.broken = False  # EOF, a protocol error or a failed write: close, do not reuse
        self.writing = False  # a write is under way (still set: it was cut short)
        self.pending_replies: list[bytes] = []
        # The socket's own read watcher (Connection._watcher), started with the callback
        # _on_readable while watching; Connection.recv's waits use it stopped.
        self._io: Any = None
        self.watching = False
        self._switch: Any = None  # the hub's switch(), set with _io
        # The connection's greenlet: it waits for requests and runs the application.
        self.greenlet = getcurrent()
        self._wake = self.greenlet.switch  # the watcher's callback while it waits
        self._callback: Any = None  # _on_readable, bound once (close() unbinds it)
        # Body bytes the watch took off the socket while the application did not read.
        self._backlog: deque[bytes] = deque()
        self._backlog_size = 0
        self.handler: Any = None  # the greenlet running the application, while it does
        # The server's held final writes (fcgi_batch); whether one of them is this
        # connection's; and, while it is and the greenlet already waits for the next
        # request, the kept-connection registration the write will make (_recv_kept).
        self.batch: HeldWrites | None = None
        self.held = False
        self.kept_wait: tuple[dict[Any, float], float] | None = None

    # -- between requests --

    def next_request(self, idle_timeout: float, idle: set[Any] | dict[Any, float]
                     ) -> fastcgi.RequestHead | None:
        """The next request's head, or None: closed, timed out, or not FastCGI.

        Waits ``idle_timeout`` for its first byte, then ``header_timeout`` for the
        rest. While it waits the socket is in ``idle``, for shutdown to close: a set for
        a new connection (the wait is timed here), or, between the requests of a kept
        connection, the server's dict of deadlines, which its sweeper enforces (a timer
        per wait would cost more than the rest of the wait).
        """
        self.request_id, self.stdin_done, self.aborted = 0, True, False
        now = time.monotonic()
        deadline = now + idle_timeout
        if isinstance(idle, dict) and self.conn.idle():
            # A kept connection between requests: nothing to parse before a read. While
            # it waits it is in ``idle`` only, where shedding finds it too (its deadline
            # says since when it waits).
            data = self._recv_kept(deadline, idle)
            if data is None:
                return None
            taken = self.conn.receive_head(data)  # the usual head: read in one step
            if taken is not None:
                head, self.stdin_done = taken
                # _start_taken(), inlined: once a request.
                if self._backlog_size:
                    self._backlog.clear()
                    self._backlog_size = 0
                self.requests += 1
                self.request_id = head.request_id
                return head
        self.heads_waiting[self.sock] = now
        try:
            return self._read_head(deadline, idle)
        except ProtocolError as error:
            self._refuse(error)
            return None
        finally:
            self.heads_waiting.pop(self.sock, None)

    def _read_head(self, deadline: float, idle: set[Any] | dict[Any, float]
                   ) -> fastcgi.RequestHead | None:
        """next_request() record by record: anything but the usual head in one read."""
        started = False
        while True:
            event = self.conn.next_event()
            if event is fastcgi.NEED_DATA:
                if not started and self.conn.mid_request:
                    started = True
                    deadline = time.monotonic() + self.config.header_timeout
                if started:
                    data = self._recv_until(deadline, None)
                elif isinstance(idle, dict):
                    data = self._recv_kept(deadline, idle)
                else:
                    data = self._recv_until(deadline, idle)
                if data is None:
                    return None
                self.conn.receive_data(data)
            elif type(event) is fastcgi.RequestHead:
                self._start(event)
                return event
            elif isinstance(event, fastcgi.Reply):
                if not self._reply(event):
                    return None
            else:  # ConnectionClosed; no request is in progress for anything else
                return None

    def _recv_until(self, deadline: float, idle_set: set[Any] | None) -> bytes | None:
        """One read within the deadline; None (logged when it matters) when it fails."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self._timed_out(idle_set)
            return None
        if self.watching:  # Connection.recv waits on the same watcher
            self.leave_watching()
        if idle_set is not None:
            idle_set.add(self.sock)
        try:
            self.sock.settimeout(remaining)
            data: bytes = self.sock.recv(RECV_SIZE)
            return data
        except (TimeoutError, socket.timeout):
            self._timed_out(idle_set)
            return None
        except OSError:  # reset, or closed by shutdown while idle
            return None
        finally:
            if idle_set is not None:
                idle_set.discard(self.sock)

    def _recv_kept(self, deadline: float, kept: dict[Any, float]) -> bytes | None:
        """The first read of the next request on a kept connection. No timer: the
        server's sweeper closes the socket once ``deadline`` has passed, and so does
        shutdown; either wakes this wait with an error."""
        sock = self.sock
        if self.held:
            # Registered once its response is written (HeldWrites): shutdown closes
            # kept connections, and must not close this one before that.
            self.kept_wait = (kept, deadline)
        else:
            kept[sock] = deadline
        try:
            if sock.fd < 0:  # closed already (Connection.wait's check)
                return None
            if not self.watching:  # else it runs since the previous request
                self._start_watching()
            # While this greenlet waits, the watcher's callback is its switch(), as a
            # Waiter's would be: the loop wakes it without a Python frame, and a close of
            # the socket throws EBADF here (gevent's cancel of the socket's waits throws
            # to the callback's __self__). _on_readable is the callback again before
            # anything else runs.
            io = self._io
            io.callback = self._wake
            try:
                while True:
                    # Nothing can have arrived yet: the front-end sends the next request
                    # only after our END_REQUEST. Waiting first spares a failing read.
                    self._switch()
                    try:
                        data: bytes = os.read(sock.fd, RECV_SIZE)
                        return data
                    except BlockingIOError:  # woken without bytes after all
                        continue
            finally:
                io.callback = self._callback
        except OSError:  # closed by the sweeper or shutdown, or reset
            return None
        finally:
            self.kept_wait = None
            kept.pop(sock, None)

    def _timed_out(self, idle_set: set[Any] | None) -> None:
        if idle_set is None:  # idle connections time out quietly; a partial head does not
            peer_warnings.warn("Closing %s: no complete FastCGI request head in %ss.",
                               self.peer_text, self.config.header_timeout)

    def _start(self, head: fastcgi.RequestHead) -> None:
        # An Authorizer has no body; a GET's empty STDIN record usually came with its head.
        self.stdin_done = (head.role is fastcgi.Role.AUTHORIZER
                           or self.conn.take_stdin_end(head.request_id))
        self._start_taken(head)

    def _start_taken(self, head: fastcgi.RequestHead) -> None:
        """A request begins (stdin_done already said)."""
        if self._backlog_size:
            self._backlog.clear()
            self._backlog_size = 0
        self.requests += 1
        self.request_id = head.request_id

    def _reply(self, reply: fastcgi.Reply) -> bool:
        """Write a reply of the protocol; False when the connection is to close."""
        if self.held:
            self.release()
        try:
            self.sock.settimeout(self.config.write_timeout)
            self.sock.sendall(reply.data)
        except OSError:
            return False
        return not reply.close

    def _refuse(self, error: ProtocolError) -> None:
        self.broken = True
        peer_warnings.warn("Refused a malformed FastCGI connection from %s: %s",
                           self.peer_text, error)
        if isinstance(error, fastcgi.HTTPOnFastCGIPort):
            # Whoever sent HTTP reads HTTP: say what is wrong in a way curl shows.
            body = error.message.encode("ascii") + b"\n"
            self._reply(fastcgi.Reply(
                b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body, True))

    # -- the body of the current request --

    def read_stdin(self, receive: bool, timeout: float) -> bytes | None:
        """Body bytes of the current request; b"" at its end, None when none has arrived
        yet and ``receive`` is false. Raises IncompleteBody when it cannot be had."""
        if self._backlog:  # taken off the socket by the watch while the app did not read
            data = self._backlog.popleft()
            self._backlog_size -= len(data)
            return data
        self.leave_watching()  # this greenlet reads now; the watch must not take its bytes
        try:
            return self._read_stdin(receive, timeout)
        finally:
            self.watch()

    def _read_stdin(self, receive: bool, timeout: float) -> bytes | None:
        while not self.stdin_done:
            try:
                event = self.conn.next_event()
            except ProtocolError as error:
                self.broken = self.stdin_done = True
                peer_warnings.warn("Closing %s: %s", self.peer_text, error)
                raise IncompleteBody(errno.EPROTO, str(error)) from None
            if event is fastcgi.NEED_DATA:
                if not receive:
                    return None
                self._receive_body(timeout)
            elif isinstance(event, fastcgi.Stdin):
                return event.data
            elif isinstance(event, fastcgi.StdinEnd):
                self.stdin_done = True
            elif isinstance(event, fastcgi.Abort):
                self.aborted = self.stdin_done = True
                raise IncompleteBody(errno.ECONNABORTED, "the front-end aborted the request")
            elif isinstance(event, fastcgi.Reply):
                self._queue_reply(event)
            elif isinstance(event, fastcgi.ConnectionClosed):
                self.broken = self.stdin_done = True
                raise IncompleteBody(errno.EPIPE, "the connection closed inside the body")
        return b""

    def prefetch_stdin(self, limit: int, timeout: float, receive: bool) -> tuple[bytes, bool]:
        """Body bytes read ahead (at most about ``limit``) and whether that is the body.

        Without ``receive``, only what has already arrived: a GET's empty STDIN record
        usually comes with its head, and once it is seen the watcher can run while the
        application does. With it, a body the front-end did not measure (no
        CONTENT_LENGTH) is measured when it is small: Django reads CONTENT_LENGTH bytes
        and no more. On a failure the bytes so far are returned and the channel is broken.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= limit:
                # Before the application runs: no watch to stop, no backlog to take.
                chunk = self._read_stdin(receive, timeout)
                if chunk is None:
                    break
                if not chunk:
                    return b"".join(chunks), True
                chunks.append(chunk)
                size += len(chunk)
        except OSError:
            self.broken = True
        return b"".join(chunks), False

    def _receive_body(self, timeout: float) -> None:
        if self.watching:  # Connection.recv waits on the same watcher
            self.leave_watching()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(RECV_SIZE)
        except (TimeoutError, socket.timeout):
            self.broken = self.stdin_done = True
            raise IncompleteBody(errno.ETIMEDOUT, f"no request body bytes for {timeout}s") from None
        self.conn.receive_data(data)

    def release(self) -> None:
        """Write this connection's held response (and those held before it) now."""
        if self.batch is not None:
            self.batch.flush()

    def _queue_reply(self, reply: fastcgi.Reply) -> None:
        # Written by the request's greenlet before its next write: never in the middle
        # of a record it is writing.
        self.pending_replies.append(reply.data)

    def take_replies(self) -> bytes:
        data = b"".join(self.pending_replies)
        self.pending_replies.clear()
        return data

    # -- while the application runs --

    def watch(self) -> None:
        """Watch the socket while the application runs (``handler`` is set while it
        does, by FastCGIExchange.serve) and is not reading its body.

        A libev watcher with a callback, not a greenlet: started and stopped before the
        loop runs again (a quick request), it costs neither a spawn nor a system call.
        Body records it finds wait in a backlog for the application, up to
        WATCH_BACKLOG bytes; beyond that it stops until the application reads.
        """
        if (self.handler is not None and not self.watching and not self.broken
                and self._backlog_size <= WATCH_BACKLOG):
            self._start_watching()

    def _start_watching(self) -> None:
        io = self._io
        if io is None:
            if self.sock.fd < 0:
                return  # closed (and its watchers with it): nothing to watch
            # The socket's own read watcher, so that Connection.close() finds it (throw).
            io = self._io = self.sock._watcher(_READ)  # sets sock.hub
            self._switch = self.sock.hub.switch
            self._callback = self._on_readable
        self.watching = True
        io.start(self._callback)

    def _on_readable(self) -> None:
        """In the hub: the socket is readable. Take what the front-end sent while the
        application runs; or, when it does not (the response is being finished), stop
        until the wait for the next request (_recv_kept) or the application starts it."""
        if self.handler is None:
            self.leave_watching()
            return
        try:
            data = os.read(self.sock.fd, RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:  # reset
            data = b""
        self.conn.receive_data(data)
        if not self._take_watched_events():
            self.leave_watching()

    def leave_watching(self) -> None:
        if self.watching:
            self.watching = False
            self._io.stop()

    def throw(self, error: BaseException) -> None:
        """The socket was closed while the watcher ran with _on_readable.

        Connection.close() has the hub cancel the waits on the socket's watchers
        (gevent's ``Hub.cancel_waits_close_and_then``), which closes each active one and
        throws the error to its callback's ``__self__``: a waiting greenlet's own, or
        this channel, where nobody waits (_recv_kept's wait has another callback).
        """
        self.watching = False
        self._io = None  # closed with the socket

    def _take_watched_events(self) -> bool:
        """Handle what arrived while the application runs; False once it is interrupted."""
        try:
            while (event := self.conn.next_event()) is not fastcgi.NEED_DATA:
                if isinstance(event, fastcgi.Stdin):
                    self._backlog.append(event.data)
                    self._backlog_size += len(event.data)
                    if self._backlog_size > WATCH_BACKLOG:
                        return False  # the application reads the rest itself
                elif isinstance(event, fastcgi.StdinEnd):
                    self.stdin_done = True
                elif isinstance(event, fastcgi.Reply):
                    self._queue_reply(event)
                elif isinstance(event, fastcgi.Abort):
                    self.aborted = True
                    return self._interrupt()
                elif isinstance(event, fastcgi.ConnectionClosed):
                    self.broken = True
                    return self._interrupt()
        except ProtocolError as error:
            self.broken = True
            peer_warnings.warn("Closing %s: %s", self.peer_text, error)
            return self._interrupt()
        return True

    def _interrupt(self) -> bool:
        handler = self.handler
        if handler is not None:
            # From the loop, so the throw happens only if the application still runs.
            get_hub().loop.run_callback(self._throw, handler)
        return False

    def _throw(self, handler: Any) -> None:
        if self.handler is handler and not handler.dead:
            handler.throw(RequestInterrupted())

    # -- the end --

    def close(self) -> None:
        """Close the socket; lingering when unread bytes could turn the FIN into a reset."""
        from .closing import close_lingering

        if self.held:
            self.release()
        if self._io is not None:
            self.leave_watching()
            self._io = self._callback = None  # the socket's own watcher: the socket closes it
        if self.sock.fd < 0:
            return  # closed already (a broken exchange closes at once)
        try:
            unread = not self.stdin_done or self.sock.has_unread_bytes()
        except OSError:
            unread = False
        if unread and not self.broken:
            close_lingering(self.sock)
        else:
            self.sock.close()
