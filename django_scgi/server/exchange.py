"""One request on one connection: read its head, run the application, write the answer.

The head is read in one non-blocking read when the front-end has sent it already
(usually), else through the incremental parser within ``header_timeout``. The
response goes out as the application produces it: the head joined to the first chunk,
``os.sendfile`` for a ``wsgi.file_wrapper`` over a real file. What to do with the
connection afterwards is ``closing.py``'s decision; the access line is ``accesslog.py``'s.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gevent import socket

from .. import gemini, protocol
from ..conf import ServerConfig
from ..connection import has_unread_bytes, peer_address
from ..environ import build_environ, mask_environ, request_line, response_head
from ..protocol import declared_length, encode_response_head
from .body import NO_BODY, RECV_SIZE, BodyInput, BodyLimits
from .closing import nothing_follows
from .headwait import PREFIX_KEEP, wait_for_headers
from .peerlog import peer_warnings
from .sendfile import PEER_GONE_ERRNOS, FileWrapper, PeerGone, WriteTimeout, send_file, set_nodelay

# What fcgi_exchange.py imports from here.
__all__ = ["Exchange", "PeerGone", "_set_nodelay"]
_set_nodelay = set_nodelay

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)

# Largest response chunk that is copied to join the head in one send(); larger chunks
# go out in their own send() rather than being copied.
COALESCE_LIMIT = 64 * 1024

INTERNAL_ERROR = protocol.encode_response_head(
    "500 Internal Server Error",
    [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "21")],
) + b"Internal Server Error"


class Exchange:
    """One request and its response on one connection."""

    __slots__ = (
        "_peer",
        "abort",
        "base_environ",
        "body",
        "bytes_sent",
        "config",
        "environ",
        "fin_awaited",
        "gemini",
        "head_is_all",
        "head_sent",
        "headers",
        "heads_waiting",
        "idle_sockets",
        "is_head",
        "nodelay",
        "overread",
        "raw_peer",
        "result",
        "sock",
        "started",
        "status",
        "write_waited",
    )

    def __init__(self, sock: Any, raw_peer: Any, config: ServerConfig,
                 base_environ: dict[str, Any], idle_sockets: set[Any],
                 heads_waiting: dict[Any, float] | None = None) -> None:
        self.config = config
        self.base_environ = base_environ
        # Sockets still waiting for their first byte, which shutdown may close.
        self.idle_sockets = idle_sockets
        # Sockets waiting for the rest of their head, and since when: when every slot
        # is taken, the server closes those that have waited too long (shedding).
        self.heads_waiting = {} if heads_waiting is None else heads_waiting
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
        # Seconds spent waiting for the peer to take response bytes (min_write_rate).
        self.write_waited = 0.0
        self.is_head = False
        # Close with a reset instead of lingering: the peer stopped reading, so waiting
        # for it is pointless, and the kernel would go on holding (and probing with)
        # the unsent response bytes of a normally closed socket.
        self.abort = False
        # Whether the header reads took bytes past the declared body (they are dropped,
        # and the peer may be sending more): then closing must linger.
        self.overread = True
        # Whether nothing can follow the head: no body, nothing read past the head, and
        # nothing else may come (closing.nothing_follows); then closing needs no
        # FIONREAD check.
        self.head_is_all = False
        self.nodelay = False
        # The application's iterable, closed by close_result() once the connection is.
        self.result: Any = None
        # Whether the response's last bytes went in one send_before_close(), which
        # makes the kernel hold them for the FIN where it can (TCP): only then may the
        # close wait (ClosingQueue) without the front-end seeing the end of the bytes
        # before the end of the response. Acceptors hold only where it can.
        self.fin_awaited = False
        # A Gemini front-end's request (Molly Brown, Xitzin) gets Gemini heads, errors too.
        self.gemini = False

    # -- reading the request --

    def read_request(self) -> bool:
        """Parse the header block; False when there is no request to answer."""
        config = self.config
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
        if parser is None and not self.overread:
            # From the front-end's variables: environ.py drops HTTP_TRANSFER_ENCODING.
            self.head_is_all = nothing_follows(cgi)
        self.body = NO_BODY if parser is None else BodyInput(
            self.sock, parser, BodyLimits(config.body_timeout, config.min_body_rate,
                                          self.started + config.request_timeout),
            content_length)
        # By position (mount_prefix, peer): a call with keywords costs more.
        self.environ = environ = build_environ(
            cgi, self.body, self.base_environ, config.mount_prefix, self._get_peer)
        self.is_head = environ["REQUEST_METHOD"] == "HEAD"
        self.gemini = environ.get(_GEMINI) is True
        return True

    def _read_head(
        self, config: ServerConfig
    ) -> tuple[dict[str, str], protocol.RequestParser | None, int] | None:
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
        deadline = self.started + min(config.header_timeout, config.request_timeout)
        if first is None:
            event = wait_for_headers(self, parser, deadline, 0, b"")
        else:
            parser.receive_data(first)
            event = parser.next_event()
            if event is protocol.NEED_DATA:
                event = wait_for_headers(self, parser, deadline, len(first),
                                         first[:PREFIX_KEEP])
        if type(event) is not protocol.Headers:
            return None
        return event.environ, parser, event.content_length

    def can_close_at_once(self) -> bool:
        """True when nothing of the request is left unread, so close() cannot reset.

        Body reads never ask for more than the body, but the header reads may have taken
        bytes past it and the peer may have sent more since: with neither, a plain
        close sends FIN, sparing the lingering close's shutdown, wait and extra reads.
        The check is one ``FIONREAD`` ioctl, spared for a request without a body when
        nothing can follow it (``head_is_all``).
        """
        if self.head_is_all:
            return True
        body = self.body
        if self.overread or body is None or body.timed_out or (
                body.parser is not None and body.remaining):
            return False
        try:
            return not has_unread_bytes(self.sock.fd)
        except OSError:
            return False

    def _refuse(self, error: protocol.ProtocolError) -> None:
        peer_warnings.warn("Refused a malformed request from %s: %s", self.peer_text, error)
        if error.gemini:  # a Gemini front-end hands our bytes to its client as they are
            answer = gemini.error_head(error.status_hint)
        elif isinstance(error, protocol.HttpOnScgiPort):  # curl or a browser: answer in HTTP
            answer = protocol.encode_http_refusal(error)
        else:
            answer = protocol.encode_response_head(f"{error.status_hint}", [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(error.message))),
            ]) + error.message.encode("ascii", "replace")
        try:
            self.sock.settimeout(self.config.write_timeout)
            self.sock.sendall(answer)
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

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: OptExcInfo | None = None) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.head_sent and exc_info[1] is not None:
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

    def run_application(self, app: WSGIApplication) -> None:
        """Call the application and send its response; close_result() closes it later."""
        environ = self.environ
        assert environ is not None  # read_request() returned True
        try:
            self.result = result = app(environ, self.start_response)
            self.send_result(result)
        except WriteTimeout as error:
            self.abort = True
            peer_warnings.warn("Closing %s: %s during %s.", self.peer_text, error,
                               request_line(environ))
        except PeerGone:
            logger.debug("%s went away during %s", self.peer_text, request_line(environ))
        except Exception:
            self._application_failed(environ)

    def send_result(self, result: Iterable[bytes]) -> None:
        if self.gemini and self.status is not None and not gemini.response_head(
                self.status, self.headers, self.environ or {}).has_body:
            pass  # only Gemini's 20 has a body: the head alone; close_result() closes it
        elif self.is_head:
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
                set_nodelay(self.sock)
            self._send(chunk)
            return
        head = self._head(streaming)
        if len(chunk) <= COALESCE_LIMIT:
            if not (last or streaming):
                # The usual response: one chunk, all the Content-Length declares, and
                # nothing left to read (an application that read only part of the body
                # leaves the rest for drain()). Then close() follows at once.
                body = self.body
                assert body is not None  # read_request() set it before the application ran
                parser = body.parser
                last = ((parser is None or not parser.remaining)
                        and declared_length(self.headers) == len(chunk))
            self._send(head + chunk, last)
        else:
            self._send(head)
            self._send(chunk)

    def _head(self, streaming: bool) -> bytes:
        if self.status is None:
            raise AssertionError("the application sent body bytes before start_response()")
        if self.gemini:
            head = gemini.response_head(self.status, self.headers, self.environ or {}).encode()
        elif streaming:  # may add X-Accel-Buffering (environ.response_head)
            head = response_head(self.status, self.headers, streaming=True)
        else:  # what response_head() does for the rest, spared a call
            head = encode_response_head(self.status, self.headers)
        body = self.body
        assert body is not None  # read_request() set it before the application ran
        if body.parser is not None:  # a request without a body has none to discard
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
        assert body is not None  # _head() checked it
        if body.bytes_read == 0 and body.remaining:
            body.discard(self.config.drain_limit, self.config.drain_timeout)

    def _send(self, data: bytes, last: bool = False) -> None:
        # send() in a loop, not sendall(): gevent's sendall() applies the timeout to the
        # whole call, which cuts off a peer that takes a large chunk slowly but steadily.
        # Each send() waits at most write_timeout for the peer to accept more bytes.
        # Only time spent waiting for the peer counts towards min_write_rate. The first
        # send of a response finds the socket buffer empty, so it cannot wait: the
        # usual one-send response reads no clock.
        sock, sent = self.sock, 0
        started = time.monotonic() if self.bytes_sent else 0.0
        try:
            # sock.settimeout(), inlined; before any byte went out, and any wait for the
            # peer, the budget is write_timeout itself (write_budget(), spared a call).
            sock.timeout = (self.config.write_timeout if not (self.bytes_sent or self.write_waited)
                            else self.write_budget())
            if last:
                sent = sock.send_before_close(data)
                self.fin_awaited = sent == len(data)
            else:
                sent = sock.send(data)
            if sent < len(data):  # the socket buffer filled: go on from where it stopped
                started = started or time.monotonic()
                view = memoryview(data)
                while sent < len(view):
                    sock.timeout = self.write_budget(time.monotonic() - started, sent)
                    sent += sock.send(view[sent:])
        except (TimeoutError, socket.timeout):
            raise self.write_timeout_error(time.monotonic() - started, sent) from None
        except OSError as error:
            if error.errno in PEER_GONE_ERRNOS:
                raise PeerGone(str(error)) from None
            raise
        finally:
            self.bytes_sent += sent
            if started:
                self.write_waited += time.monotonic() - started

    def write_budget(self, waiting: float = 0.0, sending: int = 0) -> float:
        """Seconds the next send may wait for the peer: ``write_timeout``, less when the
        peer has taken what it has so far slower than ``min_write_rate`` allows.

        ``waiting`` seconds and ``sending`` bytes belong to the send in progress.
        """
        config = self.config
        if not config.min_write_rate:
            return config.write_timeout
        allowance = (config.write_timeout - self.write_waited - waiting
                     + (self.bytes_sent + sending) / config.min_write_rate)
        if allowance <= 0:
            raise self.write_timeout_error(waiting, sending)
        return min(allowance, config.write_timeout)

    def write_timeout_error(self, waiting: float = 0.0, sending: int = 0) -> WriteTimeout:
        """The error for a send that waited too long, saying which limit it hit."""
        config = self.config
        if config.min_write_rate and (
                config.write_timeout + (self.bytes_sent + sending) / config.min_write_rate
                < self.write_waited + waiting + 0.01):
            return WriteTimeout(f"it took the response slower than {config.min_write_rate} "
                                "bytes/s (min write rate)")
        return WriteTimeout(f"it accepted no response bytes for {config.write_timeout}s "
                            "(write timeout)")

    def _send_file(self, fd: int) -> None:
        send_file(self, fd)  # FastCGI's exchange overrides it: no sendfile() into records

    def _application_failed(self, environ: Mapping[str, object]) -> None:
        where = request_line(environ)
        if self.head_sent:
            logger.error(
                "Error after the response head was sent for %s; resetting the connection.",
                # Called from run_application's except block: exc_info is that exception.
                where, exc_info=True, extra={"environ": mask_environ(environ)},  # noqa: LOG014
            )
            # A normal close (FIN) looks like the end of a complete response: nginx
            # would hand the client a 200 that silently lacks its end. A reset is seen
            # by every front-end as a failed upstream, so the client's framing breaks.
            self.abort = True
            return
        logger.error(
            "Error while serving %s; answering 500. Environ: %r", where,
            mask_environ(environ), exc_info=True,  # noqa: LOG014 (as above)
        )
        self.status = "500 Internal Server Error"
        try:
            self._send(gemini.error_head(500) if self.gemini else INTERNAL_ERROR)
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
        except Exception:  # a result exists only once there was an environ to run it on
            logger.exception("Error closing the response of %s",
                             request_line(self.environ or {}))

    def drain(self) -> None:
        """Read what is left of the request body (bounded), so closing sends no reset.

        For a request that has a body; one without has nothing to drain.
        """
        body, environ = self.body, self.environ
        assert body is not None and environ is not None  # read_request() returned True
        if body.remaining and body.failure is None:
            body.discard(self.config.drain_limit, self.config.drain_timeout)
        if body.failure is not None:
            # One rate-limited line, however the application reported it (Django's
            # traceback for it is dropped by the app's log filter: apps.py).
            peer_warnings.warn("Closing %s: %s during %s.", self.peer_text, body.failure,
                               request_line(environ))


_UNDECODED = object()
_GEMINI = gemini.GEMINI

