"""FastCGI requests on one connection, served with the SCGI exchange's machinery.

``serve_connection`` is the FastCGI counterpart of ``SCGIServer.handle``: it reads
request heads through a ``Channel`` and serves each with a :class:`FastCGIExchange`,
which is the SCGI ``Exchange`` (start_response, streaming, HEAD, 500s, write timeouts,
the access line) with three differences: the response goes out in STDOUT records
(the CGI head inside them, as FastCGI responders do), the body comes from STDIN
records, and the end is an END_REQUEST record rather than the connection's close.
With FCGI_KEEP_CONN the connection then waits for the next request (up to
``keepalive_timeout``; closed at once on shutdown); without it, it is closed.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import fastcgi
from ..connection import Connection, peer_address
from ..environ import build_environ, request_line
from ..protocol import encode_response_head
from .closing import close_abortive
from .exchange import _UNDECODED, Exchange, PeerGone, _set_nodelay
from .fcgi_batch import HeldWrites
from .fcgi_body import UNKNOWN_LENGTH, FastCGIBody
from .fcgi_channel import Channel, RequestInterrupted

if TYPE_CHECKING:
    from .lifecycle import SCGIServer

logger = logging.getLogger(__name__)

# Bytes of a file (wsgi.file_wrapper) read per STDOUT write: four full records.
FILE_CHUNK = 4 * fastcgi.MAX_CONTENT
# A body sent without CONTENT_LENGTH is read ahead up to this many bytes to measure it
# (Django reads no body without CONTENT_LENGTH). The front-ends measure every body they
# buffer (nginx and Apache by default), so this is for the rare unbuffered one.
PREFETCH_LIMIT = 1024 * 1024


def serve_connection(server: SCGIServer, sock: Connection, raw_peer: Any) -> None:
    """Serve the requests of one admitted FastCGI connection, one after another."""
    # Kept-alive connections carry many small writes (a response's records, then
    # END_REQUEST when it could not go with them): Nagle's algorithm would hold each
    # one until the previous is acknowledged, 40 ms with delayed ACKs. Once per connection.
    _set_nodelay(sock)
    channel = Channel(sock, server.config, _peer_text(raw_peer), server.heads_waiting)
    channel.batch = held_writes(server)
    # The first request is waited for like an SCGI one; later ones up to keepalive_timeout.
    idle: set[Any] | dict[Any, float] = server.idle_sockets
    idle_timeout = server.config.header_timeout
    try:
        while not server.stopping:
            head = channel.next_request(idle_timeout, idle)
            if head is None:
                break
            exchange = FastCGIExchange(channel, head, raw_peer, server)
            reusable = exchange.serve(server.app)
            if server.access_log is not None:  # the server's, batched as for SCGI
                server.access_log.log(exchange)
            if server.max_requests:
                server.count_request()
            if not reusable:
                break
            idle, idle_timeout = server.keepalive_sockets, server.config.keepalive_timeout
    except Exception:
        logger.exception("Unexpected error on a FastCGI connection from %s", channel.peer_text)
    finally:
        channel.close()


# Each server's held writes, made with its first FastCGI connection.
_held_writes: weakref.WeakKeyDictionary[SCGIServer, HeldWrites] = weakref.WeakKeyDictionary()


def held_writes(server: SCGIServer) -> HeldWrites:
    batch = _held_writes.get(server)
    if batch is None:
        batch = _held_writes[server] = HeldWrites(server)
    return batch


def _peer_text(raw_peer: Any) -> str:
    peer = peer_address(raw_peer)
    if isinstance(peer, tuple) and peer:
        return f"{peer[0]}:{peer[1]}"
    return "a unix socket peer"


def _content_length(value: str | None) -> int:
    # nginx sends "" on a GET and Apache nothing: the body is what STDIN carries.
    if value and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return UNKNOWN_LENGTH


_new_stream = object.__new__
_AUTHORIZER = fastcgi.Role.AUTHORIZER  # a global: no lookup on the enum class


class ErrorStream:
    """``wsgi.errors`` of a FastCGI request: STDERR records (the front-end logs them)
    and this module's logger.

    The exchange holds the environ, which holds this stream: a reference cycle, which
    the exchange breaks when the request is over (else every request's objects wait for
    the garbage collector, whose passes then cost a few µs a request).
    """

    __slots__ = ("exchange",)

    def __init__(self, exchange: FastCGIExchange) -> None:
        # None once the request is over (the exchange sets it, without a call to
        # a method): later writes go to the logger only.
        self.exchange: FastCGIExchange | None = exchange

    def write(self, text: str) -> int:
        exchange = self.exchange
        if exchange is None:
            if text.strip():
                logger.warning("wsgi.errors after its request: %s", text.rstrip("\n"))
            return len(text)
        if text.strip():
            environ = exchange.environ or {}
            logger.warning("wsgi.errors during %s: %s", request_line(environ), text.rstrip("\n"))
        exchange.send_stderr(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class FastCGIExchange(Exchange):
    """One FastCGI request and its response (see the module docstring)."""

    __slots__ = ("channel", "ended", "errors", "keep_conn", "request_id", "too_large")

    def __init__(self, channel: Channel, head: fastcgi.RequestHead, raw_peer: Any,
                 server: SCGIServer) -> None:
        # Exchange.__init__, inlined (once a request; and a FastCGI request starts with
        # some of its slots otherwise): tests/test_fastcgi_server.py checks that every
        # slot of Exchange is set. environ, body and is_head are set below.
        self.config = server.config
        self.base_environ = server.base_environ
        self.idle_sockets = server.idle_sockets
        self.heads_waiting = channel.heads_waiting  # the server's (read by SCGI heads only)
        self.sock = channel.sock
        self.raw_peer = raw_peer
        self._peer = _UNDECODED
        self.status = self.result = None
        self.headers = []
        self.head_sent = self.abort = self.head_is_all = False
        self.fin_awaited = self.gemini = self.overread = False
        self.bytes_sent = 0
        self.started = time.monotonic()
        self.write_waited = 0.0
        self.nodelay = True  # set once for the connection (serve_connection)
        self.channel = channel
        self.ended = False  # END_REQUEST sent
        self.request_id = head.request_id
        self.keep_conn = head.keep_conn
        cgi = head.environ
        cgi["FCGI_ROLE"] = head.role._name_  # .name is a descriptor: two calls more
        config = self.config
        timeout = config.body_timeout
        value = cgi.get("CONTENT_LENGTH")  # a GET's "" or nothing: no call
        length = _content_length(value) if value else UNKNOWN_LENGTH
        unknown = length == UNKNOWN_LENGTH
        limit = config.max_body_size
        self.too_large = not unknown and bool(limit) and length > limit
        prefetched, complete = b"", channel.stdin_done
        if not self.too_large and not complete:  # too large: never read, only skipped
            prefetched, complete = channel.prefetch_stdin(PREFETCH_LIMIT, timeout, unknown)
        if unknown and complete:
            # Measured: say it, "0" too, as SCGI always does. nginx's "" or Apache's
            # nothing would cost Django's int() an exception on every GET.
            length = len(prefetched)
            cgi["CONTENT_LENGTH"] = str(length) if length else "0"
        self.body = body = FastCGIBody(channel, timeout, length, prefetched)
        # FastCGI's own path rules (environ._locate) read a SCRIPT_NAME or serve an
        # Authorizer: without either the request is an SCGI-shaped one, which may take
        # build_environ's quick paths (tests/test_fastcgi_environ.py holds the two equal).
        # By position: a call with keywords takes Python 3.11's slower path.
        self.environ = environ = build_environ(
            cgi, body, self.base_environ, config.mount_prefix, self._get_peer,
            bool(cgi.get("SCRIPT_NAME")) or head.role is _AUTHORIZER)
        # ErrorStream(self) without its __init__ frame: once a request.
        self.errors = errors = _new_stream(ErrorStream)
        errors.exchange = self
        environ["wsgi.errors"] = errors
        # A server extension key (PEP 3333): which request of its connection this is.
        environ["django_scgi.requests_on_connection"] = channel.requests
        self.is_head = environ["REQUEST_METHOD"] == "HEAD"

    # -- the request's life --

    def serve(self, app: Callable[..., Any]) -> bool:
        """Run the application and end the request; whether the connection may serve
        another one."""
        channel = self.channel
        if self.too_large:
            self._refuse_body()
        elif not channel.broken:
            # Run the application (inline: once a request), the watch on meanwhile. On a
            # kept connection it runs already, since the wait for this request, and goes
            # on running after it, for the wait for the next one.
            channel.handler = channel.greenlet
            if not channel.watching:
                channel.watch()
            try:
                self.run_application(app)
            except RequestInterrupted:
                logger.debug("%s %s during %s", self.peer_text,
                             "aborted the request" if channel.aborted else "went away",
                             request_line(self.environ or {}))
            finally:
                channel.handler = None
        try:
            if self.abort or channel.broken or channel.writing:
                # Half a record, a reset or a protocol error: the connection cannot carry
                # another request, and END_REQUEST would claim a complete response.
                close_abortive(self.sock) if self.abort else channel.close()
                self.close_result()
                return False
            ended = self.ended or self._end()  # ended: it went with the last bytes
            self.close_result()
            return ended and self.keep_conn
        finally:
            self.errors.exchange = None  # the stream's cycle through the environ

    def _end(self) -> bool:
        """END_REQUEST (after the replies the protocol owes); False when it failed."""
        if self.ended:
            return True  # it went out with the last bytes of the response
        channel = self.channel
        try:
            data = channel.take_replies() + channel.conn.end_request(self.request_id)
            self._write_final(data)
        except (PeerGone, OSError):
            channel.broken = True
            return False
        return True

    def _refuse_body(self) -> None:
        message = b"The request body is larger than the configured limit."
        self.status = "413 Content Too Large"
        head = encode_response_head(self.status, [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(message))),
        ])
        try:
            self._send(head + message, last=True)
            self.head_sent = True
        except (PeerGone, OSError):
            self.channel.broken = True

    # -- writing: records instead of bytes --

    def _send(self, data: bytes, last: bool = False) -> None:
        channel = self.channel
        if channel.aborted or channel.broken:
            raise PeerGone("the front-end aborted the request")
        if last:
            # Nothing follows (the exchange knows it for a response sent in one chunk):
            # END_REQUEST goes in the same write, so the front-end has the end of the
            # response and of the request at once.
            records = channel.conn.end_with_stdout(self.request_id, data)
            if channel.pending_replies:
                records = channel.take_replies() + records
            self.ended = True
            self._write_final(records)
            return
        records = fastcgi.encode_stdout(self.request_id, data)
        if channel.pending_replies:
            records = channel.take_replies() + records
        self._write(records)

    def _write_final(self, data: bytes) -> None:
        """The response's last write (END_REQUEST in it): held for a batch
        (fcgi_batch) when the connection is kept and the server busy, else written."""
        channel = self.channel
        batch = channel.batch
        # hold() only when something is held or others are ready: a lone request
        # (the sequential case) spares the call.
        if (self.keep_conn and batch is not None and batch.loop is not None
                and (batch.items or batch.loop.pendingcnt) and batch.hold(channel, data)):
            self.bytes_sent += len(data)
            return
        # _write(), inlined: once a request.
        if channel.held:  # its previous response is still held: that one goes first
            channel.release()
        channel.writing = True  # stays set when a write is cut short: the stream is broken
        try:
            Exchange._send(self, data)
        except PeerGone:
            channel.broken = True
            raise
        channel.writing = False

    def _write(self, data: bytes) -> None:
        channel = self.channel
        if channel.held:  # its previous response is still held: that one goes first
            channel.release()
        channel.writing = True  # stays set when a write is cut short: the stream is broken
        try:
            Exchange._send(self, data)  # not super(): once a request, calls count
        except PeerGone:
            channel.broken = True
            raise
        channel.writing = False

    def send_stderr(self, data: bytes) -> None:
        if not data or self.channel.aborted or self.channel.broken:
            return
        try:
            self._write(fastcgi.encode_stderr(self.request_id, data))
        except (PeerGone, OSError):
            pass  # the response's own writes will tell

    def _send_file(self, fd: int) -> None:
        # No sendfile(): the file's bytes must go inside STDOUT records.
        self.send_chunk(b"")
        while chunk := os.read(fd, FILE_CHUNK):
            self._send(chunk)

    def _head(self, streaming: bool) -> bytes:
        head = Exchange._head(self, streaming)  # not super(): once a request
        if not self.channel.stdin_done:
            self._discard_unread_body()
        return head
