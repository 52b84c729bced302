"""Sans-I/O FastCGI 1.0: the records of one connection turned into events, and back.

Boundary: like ``protocol`` for SCGI, this module turns bytes into events and events
into bytes. It never touches a socket, a clock, gevent or Django and imports only the
standard library and ``protocol`` (whose error hierarchy and limits it shares), so it
can be fed from any event loop and tested one byte at a time.

Server side (the caller owns the socket)::

    conn = ServerConnection(max_body_size=limit, max_conns=1000)
    while True:
        event = conn.next_event()            # may raise a ProtocolError subclass
        if event is NEED_DATA:
            conn.receive_data(sock.recv(65536))   # b"" at EOF
        elif isinstance(event, Reply):       # answered by the protocol itself
            sock.sendall(event.data)
        elif isinstance(event, RequestHead): # PARAMS complete: start the application
            ...                              # then Stdin* and StdinEnd for its body
        ...
    sock.sendall(encode_stdout(request_id, chunk))   # as the application yields
    sock.sendall(conn.end_request(request_id))       # frees the id

Events carry the request id they belong to. A connection serves at most
``max_requests`` requests at once (default 1, and ``FCGI_MPXS_CONNS`` says 0): a
``BEGIN_REQUEST`` beyond it is answered at once with ``END_REQUEST``/``CANT_MPX_CONN``
(a :class:`Reply`), never left waiting. No front-end multiplexes (nginx, Apache,
lighttpd and Caddy all send one request at a time per connection), and serving two
interleaved bodies lazily would mean buffering one while the other's application
reads.

Policies the spec leaves open:

* Records for a request id that is not in progress are ignored (spec 3.3), including
  the rest of a body the application answered without reading, and everything sent
  for a request refused with ``CANT_MPX_CONN``.
* Repeated PARAMS names: ``HTTP_COOKIE`` copies are joined with ``"; "`` and other
  ``HTTP_*`` copies with ``", "`` (nginx before 1.23 sends repeated client headers
  this way); for ``HTTP_HOST`` and every CGI variable the later value wins (a user's
  ``fastcgi_param`` after ``include fastcgi_params`` arrives as a second copy).
* The body is what the STDIN stream carries; ``CONTENT_LENGTH`` does not frame it. An
  AUTHORIZER request has none: its RequestHead is not followed by Stdin/StdinEnd, and
  STDIN records for it are ignored (Apache's ``mod_authnz_fcgi`` sends none).
* EOF between records is :class:`protocol.ConnectionClosed`; inside a record it is
  :class:`IncompleteRecord`. After an error every call raises it again.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Callable

from .fcgi_events import (
    Abort,
    Reply,
    RequestHead,
    ServerEvent,
    Stdin,
    StdinEnd,
    foreign_protocol,
)
from .fcgi_records import (
    BEGIN_BODY,
    HEADER_SIZE,
    KEEP_CONN,
    MAX_CONTENT,
    UNKNOWN_TYPE_BODY,
    VERSION,
    BadParams,
    BadRecord,
    BadVersion,
    DuplicateRequestId,
    FastCGIError,
    HTTPOnFastCGIPort,
    IncompleteRecord,
    PairReader,
    ParamsTooLarge,
    ProtocolStatus,
    RecordReader,
    RecordType,
    Role,
    SCGIOnFastCGIPort,
    StdinTooLarge,
    TLSOnFastCGIPort,
    TooManyParams,
    UnexpectedRecord,
    decode_pairs,
    encode_begin_request,
    encode_end_request,
    encode_get_values,
    encode_pairs,
    encode_params,
    encode_record,
    encode_stderr,
    encode_stdin,
    encode_stdout,
    params_environ,
)
from .fcgi_response import (
    ClientEvent,
    EndRequest,
    ResponseParser,
    Stderr,
    Stdout,
    UnknownTypeReply,
    ValuesResult,
)
from .protocol import (
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS,
    NEED_DATA,
    ConnectionClosed,
    ProtocolError,
    _NeedData,
)

__all__ = [  # noqa: RUF022 -- grouped by module, not sorted
    # the wire (fcgi_records), re-exported so that callers need this module only
    "HEADER_SIZE", "KEEP_CONN", "MAX_CONTENT", "VERSION", "BadParams", "BadRecord",
    "BadVersion", "DuplicateRequestId", "FastCGIError", "HTTPOnFastCGIPort",
    "IncompleteRecord", "ParamsTooLarge", "ProtocolStatus", "RecordType", "Role",
    "SCGIOnFastCGIPort", "StdinTooLarge", "TLSOnFastCGIPort", "TooManyParams",
    "UnexpectedRecord", "decode_pairs", "encode_begin_request", "encode_end_request",
    "encode_get_values", "encode_pairs", "encode_params", "encode_record", "encode_stderr",
    "encode_stdin", "encode_stdout", "params_environ",
    # this module
    "NEED_DATA", "Abort", "ClientEvent", "ConnectionClosed", "EndRequest", "Reply",
    "RequestHead", "ResponseParser", "ServerConnection", "ServerEvent", "Stderr", "Stdin",
    "StdinEnd", "Stdout", "UnknownTypeReply", "ValuesResult",
]

# An instance without its __init__ call, for the few objects made on every request.
_new = object.__new__

_SERVED_ROLES = frozenset({Role.RESPONDER, Role.AUTHORIZER})
# Role(number) without the enum machinery's calls, for the served roles.
_ROLE_OF = {int(role): role for role in _SERVED_ROLES}

# The optional C parser of a whole PARAMS stream without repeated names (_speedups.c,
# as for SCGI's head): None for anything else, which the Python parser then judges.
# DJANGO_SCGI_PURE_PYTHON=1 or no compiler at install time: Python does it all.
_c_fcgi_params: Callable[[bytes, int, int], dict[str, str] | None] | None
_c_fcgi_params = None
if not os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
    try:
        from ._speedups import fcgi_params as _c_fcgi_params
    except ImportError:
        pass
# The optional C reader of the usual whole head (BEGIN_REQUEST, one PARAMS record, its
# end, perhaps the empty STDIN record): what _whole_head's Python path does for it, in
# one call; None for anything else, which the Python path then reads.
_c_fcgi_head: Callable[[bytes | bytearray, int, int, int],
                       tuple[int, int, bool, dict[str, str], int, bool] | None] | None
_c_fcgi_head = None
_c_fcgi_stdout_end: Callable[[int, bytes], bytes | None] | None = None
if _c_fcgi_params is not None:
    try:
        from ._speedups import fcgi_head as _c_fcgi_head
        from ._speedups import fcgi_stdout_end as _c_fcgi_stdout_end
    except ImportError:
        pass

# --------------------------------------------------------------------- the server side


class _Phase(enum.Enum):
    PARAMS = "PARAMS"  # reading the PARAMS stream
    STDIN = "STDIN"  # RequestHead delivered; reading the body
    DONE = "DONE"  # StdinEnd or Abort delivered; waiting for end_request()


class _Request:
    __slots__ = ("aborted", "keep_conn", "pairs", "phase", "received", "role")
    # (ServerConnection.receive_head makes one without __init__: keep the two alike.)

    def __init__(self, role: Role, keep_conn: bool, pairs: PairReader) -> None:
        self.role, self.keep_conn, self.pairs = role, keep_conn, pairs
        self.phase = _Phase.PARAMS
        self.aborted = False
        self.received = 0  # STDIN bytes so far


class ServerConnection:
    """The application's side of one FastCGI connection: records in, events out."""

    def __init__(
        self, *, max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS, max_body_size: int | None = None,
        max_conns: int = 1, max_requests: int = 1,
    ) -> None:
        if max_requests < 1 or max_conns < 1:
            raise ValueError("max_requests and max_conns must be at least 1")
        self._max_header_size, self._max_headers = max_header_size, max_headers
        self._max_body_size = max_body_size
        self._max_conns, self._max_requests = max_conns, max_requests
        self._reader = RecordReader()
        self._requests: dict[int, _Request] = {}
        self._first = True  # no record read yet: a foreign protocol is still detectable
        self._error: ProtocolError | None = None
        # The StdinEnd of a request whose empty STDIN record came with its head
        # (_whole_head took it): the next event, without a record to parse.
        self._stdin_end: StdinEnd | None = None

    @property
    def buffered(self) -> bool:
        """Whether received bytes wait that are not a whole record yet."""
        return not self._reader.at_boundary()

    def take_stdin_end(self, request_id: int) -> bool:
        """Whether the next event is the StdinEnd of ``request_id`` that came with its
        head; if so it is taken, as if next_event() had returned it."""
        end = self._stdin_end
        if end is not None and end.request_id == request_id:
            self._stdin_end = None
            return True
        return False

    def idle(self) -> bool:
        """Whether the next event surely needs data: no unread bytes, no queued event."""
        reader = self._reader  # RecordReader.idle(), inlined: once per kept request
        return (self._stdin_end is None and self._error is None
                and reader._pos == len(reader._buf) and not reader._eof)

    @property
    def mid_request(self) -> bool:
        """Whether a request is in progress or part of a record has arrived."""
        return bool(self._requests) or not self._reader.at_boundary()

    @property
    def active(self) -> frozenset[int]:
        """Ids of the requests in progress (begun, not yet ended)."""
        return frozenset(self._requests)

    def receive_head(self, data: bytes) -> tuple[RequestHead, bool] | None:
        """The first bytes after an idle() moment: when ``data`` is exactly the usual
        head of a request (see _whole_head), that head and whether it has no STDIN
        to read (an Authorizer, or its empty STDIN record came with it: taken, as
        take_stdin_end() does), without buffering the bytes. Else None, and ``data``
        was received as by receive_data()."""
        if (_c_fcgi_head is not None and data and not self._requests
                and self._error is None):
            head = _c_fcgi_head(data, 0, self._max_header_size, self._max_headers)
            if head is not None and head[4] == len(data):
                request_id, role, keep_conn, environ, _, stdin_end = head
                self._first = False
                # _Request(...) and RequestHead(...) without their __init__ frames (once
                # a request): the same slots, set here.
                request = _new(_Request)
                request.role = started = _ROLE_OF[role]
                request.keep_conn, request.pairs = keep_conn, _NO_PAIRS
                request.aborted, request.received = False, 0
                done = stdin_end or role == Role.AUTHORIZER
                request.phase = _Phase.DONE if done else _Phase.STDIN
                self._requests[request_id] = request
                event = _new(RequestHead)
                event.request_id, event.role = request_id, started
                event.keep_conn, event.environ = keep_conn, environ
                return event, done
        self.receive_data(data)
        return None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes as they arrive; ``b""`` means EOF."""
        if self._error is None:
            self._reader.feed(data)

    def next_event(self) -> ServerEvent | _NeedData:
        """The next event or NEED_DATA; raises a ProtocolError subclass."""
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._stdin_end is not None:
            event, self._stdin_end = self._stdin_end, None
            return event
        reader = self._reader
        if reader._pos == len(reader._buf) and not reader._eof:  # reader.idle(), inlined
            return NEED_DATA
        try:
            if not self._requests:  # the usual head, without _next_event's frame
                head = self._whole_head()
                if head is not None:
                    return head
            return self._next_event()
        except ProtocolError as error:
            self._error = error
            self._reader.clear()
            self._requests.clear()
            raise

    def _next_event(self) -> ServerEvent | _NeedData:
        # next_event() tried _whole_head() already when no request is in progress.
        while True:
            record = self._next_record()
            if record is None:
                return self._at_end()
            self._first = False
            event = self._dispatch(*record)
            if event is not None:
                return event

    def _whole_head(self) -> RequestHead | None:
        """The usual case in one step: BEGIN_REQUEST and the whole PARAMS stream of a
        request arrived together, with no request in progress. The same checks and
        errors as record by record (which handles everything else), fewer calls."""
        if _c_fcgi_head is not None:
            reader = self._reader
            head = _c_fcgi_head(reader._buf, reader._pos, self._max_header_size,
                                self._max_headers)
            if head is not None:
                return self._c_head(*head)
        found = self._reader.whole_head()
        if found is None:
            return None
        request_id, begin, chunks, end = found
        role, flags = BEGIN_BODY.unpack(begin)
        if role not in _SERVED_ROLES:
            return None  # refused record by record
        environ = None
        if _c_fcgi_params is not None and len(chunks) == 1:
            environ = _c_fcgi_params(chunks[0], self._max_header_size, self._max_headers)
        if environ is None:
            pairs = PairReader(self._max_header_size, self._max_headers)
            for chunk in chunks:
                pairs.feed(chunk)
            environ = params_environ(pairs.finish())
        self._first = False
        request = _Request(_ROLE_OF[role], bool(flags & KEEP_CONN), _NO_PAIRS)
        if role == Role.AUTHORIZER:
            request.phase = _Phase.DONE
            self._reader.skip_to(end)
        elif self._reader.skip_head(end, request_id):
            # A body-less request's empty STDIN record, sent with the head: its
            # StdinEnd is the next event, as record by record.
            request.phase = _Phase.DONE
            self._stdin_end = StdinEnd(request_id)
        else:
            request.phase = _Phase.STDIN
        self._requests[request_id] = request
        return RequestHead(request_id, request.role, request.keep_conn, environ)

    def _c_head(self, request_id: int, role: int, keep_conn: bool, environ: dict[str, str],
                end: int, stdin_end: bool) -> RequestHead:
        """_whole_head's end for a head the C reader took (the same state after it)."""
        self._reader._pos = end
        self._first = False
        request = _Request(_ROLE_OF[role], keep_conn, _NO_PAIRS)
        if stdin_end or role == Role.AUTHORIZER:
            request.phase = _Phase.DONE
            if stdin_end:
                self._stdin_end = StdinEnd(request_id)
        else:
            request.phase = _Phase.STDIN
        self._requests[request_id] = request
        return RequestHead(request_id, request.role, keep_conn, environ)

    def _next_record(self) -> tuple[int, int, bytes] | None:
        try:
            return self._reader.next_record()
        except BadVersion:
            raise self._foreign() or BadVersion() from None

    def _at_end(self) -> ServerEvent | _NeedData:
        if not self._reader.eof:
            return NEED_DATA
        if self._reader.at_boundary():
            return ConnectionClosed()
        raise self._foreign() or IncompleteRecord()

    def _foreign(self) -> ProtocolError | None:
        """The error naming the protocol a peer speaks instead, judged on the first
        bytes of the connection only."""
        return foreign_protocol(self._reader.pending()) if self._first else None

    def _dispatch(self, rtype: int, request_id: int, content: bytes) -> ServerEvent | None:
        if request_id == 0:
            return self._management(rtype, content)
        if rtype == RecordType.BEGIN_REQUEST:
            return self._begin(request_id, content)
        request = self._requests.get(request_id)
        if request is None:
            return None  # not a request in progress: ignored (spec 3.3)
        if rtype == RecordType.PARAMS:
            return self._params(request_id, request, content)
        if rtype == RecordType.STDIN:
            return self._stdin(request_id, request, content)
        if rtype == RecordType.ABORT_REQUEST:
            return self._abort(request_id, request)
        raise UnexpectedRecord()

    # ---- management records (request id 0)

    def _management(self, rtype: int, content: bytes) -> Reply:
        if rtype != RecordType.GET_VALUES:
            return Reply(encode_record(RecordType.UNKNOWN_TYPE, 0,
                                       UNKNOWN_TYPE_BODY.pack(rtype)))
        try:
            names = [name for name, _ in decode_pairs(content, MAX_CONTENT,
                                                      self._max_headers)]
        except ProtocolError:
            raise BadRecord() from None
        known = self.values()
        answer = [(name, known[name]) for name in dict.fromkeys(names) if name in known]
        return Reply(encode_record(RecordType.GET_VALUES_RESULT, 0, encode_pairs(answer)))

    def values(self) -> dict[str, str]:
        """What FCGI_GET_VALUES is answered with."""
        # Without multiplexing every connection carries one request at a time, so the
        # requests served at once are bounded by the connections.
        return {
            "FCGI_MAX_CONNS": str(self._max_conns),
            "FCGI_MAX_REQS": str(self._max_conns * self._max_requests),
            "FCGI_MPXS_CONNS": "1" if self._max_requests > 1 else "0",
        }

    # ---- application records

    def _begin(self, request_id: int, content: bytes) -> Reply | None:
        if len(content) != BEGIN_BODY.size:
            raise BadRecord()
        if request_id in self._requests:
            raise DuplicateRequestId()
        role, flags = BEGIN_BODY.unpack(content)
        keep_conn = bool(flags & KEEP_CONN)
        if role not in _SERVED_ROLES:
            return self._refuse(request_id, ProtocolStatus.UNKNOWN_ROLE, keep_conn)
        if len(self._requests) >= self._max_requests:
            return self._refuse(request_id, ProtocolStatus.CANT_MPX_CONN, keep_conn)
        pairs = PairReader(self._max_header_size, self._max_headers)
        self._requests[request_id] = _Request(Role(role), keep_conn, pairs)
        return None

    def _refuse(self, request_id: int, status: ProtocolStatus, keep_conn: bool) -> Reply:
        # Without KEEP_CONN the front-end expects the close, unless another request
        # of this connection is still being served.
        close = not keep_conn and not self._requests
        return Reply(encode_end_request(request_id, 0, status), close)

    def _params(self, request_id: int, request: _Request, content: bytes) -> RequestHead | None:
        if request.phase is not _Phase.PARAMS:
            raise UnexpectedRecord()
        if content:
            request.pairs.feed(content)
            return None
        environ = params_environ(request.pairs.finish())
        # An Authorizer gets no body: Apache's mod_authnz_fcgi sends no STDIN at all.
        request.phase = _Phase.DONE if request.role is Role.AUTHORIZER else _Phase.STDIN
        request.pairs = _NO_PAIRS  # let the parsed strings go with the event
        return RequestHead(request_id, request.role, request.keep_conn, environ)

    def _stdin(self, request_id: int, request: _Request,
               content: bytes) -> Stdin | StdinEnd | None:
        if request.role is Role.AUTHORIZER and request.phase is _Phase.DONE:
            return None  # a front-end that sends an Authorizer a STDIN anyway
        if request.phase is not _Phase.STDIN:
            raise UnexpectedRecord()
        if not content:
            request.phase = _Phase.DONE
            return StdinEnd(request_id)
        request.received += len(content)
        if self._max_body_size is not None and request.received > self._max_body_size:
            raise StdinTooLarge()
        return Stdin(request_id, content)

    def _abort(self, request_id: int, request: _Request) -> Abort | Reply | None:
        if request.phase is _Phase.PARAMS:  # the caller never saw it: end it here
            del self._requests[request_id]
            return self._refuse(request_id, ProtocolStatus.REQUEST_COMPLETE, request.keep_conn)
        if request.aborted:
            return None  # reported once
        request.phase = _Phase.DONE
        request.aborted = True
        return Abort(request_id)

    def end_with_stdout(self, request_id: int, data: bytes) -> bytes:
        """The last bytes of a response that completed: ``data`` in STDOUT records,
        then what end_request() gives; one buffer for the usual response, in one call."""
        if self._stdin_end is None and self._requests.pop(request_id, None) is not None:
            if _c_fcgi_stdout_end is not None:
                framed = _c_fcgi_stdout_end(request_id, data)
                if framed is not None:
                    return framed
            return encode_stdout(request_id, data) + _completed(request_id)
        return encode_stdout(request_id, data) + self.end_request(request_id)

    def end_request(self, request_id: int, app_status: int = 0,
                    protocol_status: int = ProtocolStatus.REQUEST_COMPLETE) -> bytes:
        """The bytes that end a request (its empty STDOUT record, then END_REQUEST);
        the id is free again. Close the connection afterwards unless the request's
        ``keep_conn`` was set."""
        if self._requests.pop(request_id, None) is None:
            raise ValueError(f"request {request_id} is not in progress")
        if self._stdin_end is not None and self._stdin_end.request_id == request_id:
            self._stdin_end = None  # not taken: for an ended request it is not news
        if not app_status and not protocol_status:
            return _completed(request_id)
        return (encode_record(RecordType.STDOUT, request_id)
                + encode_end_request(request_id, app_status, protocol_status))


@functools.lru_cache(maxsize=64)  # front-ends use a few ids (nginx: always 1)
def _completed(request_id: int) -> bytes:
    """The end of a request that completed: empty STDOUT, END_REQUEST (0, COMPLETE)."""
    return encode_record(RecordType.STDOUT, request_id) + encode_end_request(request_id)


_NO_PAIRS = PairReader(0, 0)
