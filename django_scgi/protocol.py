"""Sans-I/O SCGI: an incremental request parser and the encoders around it.

Boundary: this module turns bytes into events and events into bytes. It never
touches a socket, a clock, gevent or Django, and it imports only the standard
library, so it can be fed from any event loop and tested one byte at a time.
``server.py`` owns the I/O, ``environ.py`` turns :class:`Headers` into a WSGI
environ, ``client.py`` uses the encoders.

Parser use (the caller owns the socket)::

    parser = RequestParser(max_body_size=limit)
    while True:
        event = parser.next_event()      # may raise a ProtocolError subclass
        if event is NEED_DATA:           # after Headers, recv() at most parser.remaining
            parser.receive_data(sock.recv(size))   # b"" at EOF
        elif isinstance(event, (EndOfMessage, ConnectionClosed)):
            break
        else:
            ...                          # Headers once, then Data

Events, in order: :class:`Headers` once, :class:`Data` zero or more times (their
bytes add up to exactly ``content_length``), :class:`EndOfMessage` once. EOF
before the first byte gives :class:`ConnectionClosed` instead: Apache connects
and closes without a byte when it refuses a chunked upload, which is a quiet
close, not an error.

Policies the SCGI spec leaves open:

* Duplicate names. The spec forbids them, but front-ends send them for two
  reasons, and each is resolved the way the front-end means it:

  - A variable set twice in the front-end's configuration: Debian's nginx
    ``scgi_params`` sends ``HTTP_HOST $host`` and a user's own
    ``scgi_param HTTP_HOST $host:$server_port;`` arrives as a second copy (nginx
    does not replace an earlier ``scgi_param``). The later one is the override, so
    for every CGI variable and for ``HTTP_HOST`` (a client cannot repeat Host:
    nginx refuses such a request) **the later value wins**. Joining would make a
    Host such as ``"127.0.0.1, 127.0.0.1:8090"`` that Django refuses.
  - A client header line repeated by the client: nginx before 1.23 forwards each
    line as its own ``HTTP_*`` key (two ``HTTP_COOKIE``, say). Keeping one would
    silently lose data, so those are joined the way nginx 1.23+ joins them itself:
    ``"; "`` for ``HTTP_COOKIE`` (the Cookie header's own separator), ``", "``
    (the HTTP list separator) for any other ``HTTP_*`` name.

  Only ``CONTENT_LENGTH`` and ``SCGI`` frame the request; a duplicate of either is
  ambiguous framing and is refused with :class:`DuplicateHeader`.
* A peer that speaks HTTP. SCGI starts with a digit; an HTTP/1 request line starts
  with an upper-case method (``GET /``). A first byte that is an ASCII capital gives
  :class:`HttpOnScgiPort`, whose message says what to put in front. Only the first
  byte decides, so the verdict is the same however the input is split.
* Bytes after the body. Only ``CONTENT_LENGTH`` frames the request; whatever
  follows it is dropped. nginx before 1.29.6 with ``scgi_request_buffering off``
  sends ``CONTENT_LENGTH=0`` followed by the body anyway: those bytes are ignored.
* CONTENT_LENGTH first. The spec demands it and every request is held to it, except
  one that says ``SERVER_PROTOCOL=GEMINI``: Molly Brown sends its variables in a
  random order, so there CONTENT_LENGTH may stand anywhere in the block (still
  exactly once). A refusal of such a request carries ``gemini=True``.
* EOF. Before the first byte: :class:`ConnectionClosed`. Anywhere inside the
  length prefix, the header block or a non-empty body: :class:`IncompleteRequest`,
  so a truncated body can never be answered as if it were complete.
* Terminal states repeat themselves: after :class:`EndOfMessage` every
  ``next_event()`` returns :class:`EndOfMessage` again, after
  :class:`ConnectionClosed` it returns :class:`ConnectionClosed` again, and after
  an error it raises the same error again.

Every name and value is decoded as latin-1, as PEP 3333 wants for the environ.
"""

from __future__ import annotations

import enum
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping

# The optional C parser of the usual request head (_speedups.c). Not built (no compiler
# at install time) or switched off with DJANGO_SCGI_PURE_PYTHON=1: Python does it all.
# Their types: _speedups.pyi.
_c_parse_head: Callable[[object, int, int], tuple[dict[str, str], int, int] | None] | None
_c_parse_head = None
if not os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
    try:
        from . import _speedups
    except ImportError:
        pass
    else:
        _c_parse_head = _speedups.parse_head

# The response side (a CGI head) lives in cgi_head.py; its encoders stay reachable here.
from .cgi_head import declared_length, encode_http_refusal, encode_response_head  # noqa: E402

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_SIZE",
    "MAX_CONTENT_LENGTH",
    "NEED_DATA",
    "BadContentLength",
    "BadHeaderBlock",
    "BadLengthPrefix",
    "BodyTooLarge",
    "ConnectionClosed",
    "Data",
    "DuplicateHeader",
    "EndOfMessage",
    "Event",
    "HeaderBlockTooLarge",
    "Headers",
    "HttpOnScgiPort",
    "IncompleteRequest",
    "MissingScgiHeader",
    "ProtocolError",
    "RequestParser",
    "State",
    "TooManyHeaders",
    "_NeedData",  # NEED_DATA's type, for annotations
    "declared_length",
    "encode_http_refusal",
    "encode_request",
    "encode_response_head",
    "parse_head",
]

# The header block's limits and its parsing helpers live in scgi_block.py.
from .scgi_block import (  # noqa: E402
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS,
    MAX_CONTENT_LENGTH,
    _block_length,
    _check_prefix_digits,
    _parse_block,
    _prefix_digits,
)

# The error hierarchy and the events live in scgi_events.py (FastCGI's parser uses
# the same ones); they are part of this module's API too.
from .scgi_events import (  # noqa: E402
    _CONNECTION_CLOSED,
    _END_OF_MESSAGE,
    NEED_DATA,
    BadContentLength,
    BadHeaderBlock,
    BadLengthPrefix,
    BodyTooLarge,
    ConnectionClosed,
    Data,
    DuplicateHeader,
    EndOfMessage,
    Event,
    HeaderBlockTooLarge,
    Headers,
    HttpOnScgiPort,
    IncompleteRequest,
    MissingScgiHeader,
    ProtocolError,
    TooManyHeaders,
    _data,
    _headers,
    _NeedData,
)


class State(enum.Enum):
    LENGTH = "LENGTH"  # reading the netstring length prefix "<digits>:"
    HEADERS = "HEADERS"  # reading the header block and its trailing ","
    BODY = "BODY"  # Headers emitted; handing out body bytes
    DONE = "DONE"  # EndOfMessage emitted; further input is dropped
    CLOSED = "CLOSED"  # EOF before any byte: ConnectionClosed emitted
    ERROR = "ERROR"  # a ProtocolError was raised; it is raised again on every call


# Module-level aliases for the hot path: on Python 3.11 ``State.BODY`` runs a
# Python-level descriptor and hashing a member calls Enum.__hash__ (about 1 k
# instructions each); a global lookup is a few dozen.
_LENGTH, _HEADERS, _BODY = State.LENGTH, State.HEADERS, State.BODY
_DONE, _CLOSED, _ERROR = State.DONE, State.CLOSED, State.ERROR


# --------------------------------------------------------------------- parser


class RequestParser:
    """Incremental parser for one SCGI request (one connection)."""

    # One parser per request: slots keep construction and attribute access cheap.
    __slots__ = (
        "_block_length",
        "_block_start",
        "_buf",
        "_chunks",
        "_eof",
        "_error",
        "_max_body_size",
        "_max_header_size",
        "_max_headers",
        "_max_prefix_digits",
        "_reader",
        "_remaining",
        "_state",
    )

    _reader: Callable[[RequestParser], Event | _NeedData]

    def __init__(
        self,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_body_size: int | None = None,
    ) -> None:
        if max_header_size < 0 or max_headers < 0:
            raise ValueError("max_header_size and max_headers must not be negative")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError("max_body_size must be None or not negative")
        self._max_header_size = max_header_size
        self._max_headers = max_headers
        self._max_body_size = max_body_size
        # A prefix longer than the limit's own decimal form must exceed the limit
        # (no leading zeros are allowed), so it is refused without reading more.
        self._max_prefix_digits = _prefix_digits(max_header_size)
        # The state and the function that reads in it always change together. The
        # reader is a plain function called as reader(self): a bound method stored on
        # self would be a reference cycle (only the GC could free the parser and the
        # body it holds) and would allocate on every transition.
        self._state, self._reader = _LENGTH, RequestParser._read_length
        # LENGTH/HEADERS input. A bytes object while it is a single chunk (the
        # common case: the whole head in one recv, no copy), a bytearray once a
        # second chunk has to be appended (amortised O(1) appends).
        self._buf: bytes | bytearray = b""
        self._block_start = 0  # offset of the header block in _buf, known in HEADERS
        self._block_length = 0  # its declared length
        # BODY bytes received, not yet handed out. The deque is made for the first
        # chunk: most requests (GET) never have one, and making it costs as much as
        # the rest of __init__.
        self._chunks: deque[bytes] | tuple[()] = ()
        self._remaining = 0  # BODY bytes not received yet
        self._eof = False
        self._error: ProtocolError | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def remaining(self) -> int:
        """Body bytes not yet received: 0 until Headers has been returned and once
        the whole body is in. Size recv() calls with it so that the server never
        reads past CONTENT_LENGTH; bytes already received may still be waiting to
        be returned as Data, so keep calling next_event() until EndOfMessage."""
        return self._remaining

    # ---- input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes as they arrive; ``b""`` means EOF."""
        if self._eof:
            raise RuntimeError("receive_data() called after EOF (b'')")
        if not data:
            self._eof = True
        elif self._state is _BODY:
            self._receive_body(data)
        elif self._state is _LENGTH or self._state is _HEADERS:
            self._append(data)
        # DONE and ERROR: the request is over; whatever follows is dropped.

    def _append(self, data: bytes) -> None:
        if not self._buf:
            # Kept as it is (no copy) when it is bytes; a bytearray or memoryview
            # could change under us.
            self._buf = data if type(data) is bytes else bytes(data)
        else:
            if type(self._buf) is bytes:
                self._buf = bytearray(self._buf)
            self._buf += data

    def _receive_body(self, data: bytes | bytearray) -> None:
        # Cut at CONTENT_LENGTH here, so bytes past the body are never stored.
        if len(data) > self._remaining:
            data = data[: self._remaining]
        if data:
            self._remaining -= len(data)
            if not self._chunks:
                self._chunks = deque()
            self._chunks.append(data if type(data) is bytes else bytes(data))

    # ---- output

    def next_event(self) -> Event | _NeedData:
        """Return the next event or NEED_DATA; raise a ProtocolError subclass."""
        if self._error is not None:
            # Same instance each time; drop the traceback so it does not grow.
            raise self._error.with_traceback(None)
        try:
            return self._reader(self)
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: ProtocolError) -> None:
        self._state = _ERROR
        self._error = exc
        self._buf = b""  # release what the peer made us hold
        self._chunks = ()
        self._remaining = 0

    def _need_data(self) -> _NeedData:
        if self._eof:
            raise IncompleteRequest()
        return NEED_DATA

    def _read_length(self) -> Event | _NeedData:
        # Only the first max_prefix_digits + 1 bytes can hold the ":" of an
        # acceptable prefix; a longer prefix is too large whatever follows.
        colon = self._buf.find(b":", 0, self._max_prefix_digits + 1)
        if colon < 0:
            return self._read_partial_length()
        self._block_length = _block_length(self._buf[:colon], self._max_header_size)
        # Keep an offset rather than slicing: the buffer is copied only once
        # more, when the body part of it is handed over.
        self._block_start = colon + 1
        self._state, self._reader = _HEADERS, RequestParser._read_headers
        return self._read_headers()

    def _read_partial_length(self) -> Event | _NeedData:
        """No ":" within the window: EOF, a prefix still arriving, or a refusal."""
        if not self._buf:  # the server asks before its first recv(): nothing to check
            if not self._eof:
                return NEED_DATA
            self._state, self._reader = _CLOSED, RequestParser._read_closed
            return _CONNECTION_CLOSED
        # Checking exactly this window makes the verdict the same however the
        # input was split.
        window = bytes(self._buf[: self._max_prefix_digits + 1])
        _check_prefix_digits(window)
        if len(window) > self._max_prefix_digits:
            raise HeaderBlockTooLarge()
        return self._need_data()

    def _read_headers(self) -> Event | _NeedData:
        start = self._block_start
        end = start + self._block_length
        buf = self._buf
        if len(buf) <= end:  # the block and its "," are not all here yet
            return self._need_data()
        environ, content_length = _parse_block(
            buf, start, end, self._max_headers, self._max_body_size
        )
        self._start_body(buf, end + 1, content_length)
        return _headers(environ, content_length)

    def skip_body(self, count: int) -> None:
        """Count ``count`` body bytes the caller read from the connection itself.

        For a caller that reads a large body straight into its own buffer: it asks
        for at most ``remaining`` bytes, takes them off the connection and does not
        feed them here. Only while no received body bytes wait to be handed out.
        """
        if self._state is not _BODY or self._chunks or not 0 <= count <= self._remaining:
            raise RuntimeError("skip_body(): not in the body, bytes still buffered, or too many")
        self._remaining -= count

    @classmethod
    def after_head(
        cls, data: bytes, body_start: int, content_length: int, *,
        max_body_size: int | None = None,
    ) -> RequestParser:
        """A parser for the body of a request whose head ``parse_head`` has read:
        ``data`` is what was received, its body bytes starting at ``body_start``."""
        parser = cls(max_body_size=max_body_size)
        parser._start_body(data, body_start, content_length)
        return parser

    def _start_body(self, buf: bytes | bytearray, body_start: int, content_length: int) -> None:
        # Body bytes that came with the head; anything past CONTENT_LENGTH is dropped.
        self._buf = b""
        self._remaining = content_length
        self._state, self._reader = _BODY, RequestParser._read_body
        if content_length and len(buf) > body_start:
            self._receive_body(buf[body_start : body_start + content_length])

    def _read_body(self) -> Event | _NeedData:
        if self._chunks:
            return _data(self._chunks.popleft())
        if self._remaining == 0:
            self._state, self._reader = _DONE, RequestParser._read_done
            return _END_OF_MESSAGE
        return self._need_data()

    def _read_done(self) -> Event | _NeedData:
        return _END_OF_MESSAGE

    def _read_closed(self) -> Event | _NeedData:
        return _CONNECTION_CLOSED


def parse_head(
    data: bytes, max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS, max_body_size: int | None = None,
) -> tuple[dict[str, str], int, int] | None:
    """The head of a request from one buffer, without a parser: (variables,
    CONTENT_LENGTH, offset of the first body byte), or None when ``data`` does not
    hold the whole header block yet.

    The server's usual case: the front-end wrote the whole head at once and one
    read got it. Raises the ProtocolError a RequestParser would raise for the same
    bytes; for None, feed ``data`` to a RequestParser (it also judges a partial
    prefix) and go on with that.
    """
    if _c_parse_head is not None:
        # Takes only what is complete and plainly valid; None: the code below decides.
        head = _c_parse_head(data, max_header_size, max_headers)
        if head is not None:
            if max_body_size is not None and head[1] > max_body_size:
                raise BodyTooLarge()
            return head
    colon = data.find(b":", 0, _prefix_digits(max_header_size) + 1)
    if colon < 0:
        return None
    start = colon + 1
    end = start + _block_length(data[:colon], max_header_size)
    if len(data) <= end:
        return None
    environ, content_length = _parse_block(data, start, end, max_headers, max_body_size)
    return environ, content_length, end + 1


# --------------------------------------------------------------------- encoders


def encode_request(
    environ: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes = b""
) -> bytes:
    """Encode one SCGI request (client side): netstring header block + body.

    CONTENT_LENGTH comes first and is always ``len(body)`` (one given in
    ``environ`` is ignored); ``SCGI=1`` follows unless ``environ`` has its own
    SCGI. An iterable of pairs may repeat a name (to imitate nginx).
    """
    items = environ.items() if isinstance(environ, Mapping) else environ
    pairs = [(name, value) for name, value in items if name != "CONTENT_LENGTH"]
    head = [("CONTENT_LENGTH", str(len(body)))]
    if not any(name == "SCGI" for name, _ in pairs):
        head.append(("SCGI", "1"))
    parts = []
    for name, value in head + pairs:
        _check_request_field(name, value)
        parts.append(f"{name}\0{value}\0")
    block = "".join(parts).encode("latin-1")  # UnicodeEncodeError is a ValueError
    return b"%d:%b,%b" % (len(block), block, body)


def _check_request_field(name: str, value: str) -> None:
    if not name:
        raise ValueError("SCGI header names must not be empty")
    if "\0" in name or "\0" in value:
        raise ValueError(f"NUL in SCGI header {name!r}")
