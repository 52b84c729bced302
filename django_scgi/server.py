"""The SCGI server: listeners, connection pool, per-connection handling, shutdown.

Owns sockets, greenlets, timeouts and limits. Serves any WSGI callable and never
imports Django or reads settings: everything arrives as a ``ServerConfig``.

One connection carries one request: read the header block (bounded in size and
time), build the environ, call the application, write ``Status:`` + headers and each
body chunk as the iterable yields it, drain what the application left unread, close.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import logging
import os
import signal
import socket as stdlib_socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent import socket
from gevent.event import Event
from gevent.hub import Waiter, get_hub, getcurrent

from . import protocol
from .protocol import declared_length
from .conf import Address, FDAddress, ServerConfig, TCPAddress, UnixAddress
from .connection import (SENDS_MORE, ClosingQueue, Connection, accept_function,
                         listen_queue_function, peer_address, peer_host)
from .environ import build_environ, make_base_environ, mask_environ, request_line, response_head

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("django.server")

# recv() size for the header block: one call reads a typical front-end request
# (Apache sends 600-900 bytes of variables) together with the start of the body.
RECV_SIZE = 64 * 1024
# wsgi.input.read() of at least this many bytes fills one preallocated buffer instead of
# joining chunks: request.body of N bytes then costs N, not 2N (BodyInput).
ONE_BUFFER_READ = 1024 * 1024
# Largest response chunk that is copied to join the head in one send(); larger chunks
# go out in their own send() rather than being copied.
COALESCE_LIMIT = 64 * 1024
# Peer errors that mean "the front-end went away": close quietly.
PEER_GONE_ERRNOS = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ESHUTDOWN, errno.ECONNABORTED})
# Seconds to go on reading (and dropping) what the peer still sends after our answer.
# close() with unread bytes in the receive buffer makes the kernel send RST instead of
# FIN, and the peer's kernel then throws away response bytes it has not read yet:
# the answer is lost when bytes follow the body (nginx < 1.29.6 with
# scgi_request_buffering off sends CONTENT_LENGTH=0 and then the body), when the body
# is over drain_limit, or when we refuse a request (413) while the body is on its
# way. A front-end closes as soon as it sees our FIN, so this costs one round trip;
# the bound is for peers that do not. Apache's lingering close waits 2 s per read.
LINGER_TIMEOUT = 2.0

# Seconds between two log lines about the same refused peer address: a scanner that
# retries every millisecond must not flood the log.
REFUSED_LOG_INTERVAL = 60.0
# Peer addresses whose allow-list verdict is remembered; the cache is emptied when
# full so a flood of distinct addresses costs time, not memory.
PEER_CACHE_SIZE = 4096
# Seconds a connection that has not sent a byte yet may still take once shutdown has
# begun: long enough for a front-end that just connected, short enough that an idle
# peer (a TCP health check) does not hold up the exit for header_timeout.
IDLE_GRACE_ON_STOP = 1.0

INTERNAL_ERROR = protocol.encode_response_head(
    "500 Internal Server Error",
    [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "21")],
) + b"Internal Server Error"


class ListenerError(OSError):
    """A listener could not be set up; the message is one sentence for the operator."""


class PeerGone(Exception):
    """The front-end closed the connection or stopped reading in time."""


class WriteTimeout(PeerGone):
    """The front-end accepted no response bytes for ``write_timeout`` seconds."""


class IncompleteBody(OSError):
    """The request body ended before CONTENT_LENGTH bytes arrived.

    An ``OSError`` so Django turns it into ``UnreadablePostError``: no view gets to
    build a success response on a truncated body.
    """


# --- warnings about peers --------------------------------------------------------------

# Warnings about misbehaving peers (malformed requests, timeouts) allowed per
# REFUSED_LOG_INTERVAL; past that they are counted and summed up in one line. 5,000
# slowloris connections timing out together would otherwise write 5,000 lines.
PEER_WARNINGS_PER_INTERVAL = 100


class RateLimitedWarnings:
    """``logger.warning`` for peer trouble, at most ``limit`` lines per ``interval``."""

    def __init__(self, limit: int, interval: float) -> None:
        self.limit = limit
        self.interval = interval
        self._window_start = -interval
        self._logged = 0
        self._suppressed = 0

    def warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.interval:
            self._new_window(now)
        if self._logged < self.limit:
            self._logged += 1
            logger.warning(message, *args)
        else:
            self._suppressed += 1

    def _new_window(self, now: float) -> None:
        if self._suppressed:
            logger.warning("%d more warnings about peers were not logged in the last %ds.",
                           self._suppressed, self.interval)
        self._window_start, self._logged, self._suppressed = now, 0, 0


peer_warnings = RateLimitedWarnings(PEER_WARNINGS_PER_INTERVAL, 60.0)


# --- listeners -----------------------------------------------------------------------


class Listener:
    """A bound, listening socket and how to clean up after it."""

    def __init__(self, sock: stdlib_socket.socket, address: Address, owned_path: str | None = None):
        self.socket = sock
        self.address = address
        self.owned_path = owned_path
        self._inode = os.stat(owned_path).st_ino if owned_path else None

    @property
    def display(self) -> str:
        if isinstance(self.address, TCPAddress):
            host, port = self.socket.getsockname()[:2]
            return str(TCPAddress(host, port))
        return str(self.address)

    def close(self) -> None:
        self.socket.close()
        self.remove_socket_file()

    def remove_socket_file(self) -> None:
        """Unlink our unix socket, unless someone else's socket replaced it meanwhile."""
        if not self.owned_path:
            return
        try:
            if os.stat(self.owned_path).st_ino == self._inode:
                os.unlink(self.owned_path)
        except FileNotFoundError:
            pass


def open_listeners(addresses: Iterable[Address], *, socket_mode: int, backlog: int) -> list[Listener]:
    """Bind every address or none: on an error the ones already bound are closed."""
    listeners: list[Listener] = []
    try:
        for address in addresses:
            listeners.append(open_listener(address, socket_mode=socket_mode, backlog=backlog))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def open_listener(address: Address, *, socket_mode: int, backlog: int) -> Listener:
    if isinstance(address, UnixAddress):
        return _open_unix(address, socket_mode, backlog)
    if isinstance(address, FDAddress):
        return _adopt_fd(address)
    return _open_tcp(address, backlog)


def _open_tcp(address: TCPAddress, backlog: int) -> Listener:
    family = stdlib_socket.AF_INET6 if address.family_is_v6 else stdlib_socket.AF_INET
    if not address.family_is_v6 and not address.host[0].isdigit():
        family = stdlib_socket.AF_UNSPEC
    try:
        infos = stdlib_socket.getaddrinfo(address.host, address.port, family, stdlib_socket.SOCK_STREAM)
    except stdlib_socket.gaierror:
        raise ListenerError(
            errno.EADDRNOTAVAIL, f"Cannot resolve the host name {address.host!r}."
        ) from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = stdlib_socket.socket(family, kind, proto)
    try:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        if family == stdlib_socket.AF_INET6:
            sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return Listener(sock, address)


def _open_unix(address: UnixAddress, mode: int, backlog: int) -> Listener:
    path = address.path
    _clear_stale_socket(path)
    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # chmod after bind: the mode given to bind() is filtered by the umask.
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return Listener(sock, address, owned_path=path)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse anything else at ``path``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenerError(errno.EEXIST, f"{path} exists and is not a socket; not touching it.")
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
        return
    except (TimeoutError, BlockingIOError):
        pass  # a live server whose backlog is full: it is listening, so leave it alone
    except OSError as error:
        raise ListenerError(
            error.errno, f"Cannot probe the socket {path}: {error.strerror or error}."
        ) from None
    finally:
        probe.close()
    raise ListenerError(errno.EADDRINUSE, f"Another server is listening on {path}; leaving it alone.")


def _adopt_fd(address: FDAddress) -> Listener:
    try:
        sock = stdlib_socket.socket(fileno=address.fd)
    except OSError as error:
        raise ListenerError(
            error.errno, f"File descriptor {address.fd} is not a usable socket."
        ) from None
    if sock.type != stdlib_socket.SOCK_STREAM:
        raise ListenerError(errno.ENOTSOCK, f"File descriptor {address.fd} is not a stream socket.")
    return Listener(sock, address)


# --- request body ----------------------------------------------------------------------


class BodyInput:
    """``wsgi.input``: reads the body lazily from the socket, never past CONTENT_LENGTH."""

    __slots__ = ("_sock", "parser", "_pending", "_timeout", "bytes_read", "_eof", "timed_out",
                 "length")

    def __init__(self, sock: Any, parser: protocol.RequestParser | None, timeout: float,
                 length: int = 0) -> None:
        self._sock = sock
        self.length = length  # CONTENT_LENGTH
        # None: the request has no body (most do not; no parser is made for them), and
        # then ``remaining`` is 0: the hot path checks this instead of calling it.
        self.parser = parser
        self._pending = b""
        self._timeout = timeout
        self.bytes_read = 0
        self._eof = parser is None or parser.state is not protocol.State.BODY
        # The peer sent no body bytes for ``timeout`` seconds: the body is over for us
        # (reads return b"" from then on) and the exchange logs it once.
        self.timed_out = False

    @property
    def remaining(self) -> int:
        """Body bytes not yet taken from the socket: what draining would have to read.

        Bytes that arrived with the header block, or were read and not yet handed out,
        are already off the socket and cannot make a close reset the connection.
        """
        return 0 if self.parser is None else self.parser.remaining

    def read(self, size: int | None = -1) -> bytes:
        left = self.length - self.bytes_read
        if size is None or size < 0 or size > left:
            size = left
        if size >= ONE_BUFFER_READ:
            return self._read_into_one_buffer(size)
        chunks, wanted = [], size
        while wanted > 0:
            chunk = self._next_chunk(wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _read_into_one_buffer(self, size: int) -> bytes:
        """``size`` bytes gathered straight into the bytes object that is returned.

        Joining a list of chunks holds the body twice at the end (the chunks and the
        result): request.body would cost 2x its size. A BytesIO extended to ``size``
        at once takes what is already off the socket, then the socket reads straight
        into its buffer, and getvalue() hands that buffer over uncopied.
        """
        buffer = io.BytesIO()
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
        got = 0
        while got < size and (chunk := self._next_chunk(size - got, receive=False)):
            got += buffer.write(chunk)
        if got < size and not self._eof:
            with buffer.getbuffer() as view:
                got = self._receive_into(view, got, size)
        if got < size:
            buffer.truncate(got)
        return buffer.getvalue()

    def _receive_into(self, view: memoryview, got: int, size: int) -> int:
        """Fill ``view[got:size]`` from the socket; the parser only counts the bytes."""
        parser, sock = self.parser, self._sock
        sock.settimeout(self._timeout)
        while got < size and parser.remaining:
            try:
                count = sock.recv_into(view[got : got + min(size - got, parser.remaining)])
            except (TimeoutError, socket.timeout):
                self._eof = self.timed_out = True
                raise IncompleteBody(
                    errno.ETIMEDOUT, f"no request body bytes for {self._timeout}s"
                ) from None
            if not count:  # EOF inside the body
                parser.receive_data(b"")
                self._next_event()  # raises IncompleteBody
            parser.skip_body(count)
            got += count
            self.bytes_read += count
        return got

    def readline(self, size: int | None = -1) -> bytes:
        limit = sys.maxsize if size is None or size < 0 else size
        line = b""
        while len(line) < limit:
            chunk = self._next_chunk(limit - len(line))
            if not chunk:
                break
            newline = chunk.find(b"\n")
            if newline >= 0:
                self._unread(chunk[newline + 1 :])
                return line + chunk[: newline + 1]
            line += chunk
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return iter(self.readline, b"")

    def _unread(self, data: bytes) -> None:
        if data:
            self._pending = data + self._pending
            self.bytes_read -= len(data)

    def _next_chunk(self, wanted: int, receive: bool = True) -> bytes:
        """Up to ``wanted`` body bytes; b"" at the end of the body (or, without
        ``receive``, when none is off the socket yet)."""
        if self._pending:
            chunk, self._pending = self._pending[:wanted], self._pending[wanted:]
        else:
            chunk = self._from_parser(receive)
            if len(chunk) > wanted:
                chunk, self._pending = chunk[:wanted], chunk[wanted:]
        self.bytes_read += len(chunk)
        return chunk

    def _from_parser(self, receive: bool = True) -> bytes:
        while not self._eof:
            event = self._next_event()
            if type(event) is protocol.Data:
                return event.data
            if event is protocol.NEED_DATA:
                if not receive:
                    break
                self._receive()
            else:
                self._eof = True
        return b""

    def _next_event(self):
        try:
            return self.parser.next_event()
        except protocol.IncompleteRequest:
            self._eof = True
            raise IncompleteBody(
                errno.EPIPE, f"request body ended after {self.bytes_read} bytes"
            ) from None

    def _receive(self) -> None:
        self._sock.settimeout(self._timeout)
        size = min(self.parser.remaining, RECV_SIZE)
        try:
            data = self._sock.recv(size)
        except (TimeoutError, socket.timeout):
            # Not again: draining the rest before closing would wait another timeout.
            self._eof = self.timed_out = True
            raise IncompleteBody(
                errno.ETIMEDOUT, f"no request body bytes for {self._timeout}s"
            ) from None
        self.parser.receive_data(data)

    def discard(self, limit: int) -> bool:
        """Read and drop the unread body if at most ``limit`` bytes; True when all gone."""
        if self.timed_out or self.remaining > limit:
            return False
        try:
            while self._next_chunk(RECV_SIZE):
                pass
        except OSError:
            return False
        return True


# wsgi.input of every request without a body, shared: with no parser it is at its end
# from the start, so no method changes it (bytes_read stays 0, timed_out False).
_NO_BODY = BodyInput(None, None, 0.0)


# --- file offload ------------------------------------------------------------------------


class FileWrapper:
    """``wsgi.file_wrapper``: lets the server send a real file with ``os.sendfile``."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while chunk := read(self.block_size):
            yield chunk

    def fileno(self) -> int | None:
        try:
            fd = self.filelike.fileno()
            return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except (AttributeError, OSError, ValueError):
            return None


# --- one connection ------------------------------------------------------------------------


class Exchange:
    """One request and its response on one connection."""

    __slots__ = (
        "server", "sock", "raw_peer", "_peer", "environ", "body", "status", "headers",
        "head_sent", "bytes_sent", "started", "is_head", "abort", "overread", "nodelay",
        "result", "fin_awaited",
    )

    def __init__(self, server: SCGIServer, sock: Any, raw_peer: Any) -> None:
        self.server = server
        self.sock = sock
        # As accept() gives it; decoded only when something needs it (peer).
        self.raw_peer = raw_peer
        self._peer: Any = _UNDECODED
        self.environ: dict[str, Any] | None = None
        self.body: BodyInput | None = None
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.bytes_sent = 0
        self.started = time.monotonic()
        self.is_head = False
        # Close with a reset instead of lingering: the peer stopped reading, so waiting
        # for it is pointless, and the kernel would go on holding (and probing with)
        # the unsent response bytes of a normally closed socket.
        self.abort = False
        # Whether the header reads took bytes past the declared body (they are dropped,
        # and the peer may be sending more): then closing must linger.
        self.overread = True
        self.nodelay = False
        # The application's iterable, closed by close_result() once the connection is.
        self.result: Any = None
        # Whether the response's last bytes went in one send_before_close(), which
        # makes the kernel hold them for the FIN where it can (TCP): only then may the
        # close wait (ClosingQueue) without the front-end seeing the end of the bytes
        # before the end of the response. Acceptors hold only where it can.
        self.fin_awaited = False

    # -- reading the request --

    def read_request(self) -> bool:
        """Parse the header block; False when there is no request to answer."""
        config = self.server.config
        try:
            head = self._read_head(config)
        except protocol.ProtocolError as error:
            self._refuse(error)
            return False
        except (TimeoutError, socket.timeout):
            peer_warnings.warn("Closing %s: no complete header block in %ss.", self.peer_text,
                               config.header_timeout)
            return False
        except OSError:
            return False
        if head is None:
            return False  # closed before the first byte: Apache does this; not an error
        cgi, parser, content_length = head
        self.body = _NO_BODY if parser is None else BodyInput(
            self.sock, parser, config.body_timeout, content_length)
        self.environ = build_environ(
            cgi, self.body, self.server.base_environ,
            mount_prefix=config.mount_prefix, peer=self._get_peer,
        )
        self.is_head = self.environ["REQUEST_METHOD"] == "HEAD"
        return True

    def _read_head(self, config: ServerConfig):
        """(CGI variables, parser for the body or None when there is none, CONTENT_LENGTH),
        or None."""
        # Usually the front-end has written the whole request by the time this runs:
        # one read that does not wait, parsed without a parser object, gets it.
        try:  # the connection's descriptor is non-blocking: None when nothing is there
            first: bytes | None = os.read(self.sock.fd, RECV_SIZE)
        except BlockingIOError:
            first = None
        if first:
            head = protocol.parse_head(first, config.max_header_size,
                                       protocol.DEFAULT_MAX_HEADERS, config.max_body_size or None)
            if head is not None:
                cgi, content_length, body_start = head
                self.overread = len(first) > body_start + content_length
                if not content_length:
                    return cgi, None, 0
                return cgi, protocol.RequestParser.after_head(
                    first, body_start, content_length, max_body_size=config.max_body_size or None
                ), content_length
        parser = protocol.RequestParser(
            max_header_size=config.max_header_size, max_body_size=config.max_body_size or None
        )
        deadline = self.started + config.header_timeout
        if first is None:
            event = self._wait_for_headers(parser, deadline, 0, b"")
        else:
            parser.receive_data(first)
            event = parser.next_event()
            if event is protocol.NEED_DATA:
                event = self._wait_for_headers(parser, deadline, len(first), first[:_PREFIX_KEEP])
        if type(event) is not protocol.Headers:
            return None
        return event.environ, parser, event.content_length

    def _wait_for_headers(self, parser: protocol.RequestParser, deadline: float,
                          received: int, prefix: bytes):
        sock = self.sock
        idle = self.server.idle_sockets
        if not received:
            idle.add(sock)  # until its first bytes arrive, shutdown may close it
        try:
            while True:
                remaining_time = deadline - time.monotonic()
                if remaining_time <= 0:
                    raise TimeoutError
                sock.settimeout(remaining_time)
                data = sock.recv(RECV_SIZE)
                idle.discard(sock)
                received += len(data)
                if len(prefix) < _PREFIX_KEEP:
                    prefix += data[:_PREFIX_KEEP]
                parser.receive_data(data)
                event = parser.next_event()
                if event is not protocol.NEED_DATA:
                    if type(event) is protocol.Headers:
                        self.overread = received > _request_size(prefix, event.content_length)
                    return event
        finally:
            idle.discard(sock)

    def can_close_at_once(self) -> bool:
        """True when nothing of the request is left unread, so close() cannot reset.

        Body reads never ask for more than the body, but the header reads may have taken
        bytes past it and the peer may have sent more since: with neither, a plain
        close sends FIN, sparing the lingering close's shutdown, wait and extra reads.
        The check is one ``FIONREAD`` ioctl.
        """
        body = self.body
        if self.overread or body is None or body.timed_out or (
                body.parser is not None and body.remaining):
            return False
        try:
            return not self.sock.has_unread_bytes()
        except OSError:
            return False

    def _refuse(self, error: protocol.ProtocolError) -> None:
        peer_warnings.warn("Refused a malformed request from %s: %s", self.peer_text, error)
        status = f"{error.status_hint}"
        head = protocol.encode_response_head(status, [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(error.message))),
        ])
        try:
            self.sock.settimeout(self.server.config.write_timeout)
            self.sock.sendall(head + error.message.encode("ascii", "replace"))
        except OSError:
            pass

    @property
    def peer(self) -> Any:
        """The peer as Python's socket module gives it: (host, port, ...) or ""."""
        if self._peer is _UNDECODED:
            self._peer = peer_address(self.raw_peer)
        return self._peer

    def _get_peer(self) -> Any:
        return self.peer

    @property
    def peer_text(self) -> str:
        if isinstance(self.peer, tuple) and self.peer:
            return f"{self.peer[0]}:{self.peer[1]}"
        return "a unix socket peer"

    # -- running the application --

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info=None):
        if exc_info:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() was already called")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy WSGI ``write()`` callable."""
        self.send_chunk(data)

    def run_application(self, app: Callable) -> None:
        """Call the application and send its response; close_result() closes it later."""
        try:
            self.result = result = app(self.environ, self.start_response)
            self.send_result(result)
        except WriteTimeout:
            self.abort = True
            peer_warnings.warn("Closing %s: it accepted no response bytes for %ss (write "
                               "timeout) during %s.", self.peer_text,
                               self.server.config.write_timeout, request_line(self.environ))
        except PeerGone:
            logger.debug("%s went away during %s", self.peer_text, request_line(self.environ))
        except Exception:
            self._application_failed()

    def send_result(self, result: Iterable[bytes]) -> None:
        if self.is_head:
            for _ in result:
                pass
        elif type(result) is FileWrapper and (fd := result.fileno()) is not None:
            self._send_file(fd)
        else:
            streaming = getattr(result, "streaming", False)
            for chunk in result:
                if chunk:
                    self.send_chunk(chunk, streaming)
        if not self.head_sent:
            self.send_chunk(b"", last=True)

    def send_chunk(self, chunk: bytes, streaming: bool = False, last: bool = False) -> None:
        """Send one chunk of the body, the head before the first; ``last``: nothing follows."""
        if self.head_sent:
            if not self.nodelay:
                # A later chunk is one the application wants delivered now: without
                # TCP_NODELAY, Nagle's algorithm holds a small one until the previous
                # one is acknowledged, which delayed ACKs stretch to 40 ms. Set only
                # here: a response sent in one send() never needs it.
                self.nodelay = True
                _set_nodelay(self.sock)
            self._send(chunk)
            return
        head = self._head(streaming)
        if len(chunk) <= COALESCE_LIMIT:
            if not (last or streaming):
                # The usual response: one chunk, all the Content-Length declares, and
                # nothing left to read (an application that read only part of the body
                # leaves the rest for drain()). Then close() follows at once.
                parser = self.body.parser
                last = ((parser is None or not parser.remaining)
                        and declared_length(self.headers) == len(chunk))
            self._send(head + chunk, last)
        else:
            self._send(head)
            self._send(chunk)

    def _head(self, streaming: bool) -> bytes:
        if self.status is None:
            raise AssertionError("the application sent body bytes before start_response()")
        head = response_head(self.status, self.headers, streaming=streaming)
        if self.body.parser is not None:  # a request without a body has none to discard
            self._discard_unread_body()
        self.head_sent = True
        return head

    def _discard_unread_body(self) -> None:
        # Apache writes the whole request body before it reads any of the response: a
        # response that fills the socket buffers while the body sits unread deadlocks
        # both sides. An application that has not touched the body by the time it
        # answers will not; an application that has started reading may go on reading
        # while it streams, so leave its body alone.
        body = self.body
        if body.bytes_read == 0 and body.remaining:
            body.discard(self.server.config.drain_limit)

    def _send(self, data: bytes, last: bool = False) -> None:
        # send() in a loop, not sendall(): gevent's sendall() applies the timeout to the
        # whole call, which cuts off a peer that takes a large chunk slowly but steadily.
        # Each send() waits at most write_timeout for the peer to accept more bytes.
        sock, sent = self.sock, 0
        try:
            sock.timeout = self.server.config.write_timeout  # sock.settimeout(), inlined
            if last:
                sent = sock.send_before_close(data)
                self.fin_awaited = sent == len(data)
            else:
                sent = sock.send(data)
            if sent < len(data):  # the socket buffer filled: go on from where it stopped
                view = memoryview(data)
                while sent < len(view):
                    sent += sock.send(view[sent:])
        except (TimeoutError, socket.timeout):
            raise WriteTimeout("write timed out") from None
        except OSError as error:
            if error.errno in PEER_GONE_ERRNOS:
                raise PeerGone(str(error)) from None
            raise
        finally:
            self.bytes_sent += sent

    def _send_file(self, fd: int) -> None:
        self.send_chunk(b"")
        # The file follows the head in several segments; the last, short one would
        # otherwise wait for the head's ACK (Nagle).
        self.nodelay = True
        _set_nodelay(self.sock)
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        end = os.fstat(fd).st_size
        out = self.sock.fileno()
        timeout = self.server.config.write_timeout
        while offset < end:
            try:
                sent = os.sendfile(out, fd, offset, end - offset)
            except BlockingIOError:
                self._wait_writable(timeout)
                continue
            except OSError as error:
                if error.errno in PEER_GONE_ERRNOS:
                    raise PeerGone(str(error)) from None
                raise
            if sent == 0:
                break
            offset += sent
            self.bytes_sent += sent

    def _wait_writable(self, timeout: float) -> None:
        try:
            self.sock.settimeout(timeout)
            self.sock.wait_writable()
        except (TimeoutError, socket.timeout):
            raise WriteTimeout("write timed out") from None

    def _application_failed(self) -> None:
        where = request_line(self.environ)
        if self.head_sent:
            logger.error(
                "Error after the response head was sent for %s; resetting the connection.",
                where, exc_info=True, extra={"environ": mask_environ(self.environ)},
            )
            # A normal close (FIN) looks like the end of a complete response: nginx
            # would hand the client a 200 that silently lacks its end. A reset is seen
            # by every front-end as a failed upstream, so the client's framing breaks.
            self.abort = True
            return
        logger.error(
            "Error while serving %s; answering 500. Environ: %r", where,
            mask_environ(self.environ), exc_info=True,
        )
        self.status = "500 Internal Server Error"
        try:
            self._send(INTERNAL_ERROR)
            self.head_sent = True
        except (PeerGone, OSError):
            pass

    def close_result(self) -> None:
        """WSGI's close() of the iterable: Django's request_finished and its cleanup."""
        close = getattr(self.result, "close", None)
        if close is None:
            return
        self.result = None
        try:
            close()
        except Exception:
            logger.exception("Error closing the response of %s", request_line(self.environ))

    def drain(self) -> None:
        """Read what is left of the request body (bounded), so closing sends no reset.

        For a request that has a body; one without has nothing to drain.
        """
        body = self.body
        if body.timed_out:
            peer_warnings.warn("Closing %s: it sent no request body bytes for %ss (body "
                               "timeout) during %s.", self.peer_text,
                               self.server.config.body_timeout, request_line(self.environ))
        elif body.remaining:
            body.discard(self.server.config.drain_limit)

    def log_access(self) -> None:
        """The access line, when the access log is on (the caller checks the setting)."""
        if self.environ is not None and access_logger.isEnabledFor(logging.INFO):
            self._log_access()

    def _log_access(self) -> None:
        # REMOTE_ADDR "METHOD URI PROTOCOL" STATUS BYTES SECONDS -- docs/production.rst
        # gives the regex and a test holds it. Every field is one token: request_line()
        # escapes spaces, quotes and control characters, and so does this for the peer.
        # BYTES counts what went to the front-end, head included; STATUS 0: no response.
        code = _status_code(self.status)
        remote = str(self.environ.get("REMOTE_ADDR") or "-")
        if not (remote.isascii() and remote.isprintable()) or " " in remote or '"' in remote:
            from urllib.parse import quote

            remote = quote(remote, safe="")
        line = request_line(self.environ)
        method, _, rest = line[1:-1].partition(" ")
        uri, _, protocol_ = rest.rpartition(" ")
        duration = time.monotonic() - self.started
        # makeRecord() + handle() is what info() does, minus findCaller(): walking the
        # stack for a source line that an access line never shows cost about a third
        # of the whole access log's price per request.
        record = access_logger.makeRecord(
            access_logger.name, logging.INFO, __file__, 0, "%s %s %d %d %.3f",
            (remote, line, code, self.bytes_sent, duration), None,
            # For structured (JSON) formatters; status_code drives Django's colours.
            extra={"status_code": code, "remote_addr": remote, "request_method": method,
                   "request_uri": uri, "server_protocol": protocol_,
                   "response_bytes": self.bytes_sent, "duration": duration},
        )
        access_logger.handle(record)


_UNDECODED = object()


def _status_code(status: str | None) -> int:
    try:
        return int(status[:3])  # type: ignore[index]
    except (TypeError, ValueError):
        return 0


# Bytes of the request's start kept to read its length prefix again: the digits of the
# largest header block plus ":" fit (the parser refuses longer prefixes).
_PREFIX_KEEP = 24


def _request_size(prefix: bytes, content_length: int) -> int:
    """Bytes of a whole request whose header netstring starts with ``prefix``."""
    colon = prefix.index(b":")
    return colon + 1 + int(prefix[:colon]) + 1 + content_length


def _set_nodelay(sock: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the peer is already gone; reading the request will tell


def _close_lingering(sock: Any) -> None:
    """Send FIN, drop what the peer still sends until it closes (bounded), then close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(RECV_SIZE):
                break
    except OSError:  # timed out, reset, or not connected any more: nothing to save
        pass
    finally:
        sock.close()


def _close_abortive(sock: Any) -> None:
    """Close with RST: the kernel drops unsent bytes at once instead of retrying them."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


# --- who may connect -------------------------------------------------------------------


class PeerFilter:
    """The allow-list for TCP peers, with a verdict cache and rate-limited logging."""

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]):
        self.networks = tuple(networks)
        self._verdicts: dict[str, bool] = {}
        self._last_logged: dict[str, float] = {}

    def admits(self, host_key: Any, raw_peer: Any) -> bool:
        """``host_key``: ``peer_host(raw_peer, family)``, the verdict cache's key; the address
        is decoded only for a verdict not in the cache and for a refusal's log line."""
        verdict = self._verdicts.get(host_key)
        if verdict is None:
            verdict = self._verdict(peer_address(raw_peer)[0])
            if len(self._verdicts) >= PEER_CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[host_key] = verdict
        if not verdict:
            self._log_refusal(peer_address(raw_peer)[0])
        return verdict

    def _verdict(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
            address = mapped
        return any(address in network for network in self.networks)

    def _log_refusal(self, host: str) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(host, -REFUSED_LOG_INTERVAL) < REFUSED_LOG_INTERVAL:
            return
        if len(self._last_logged) >= PEER_CACHE_SIZE:
            self._last_logged.clear()
        self._last_logged[host] = now
        logger.warning(
            "Refused a connection from %s: not in the allow-list (SCGI_ALLOW_FROM). "
            "Further refusals of this address are logged at most every %ds.",
            host, REFUSED_LOG_INTERVAL,
        )


# --- accepting and dispatching ---------------------------------------------------------

# Seconds to stop accepting after accept() failed for want of resources (EMFILE,
# ENFILE, ENOBUFS): retrying at once would spin the loop and flood the log.
ACCEPT_ERROR_PAUSE = 0.5


# How long a worker greenlet may go on taking connections from the backlog itself
# (Acceptor.follow_up) before it lets the hub run: timers, signals, other listeners and
# greenlets outside the workers wait at most this long, plus one request. The same
# order as CPython's thread switch interval (5 ms).
FOLLOW_UP_BUDGET = 0.005

# A worker taking follow-up connections may hold those it has finished open
# (ClosingQueue) until the predicted end of the next one is at most this long after the
# start of the first held one, predicting that the next takes as long as the last.
# Requests slower than half of it are closed one by one: they gain nothing from it.
CLOSE_HOLD = 0.001

# After a follow-up accept found the backlog empty, the next this many connections skip
# the attempt: one connection at a time, each attempt would be a wasted accept4().
FOLLOW_UP_COOLDOWN = 7

# A connection as the acceptor hands it over: (fd, raw peer address, address family,
# the Acceptor to follow up on, or None: no follow-up after this one).
Accepted = tuple[int, Any, int, "Acceptor | None"]


class Workers:
    """Greenlets that serve connections, at most ``size`` at once, reused.

    A greenlet that has served a connection waits for the next one instead of ending:
    a new greenlet per connection costs a spawn and, on Python 3.11+, a fresh frame
    stack (an ``mmap``/``munmap`` pair) for every request.

    Under load a greenlet that has finished a connection first accepts the next one
    waiting on the same listener (``Acceptor.follow_up``), for up to FOLLOW_UP_BUDGET
    and only while no other connection is in progress: that spares the hub's loop pass
    (``epoll_wait``, libev's ``getpid``) and two greenlet switches per request, and
    never makes a connection already taken in wait behind new ones. While it does,
    it closes the connections it has finished in batches of up to ``close_batch``
    (``close``): the front-end wakes once per batch instead of once per response.
    """

    def __init__(self, size: int, serve: Callable[[int, Any, int], None],
                 close_batch: int) -> None:
        self.size = size
        self.busy = 0
        self._serve = serve
        self.closing = ClosingQueue()
        self.close_batch = close_batch
        # For close(), about the follow-ups of the one worker taking them: when the
        # current one and the first held one started, the acceptor, what its backlog
        # was last found to hold less the follow-ups taken since, and for how many
        # follow-ups nothing is held (_may_hold).
        self._started = self._held_since = 0.0
        self._source: Acceptor | None = None
        self._known_waiting = 0
        self._close_cooldown = 0
        self._idle: list[Waiter] = []
        self._running: set[Any] = set()
        self._freed = Event()
        self._room_waiters = 0  # greenlets in wait_available()
        # Made by join() when it has to wait: setting and clearing an Event around
        # every connection would cost more than the rest of the bookkeeping.
        self._all_done: Event | None = None

    def full(self) -> bool:
        return self.busy >= self.size

    def dispatch(self, connection: Accepted) -> None:
        self.busy += 1
        if not self._idle:
            gevent.spawn_raw(self._run, connection)
        elif getcurrent() is get_hub():
            self._idle.pop().switch(connection)
        else:  # a waiter is switched to from the hub only
            get_hub().loop.run_callback(self._idle.pop().switch, connection)

    def _run(self, connection: Accepted | None) -> None:
        waiter, current = Waiter(), getcurrent()
        # In _running while it exists, idle or not (kill() ends both kinds): not added
        # and removed around every connection.
        self._running.add(current)
        try:
            while connection is not None:
                try:
                    if connection[3] is None:
                        self._serve(connection[0], connection[1], connection[2])
                    else:
                        self._serve_and_follow_up(connection)
                finally:
                    if self.closing.fds:
                        self.closing.flush()
                    self.busy -= 1
                    if self._room_waiters or (not self.busy and self._all_done is not None):
                        self._wake_waiters()
                self._idle.append(waiter)
                connection = waiter.get()
        finally:
            self._running.discard(current)
            if waiter in self._idle:  # killed while idle
                self._idle.remove(waiter)

    def _serve_and_follow_up(self, connection: Accepted) -> None:
        """Serve ``connection``, then those its acceptor still has waiting, in one slot."""
        serve, source, closing = self._serve, connection[3], self.closing
        self._started = time.monotonic()
        deadline = self._started + FOLLOW_UP_BUDGET  # a slow first request ends it
        self._source, self._known_waiting = source, 0
        current = getcurrent()
        closing.holder = None if self._close_cooldown else current
        try:
            serve(connection[0], connection[1], connection[2])
            while (following := source.follow_up(deadline)) is not None:
                self._started = time.monotonic()
                self._known_waiting -= 1  # the follow-up took one of them
                if self._close_cooldown:
                    self._close_cooldown -= 1
                closing.holder = None if self._close_cooldown else current
                serve(following[0], following[1], following[2])
        finally:
            closing.holder = None

    def close(self, connection: Connection) -> None:
        """Close a finished connection, or hold it to close with the next ones.

        Only the worker taking follow-up connections holds (``ClosingQueue.holder``);
        a connection not held is closed at once, with those held before it.
        """
        closing = self.closing
        if closing.holder is getcurrent():
            now, held = time.monotonic(), len(closing.fds)
            if not held:
                self._held_since = self._started
            # From the start of the first held request to the predicted end of the
            # next, counted as lasting as long as this one.
            span = now - self._held_since + now - self._started
            if self._may_hold(held + 1, span):
                closing.add(connection)
                closing.hold()
                return
            if held:
                closing.flush()
        connection.close()

    def _may_hold(self, held: int, span: float) -> bool:
        """Whether ``held`` finished connections may stay open while the next is served.

        At most as many are held as connections still wait in the backlog once the
        next is taken: the front-end is not left without requests in flight, which
        would idle the server at low concurrency (two connections at a time would be
        served in turns). The backlog is asked (a system call) only when what it said
        last no longer covers ``held``; found too short, it is not asked again, and
        nothing is held, for the next FOLLOW_UP_COOLDOWN follow-ups.
        """
        if held >= self.close_batch or span > CLOSE_HOLD:
            return False
        if self._known_waiting > held:
            return True
        self._known_waiting = self._source.waiting() if self._source is not None else 0
        if self._known_waiting > held:
            return True
        self._close_cooldown = FOLLOW_UP_COOLDOWN
        self.closing.holder = None
        return False

    def _wake_waiters(self) -> None:
        """A connection is done: wake wait_available() and, when none is left, join()."""
        if self._room_waiters:  # someone waits for room (shutdown's queue)
            self._freed.set()
            self._freed.clear()
        if not self.busy and self._all_done is not None:
            self._all_done.set()

    def wait_available(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._room_waiters += 1
        try:
            while self.full():
                left = deadline - time.monotonic()
                if left <= 0 or not self._freed.wait(left):
                    return False
            return True
        finally:
            self._room_waiters -= 1

    def join(self, timeout: float) -> bool:
        """Wait until no connection is being served; False when ``timeout`` ran out."""
        if not self.busy:
            return True
        if self._all_done is None or self._all_done.is_set():
            self._all_done = Event()
        return self._all_done.wait(timeout)

    def kill(self, timeout: float) -> None:
        for greenlet in list(self._running):
            gevent.kill(greenlet)
        self.join(timeout)


class Acceptor:
    """Accepts from one listener while ``workers`` has room, one connection per wake-up.

    The loop's watcher is level-triggered: with more connections waiting it fires
    again on the next pass, so no accept() is spent finding the backlog empty. When
    the workers are full the watcher stops and the kernel backlog holds the rest.
    Under load the workers take the backlog themselves instead (``follow_up``).
    """

    def __init__(self, listener: Listener, workers: Workers) -> None:
        self.listener = listener
        self.workers = workers
        self.family = listener.socket.family
        self._fd = listener.socket.fileno()
        self._accept = accept_function()
        # Finished connections are held for a batch (Workers.close) only where the
        # backlog can be measured and the last bytes wait for the FIN (MSG_MORE).
        self._queue_length = listen_queue_function(listener.socket) if SENDS_MORE else None
        self._watcher: Any = None
        self._waiting_for_room = False
        self._cooldown = 0  # connections to dispatch without a follow-up (see follow_up)

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = get_hub().loop.io(self.listener.socket.fileno(), 1)
        self._watcher.start(self._on_readable)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None

    def _on_readable(self) -> None:
        workers = self.workers
        if workers.busy >= workers.size:  # workers.full(), inlined: once per connection
            self.stop()
            if not self._waiting_for_room:
                self._waiting_for_room = True
                gevent.spawn(self._resume_when_room)
            return
        try:
            accepted = self._accept(self._fd)
        except OSError as error:
            self._accept_failed(error)
            return
        if accepted is None:
            return
        if self._cooldown:  # the last follow-up found the backlog empty
            self._cooldown -= 1
            workers.dispatch((accepted[0], accepted[1], self.family, None))
        else:
            workers.dispatch((accepted[0], accepted[1], self.family, self))

    def follow_up(self, deadline: float) -> Accepted | None:
        """The next connection waiting in the backlog, for a worker that just finished one.

        None when another connection is in progress (it may be waiting for the loop),
        when the acceptor is stopped (workers full, paused after an error, shutting
        down) or when ``deadline`` has passed; and when the backlog is empty, which
        also starts a cool-down. Errors are left to the loop's watcher, which sees the
        same backlog on its next pass.
        """
        watcher = self._watcher
        if (self.workers.busy != 1 or watcher is None or not watcher.active
                or time.monotonic() > deadline):
            return None
        try:
            accepted = self._accept(self._fd)
        except OSError:
            return None
        if accepted is None:
            self._cooldown = FOLLOW_UP_COOLDOWN
            return None
        return (accepted[0], accepted[1], self.family, self)

    def waiting(self) -> int:
        """Connections waiting in the listener's backlog; 0 where the kernel cannot tell."""
        return self._queue_length() if self._queue_length is not None else 0

    def _resume_when_room(self) -> None:
        try:
            while not self.workers.wait_available(3600):
                pass
        finally:
            self._waiting_for_room = False
        if self._watcher is not None:
            self.start()

    def _accept_failed(self, error: OSError) -> None:
        if error.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
            return  # that connection is gone; the next one is fine
        logger.error("accept() on %s failed: %s; pausing %ss.", self.listener.display,
                     error.strerror or error, ACCEPT_ERROR_PAUSE)
        self.stop()
        gevent.spawn_later(ACCEPT_ERROR_PAUSE, self._restart)

    def _restart(self) -> None:
        if self._watcher is not None:
            self.start()

    def accept_backlog(self) -> list[Accepted]:
        """Every connection waiting in the backlog, accepted without yielding."""
        accepted = []
        while True:
            try:
                connection = self._accept(self._fd)
            except OSError:
                return accepted
            if connection is None:
                return accepted
            accepted.append((connection[0], connection[1], self.family, None))


# --- the server --------------------------------------------------------------------------


class SCGIServer:
    """Serves one WSGI application on a set of listeners until told to stop."""

    def __init__(
        self, app: Callable, listeners: list[Listener], config: ServerConfig, *,
        on_ready: Callable[[SCGIServer], None] | None = None,
        on_stopping: Callable[[SCGIServer], None] | None = None,
        on_sighup: Callable[[SCGIServer], None] | None = None,
        max_requests: int = 0,
        on_max_requests: Callable[[SCGIServer], None] | None = None,
    ) -> None:
        self.app = app
        self.listeners = listeners
        self.config = config
        self._init_hooks(on_ready, on_stopping, on_sighup, max_requests, on_max_requests)
        self.base_environ = make_base_environ(errors=sys.stderr, file_wrapper=FileWrapper)
        # After _init_hooks(): with max_requests, self.handle is the counting one.
        self.workers = Workers(config.max_connections, self.handle, config.close_batch)
        for listener in listeners:
            listener.socket.setblocking(False)
        self.acceptors = [Acceptor(listener, self.workers) for listener in listeners]
        self._stopping = False
        self._stopped = Event()
        self.allowed = PeerFilter(config.allow_from)
        # Sockets accepted but still waiting for their first byte.
        self.idle_sockets: set[Any] = set()

    def handle(self, fd: int, raw_peer: Any, family: int) -> None:
        """Serve one accepted connection: ``fd`` and ``raw_peer`` as accept() gave them."""
        sock = Connection(fd, family)
        host = peer_host(raw_peer, family)
        if host is not None and not self.allowed.admits(host, raw_peer):
            sock.close()
            return
        exchange = Exchange(self, sock, raw_peer)
        try:
            if exchange.read_request():
                exchange.run_application(self.app)
                if exchange.body.parser is not None:  # a request without a body has none left
                    exchange.drain()
        except Exception:
            logger.exception("Unexpected error on a connection from %s", exchange.peer_text)
        finally:
            # For SCGI the connection's FIN ends the response: Apache, when it does not
            # see it with the last bytes, waits for it, flushes what it has as a chunked
            # response and ends the chunks only after the FIN. So the connection closes
            # before the application's close() (Django's request_finished handlers),
            # except for a lingering close, which waits for the peer, and one held for
            # a batch (Workers.close), whose last bytes wait in the kernel with it.
            if exchange.abort:
                _close_abortive(sock)
                exchange.close_result()
            elif exchange.can_close_at_once():
                if exchange.fin_awaited and self.workers.closing.holder is not None:
                    self.workers.close(sock)  # or held for a batch: Workers._may_hold
                else:
                    sock.close()
                exchange.close_result()
            else:
                exchange.close_result()
                _close_lingering(sock)
        if self.config.access_log:
            try:
                exchange.log_access()
            except Exception:
                logger.exception("Unexpected error on a connection from %s", exchange.peer_text)

    def start(self) -> None:
        for acceptor in self.acceptors:
            acceptor.start()

    def _init_hooks(self, on_ready, on_stopping, on_sighup, max_requests, on_max_requests) -> None:
        """Hooks for the command and for worker processes (``workers.py``)."""
        self.on_ready = on_ready  # once the listeners accept: banner, sd_notify READY=1
        self.on_stopping = on_stopping  # on the first SIGTERM/SIGINT: STOPPING=1
        self.on_sighup = on_sighup  # None: SIGHUP is logged and ignored
        self.max_requests = max_requests
        self.on_max_requests = on_max_requests  # once, after the max_requests-th connection
        self.requests_handled = 0
        self._signalled = False
        if max_requests:
            # Shadow the method before the workers take it: only a server that has
            # a limit pays for counting.
            self.handle = self._counting(self.handle)

    def _counting(self, handle: Callable[[int, Any, int], None]) -> Callable[[int, Any, int], None]:
        def counted(fd: int, raw_peer: Any, family: int) -> None:
            try:
                handle(fd, raw_peer, family)
            finally:
                self.requests_handled += 1
                if self.requests_handled == self.max_requests and self.on_max_requests:
                    self.on_max_requests(self)

        return counted

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
        self._stopped.wait()
        logger.info("Stopped (pid %d).", os.getpid())

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
                for fd, _, _ in queued[index:]:
                    os.close(fd)
                return
            self.workers.dispatch(connection)

    def _close_idle(self) -> None:
        for sock in list(self.idle_sockets):
            sock.close()

    def _remove_socket_files(self) -> None:
        for listener in self.listeners:
            listener.remove_socket_file()

    @property
    def addresses(self) -> list[str]:
        return [listener.display for listener in self.listeners]
