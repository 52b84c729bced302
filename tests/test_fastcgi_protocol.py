"""Tests for django_scgi.fastcgi (and the wire codec under it, fcgi_records).

No Django, no sockets: record streams are built as bytes in the shapes the real
front-ends send (PARAMS in their order, nginx's KEEP_CONN with id 1, Apache's POST,
Caddy's shuffled params) and fed whole, a byte at a time and in random cuts
(hypothesis). Every error has a row in a table.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_scgi import fastcgi
from django_scgi.fastcgi import (
    NEED_DATA,
    Abort,
    ConnectionClosed,
    EndRequest,
    ProtocolStatus,
    RecordType,
    Reply,
    RequestHead,
    ResponseParser,
    Role,
    ServerConnection,
    Stdin,
    StdinEnd,
    Stdout,
    UnknownTypeReply,
    ValuesResult,
    encode_begin_request,
    encode_get_values,
    encode_params,
    encode_record,
    encode_stdin,
)
from django_scgi.protocol import (
    BadHeaderBlock,
    BodyTooLarge,
    HeaderBlockTooLarge,
    IncompleteRequest,
    ProtocolError,
    TooManyHeaders,
)

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- helpers


def request_bytes(rid: int, params, body: bytes = b"", *, keep_conn: bool = False,
                  role: int = Role.RESPONDER, stdin_chunks: int = 1) -> bytes:
    """A whole request as a front-end sends it: BEGIN, PARAMS..., empty PARAMS,
    STDIN... (in ``stdin_chunks`` records), empty STDIN."""
    out = encode_begin_request(rid, role, keep_conn) + encode_params(rid, params)
    step = max(1, -(-len(body) // stdin_chunks))
    for i in range(0, len(body), step):
        out += encode_stdin(rid, body[i : i + step])
    return out + encode_record(RecordType.STDIN, rid)


def run(chunks, eof: bool = True, **limits):
    """Feed chunks (draining events after each), then EOF. Returns (events with
    adjacent Stdin of one request merged, the error or None, the connection)."""
    conn = ServerConnection(**limits)
    events: list = []
    try:
        for chunk in filter(None, chunks):
            conn.receive_data(chunk)
            drain(conn, events)
        if eof:
            conn.receive_data(b"")
            drain(conn, events)
    except ProtocolError as error:
        return merge(events), error, conn
    return merge(events), None, conn


def drain(conn: ServerConnection, events: list) -> None:
    while True:
        event = conn.next_event()
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            if isinstance(event, ConnectionClosed):
                events.append(event)
            return
        events.append(event)
        if isinstance(event, StdinEnd | Abort):
            events.append(conn.end_request(event.request_id))


def merge(events: list) -> list:
    merged: list = []
    for event in events:
        previous = merged[-1] if merged else None
        if isinstance(event, Stdin) and isinstance(previous, Stdin) and (
                previous.request_id == event.request_id):
            merged[-1] = Stdin(event.request_id, previous.data + event.data)
        else:
            merged.append(event)
    return merged


def one_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def client_events(data: bytes) -> list:
    parser = ResponseParser()
    parser.receive_data(data)
    parser.receive_data(b"")
    events = []
    while not isinstance(event := parser.next_event(), ConnectionClosed):
        events.append(event)
    return events


# ---------------------------------------------------------------- front-end shapes

NGINX_GET = [  # nginx 1.22 with the stock fastcgi_params and fastcgi_keep_conn on
    ("QUERY_STRING", "q=1"), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""), ("SCRIPT_NAME", "/app/caf\xc3\xa9"),
    ("REQUEST_URI", "/app/caf%C3%A9?q=1"), ("DOCUMENT_URI", "/app/caf\xc3\xa9"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "http"), ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.22.1"), ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_PORT", "40000"), ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "8080"),
    ("SERVER_NAME", "localhost"), ("REDIRECT_STATUS", "200"), ("HTTP_HOST", "localhost"),
    ("HTTP_COOKIE", "a=1"), ("HTTP_COOKIE", "b=2"), ("HTTP_X_DUP", "one"),
    ("HTTP_X_DUP", "two"), ("HTTP_USER_AGENT", "curl/7.88.1"), ("HTTP_ACCEPT", "*/*"),
]
APACHE_POST = [  # mod_proxy_fcgi: no CONTENT_LENGTH on GET, here a POST
    ("CONTENT_LENGTH", "11"), ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
    ("HTTP_HOST", "127.0.0.1:8081"), ("SERVER_SOFTWARE", "Apache/2.4.71 (Debian)"),
    ("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/form"), ("REQUEST_METHOD", "POST"),
    ("REQUEST_URI", "/app/form"), ("SCRIPT_NAME", "/app/form"), ("QUERY_STRING", ""),
    ("SERVER_PROTOCOL", "HTTP/1.1"), ("HTTP_X_LONG", "v" * 300),  # a 4-byte length
]
CADDY_GET = [  # Caddy 2.6: SCRIPT_NAME "", the path in PATH_INFO, order varies
    ("PATH_INFO", "/app/x"), ("SCRIPT_NAME", ""), ("REQUEST_URI", "/app/x"),
    ("DOCUMENT_URI", ""), ("REQUEST_METHOD", "GET"), ("HTTP_HOST", "localhost:2015"),
    ("SERVER_SOFTWARE", "Caddy/v2.6.2"), ("SCRIPT_FILENAME", ""), ("CONTENT_LENGTH", ""),
]
BODY = b"a=1&b=%C3%A9"[:11]


def expected_environ(pairs) -> dict[str, str]:
    return fastcgi.params_environ(pairs)


FRONT_ENDS = {
    "nginx-get": (NGINX_GET, b"", True),
    "apache-post": (APACHE_POST, BODY, False),
    "caddy-get": (CADDY_GET, b"", False),
}


def expected_events(rid, pairs, body, keep_conn) -> list:
    events: list = [RequestHead(rid, Role.RESPONDER, keep_conn, expected_environ(pairs))]
    if body:
        events.append(Stdin(rid, body))
    return [*events, StdinEnd(rid), fastcgi.encode_record(RecordType.STDOUT, rid)
            + fastcgi.encode_end_request(rid)]


@pytest.mark.parametrize("name", FRONT_ENDS)
@pytest.mark.parametrize("split", ["whole", "bytes", "records"])
def test_front_end_request(name, split):
    pairs, body, keep_conn = FRONT_ENDS[name]
    data = request_bytes(1, pairs, body, keep_conn=keep_conn, stdin_chunks=3)
    chunks = {"whole": [data], "bytes": one_at_a_time(data),
              "records": [data[i : i + 8] for i in range(0, len(data), 8)]}[split]
    events, error, conn = run(chunks)
    assert error is None
    assert events == [*expected_events(1, pairs, body, keep_conn), ConnectionClosed()]
    assert conn.active == frozenset()


def test_repeated_names_policy():
    environ = fastcgi.params_environ([*NGINX_GET, ("HTTP_HOST", "override:8080"),
                                      ("SCRIPT_NAME", "/app")])
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_DUP"] == "one, two"
    assert environ["HTTP_HOST"] == "override:8080"  # later wins, never "a, b"
    assert environ["SCRIPT_NAME"] == "/app"


def test_keep_conn_serves_requests_one_after_another_with_the_same_id():
    data = b"".join(request_bytes(1, NGINX_GET, b"x" * n, keep_conn=True) for n in (0, 5, 0))
    events, error, _ = run(one_at_a_time(data))
    assert error is None
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.keep_conn for h in heads] == [True, True, True]
    assert [e.data for e in events if isinstance(e, Stdin)] == [b"xxxxx"]


def test_body_arrives_lazily_one_event_per_record():
    conn = ServerConnection()
    conn.receive_data(encode_begin_request(1) + encode_params(1, {"A": "b"})
                      + encode_stdin(1, b"first"))
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.next_event() == Stdin(1, b"first")
    assert conn.next_event() is NEED_DATA  # nothing more is invented or waited for
    conn.receive_data(encode_stdin(1, b"second") + encode_record(RecordType.STDIN, 1))
    assert conn.next_event() == Stdin(1, b"second")
    assert conn.next_event() == StdinEnd(1)


# ---------------------------------------------------------------- replies of the protocol


def first_reply(data: bytes, **limits) -> Reply:
    events, error, _ = run([data], eof=False, **limits)
    assert error is None
    return next(e for e in events if isinstance(e, Reply))


def test_get_values_answers_known_names_and_leaves_out_the_others():
    reply = first_reply(encode_get_values(["FCGI_MPXS_CONNS", "NOPE", "FCGI_MAX_CONNS",
                                           "FCGI_MAX_REQS"]), max_conns=50)
    assert not reply.close
    (event,) = client_events(reply.data)
    assert event == ValuesResult({"FCGI_MPXS_CONNS": "0", "FCGI_MAX_CONNS": "50",
                                  "FCGI_MAX_REQS": "50"})
    assert list(event.values) == ["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS", "FCGI_MAX_REQS"]


@pytest.mark.parametrize("rtype", [0, 3, 8, 10, 11, 200, 255])
def test_unknown_management_type_gets_unknown_type(rtype):
    reply = first_reply(encode_record(rtype, 0, b"whatever"))
    assert client_events(reply.data) == [UnknownTypeReply(rtype)]


@pytest.mark.parametrize(("keep_conn", "close"), [(False, True), (True, False)])
@pytest.mark.parametrize("role", [Role.FILTER, 0, 99])
def test_unknown_role_is_refused(role, keep_conn, close):
    data = encode_begin_request(3, role, keep_conn) + encode_params(3, {"A": "1"})
    events, error, conn = run([data], eof=False)
    assert error is None
    assert len(events) == 1  # the params of a refused request are ignored
    assert events[0].close is close
    assert client_events(events[0].data) == [EndRequest(3, 0, ProtocolStatus.UNKNOWN_ROLE)]
    assert conn.active == frozenset()


def test_authorizer_role_is_served_without_a_body():
    # Apache's mod_authnz_fcgi sends BEGIN and PARAMS only; a STDIN sent anyway is ignored.
    head = encode_begin_request(1, Role.AUTHORIZER) + encode_params(
        1, {"FCGI_APACHE_ROLE": "AUTHORIZER"})
    for data in (head, head + encode_stdin(1, b"x") + encode_record(RecordType.STDIN, 1)):
        conn = ServerConnection()
        conn.receive_data(data)
        event = conn.next_event()
        assert isinstance(event, RequestHead) and event.role is Role.AUTHORIZER
        assert conn.next_event() is NEED_DATA
        assert conn.active == frozenset({1})


def test_second_request_at_once_is_refused_with_cant_mpx_conn():
    data = (encode_begin_request(1, keep_conn=True) + encode_params(1, {"A": "1"})
            + request_bytes(2, {"B": "2"}, b"ignored", keep_conn=True)
            + encode_stdin(1, b"one") + encode_record(RecordType.STDIN, 1))
    events, error, _conn = run(one_at_a_time(data))
    assert error is None
    refusal = next(e for e in events if isinstance(e, Reply))
    assert not refusal.close  # request 1 still runs on this connection
    assert client_events(refusal.data) == [EndRequest(2, 0, ProtocolStatus.CANT_MPX_CONN)]
    assert [type(e) for e in events if not isinstance(e, bytes)] == [
        RequestHead, Reply, Stdin, StdinEnd, ConnectionClosed]
    assert all(getattr(e, "request_id", 1) == 1 for e in events if not isinstance(e, Reply))


def test_multiplexing_when_allowed():
    data = (encode_begin_request(1) + encode_begin_request(2) + encode_params(2, {"B": "2"})
            + encode_params(1, {"A": "1"}) + encode_stdin(1, b"one") + encode_stdin(2, b"two")
            + encode_record(RecordType.STDIN, 2) + encode_record(RecordType.STDIN, 1))
    events, error, _ = run([data], max_requests=4, max_conns=2)
    assert error is None
    assert [(type(e).__name__, getattr(e, "request_id", None)) for e in events
            if not isinstance(e, bytes)] == [
        ("RequestHead", 2), ("RequestHead", 1), ("Stdin", 1), ("Stdin", 2),
        ("StdinEnd", 2), ("StdinEnd", 1), ("ConnectionClosed", None)]
    values = ServerConnection(max_requests=4, max_conns=2).values()
    assert values == {"FCGI_MAX_CONNS": "2", "FCGI_MAX_REQS": "8", "FCGI_MPXS_CONNS": "1"}


def test_records_for_unknown_request_ids_are_ignored():
    data = (encode_params(7, {"A": "1"}) + encode_stdin(7, b"x")
            + encode_record(RecordType.ABORT_REQUEST, 7) + encode_record(RecordType.DATA, 7)
            + encode_record(RecordType.STDOUT, 9, b"y") + request_bytes(1, {"A": "1"}))
    events, error, _ = run([data])
    assert error is None
    assert isinstance(events[0], RequestHead) and events[0].request_id == 1


def test_abort_before_the_head_is_answered_by_the_protocol():
    data = encode_begin_request(1) + encode_record(RecordType.ABORT_REQUEST, 1)
    events, error, conn = run([data], eof=False)
    assert error is None
    assert events[0].close  # no KEEP_CONN
    assert client_events(events[0].data) == [EndRequest(1, 0, ProtocolStatus.REQUEST_COMPLETE)]
    assert conn.active == frozenset()


def test_abort_after_the_head_is_an_event_reported_once():
    conn = ServerConnection()
    conn.receive_data(encode_begin_request(1, keep_conn=True) + encode_params(1, {"A": "1"})
                      + encode_record(RecordType.ABORT_REQUEST, 1)
                      + encode_record(RecordType.ABORT_REQUEST, 1))
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.next_event() == Abort(1)
    assert conn.next_event() is NEED_DATA
    assert conn.active == frozenset({1})
    conn.end_request(1)
    assert conn.active == frozenset()
    with pytest.raises(ValueError):
        conn.end_request(1)


def test_answer_before_the_body_then_the_rest_of_it_is_ignored():
    conn = ServerConnection()
    conn.receive_data(encode_begin_request(1, keep_conn=True) + encode_params(1, {"A": "1"}))
    assert isinstance(conn.next_event(), RequestHead)
    conn.end_request(1)  # e.g. a 413 without reading the body
    conn.receive_data(encode_stdin(1, b"late body") + encode_record(RecordType.STDIN, 1)
                      + request_bytes(1, {"B": "2"}))
    head = conn.next_event()
    assert isinstance(head, RequestHead) and head.environ == {"B": "2"}


def test_eof_between_records_is_a_quiet_close():
    events, error, _ = run([b""])
    assert (events, error) == ([ConnectionClosed()], None)


# ---------------------------------------------------------------- errors

HEAD = encode_begin_request(1) + encode_params(1, {"A": "1"})
LONG = struct.pack("!I", 0x80000000 | (2**31 - 1))  # a claimed 2 GiB length


def params_record(content: bytes, rid: int = 1) -> bytes:
    return encode_record(RecordType.PARAMS, rid, content)


ERRORS = {
    "bad-version": (b"\x02" + encode_begin_request(1)[1:], fastcgi.BadVersion, 400),
    "bad-version-later": (HEAD + b"\x00" + encode_stdin(1, b"x")[1:], fastcgi.BadVersion, 400),
    "http": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", fastcgi.HTTPOnFastCGIPort, 400),
    "http-short": (b"GET /", fastcgi.HTTPOnFastCGIPort, 400),
    "http-options": (b"OPTIONS * HTTP/1.1\r\n\r\n", fastcgi.HTTPOnFastCGIPort, 400),
    "scgi": (b"70:CONTENT_LENGTH\x000\x00SCGI\x001\x00,", fastcgi.SCGIOnFastCGIPort, 400),
    "tls": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", fastcgi.TLSOnFastCGIPort, 400),
    "garbage": (b"\xff" * 20, fastcgi.BadVersion, 400),
    "truncated-header": (encode_begin_request(1)[:5], fastcgi.IncompleteRecord, 400),
    "truncated-content": (encode_begin_request(1)[:12], fastcgi.IncompleteRecord, 400),
    "truncated-padding": (params_record(b"\x01\x01ab")[:-1], fastcgi.IncompleteRecord, 400),
    "begin-too-short": (encode_record(RecordType.BEGIN_REQUEST, 1, b"\x00\x01\x00"),
                        fastcgi.BadRecord, 400),
    "duplicate-id": (HEAD + encode_begin_request(1), fastcgi.DuplicateRequestId, 400),
    "stdin-before-params-end": (encode_begin_request(1) + encode_stdin(1, b"x"),
                                fastcgi.UnexpectedRecord, 400),
    "params-after-end": (HEAD + params_record(b"\x01\x01ab"), fastcgi.UnexpectedRecord, 400),
    "data-for-responder": (HEAD + encode_record(RecordType.DATA, 1, b"x"),
                           fastcgi.UnexpectedRecord, 400),
    "stdout-from-peer": (HEAD + encode_record(RecordType.STDOUT, 1, b"x"),
                         fastcgi.UnexpectedRecord, 400),
    "2gib-name": (encode_begin_request(1) + params_record(LONG + b"\x01abc"),
                  fastcgi.ParamsTooLarge, 431),
    "2gib-value": (encode_begin_request(1) + params_record(b"\x01" + LONG + b"a"),
                   fastcgi.ParamsTooLarge, 431),
    "params-too-large": (encode_begin_request(1) + b"".join(
        params_record(b"\x7f\x7f" + b"n" * 127 + b"v" * 127) for _ in range(300)),
        fastcgi.ParamsTooLarge, 431),
    "too-many-params": (encode_begin_request(1) + params_record(b"\x01\x00a" * 1001),
                        fastcgi.TooManyParams, 431),
    "empty-name": (encode_begin_request(1) + params_record(b"\x00\x01v")
                   + params_record(b""), fastcgi.BadParams, 400),
    "truncated-pair": (encode_begin_request(1) + params_record(b"\x05\x01ab")
                       + params_record(b""), fastcgi.BadParams, 400),
    "truncated-length": (encode_begin_request(1) + params_record(b"\x80\x00")
                         + params_record(b""), fastcgi.BadParams, 400),
    "bad-get-values": (encode_record(RecordType.GET_VALUES, 0, b"\x05"), fastcgi.BadRecord, 400),
}


@pytest.mark.parametrize("name", ERRORS)
@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_error(name, split):
    data, error_type, status = ERRORS[name]
    _events, error, conn = run([data] if split == "whole" else one_at_a_time(data))
    assert type(error) is error_type
    assert error.status_hint == status
    assert isinstance(error, fastcgi.FastCGIError)
    with pytest.raises(error_type):  # the same error again, not a new verdict
        conn.next_event()
    conn.receive_data(b"more bytes are dropped")


def test_stdin_after_its_end_while_the_request_runs():
    conn = ServerConnection()
    conn.receive_data(HEAD + encode_record(RecordType.STDIN, 1) + encode_stdin(1, b"x"))
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.next_event() == StdinEnd(1)
    with pytest.raises(fastcgi.UnexpectedRecord):
        conn.next_event()


def test_body_over_the_limit_is_413():
    data = request_bytes(1, {"A": "1"}, b"x" * 100, stdin_chunks=4)
    _events, error, _ = run([data], max_body_size=99)
    assert isinstance(error, fastcgi.StdinTooLarge) and error.status_hint == 413
    assert isinstance(error, BodyTooLarge)
    assert run([data], max_body_size=100)[1] is None


@pytest.mark.parametrize(("fcgi", "scgi"), [
    (fastcgi.ParamsTooLarge, HeaderBlockTooLarge), (fastcgi.TooManyParams, TooManyHeaders),
    (fastcgi.BadParams, BadHeaderBlock), (fastcgi.StdinTooLarge, BodyTooLarge),
    (fastcgi.IncompleteRecord, IncompleteRequest),
])
def test_errors_shared_with_scgi_are_subclasses_of_its_errors(fcgi, scgi):
    assert issubclass(fcgi, scgi)
    assert "FastCGI" in fcgi().message


def test_abstract_base_cannot_be_raised():
    with pytest.raises(TypeError):
        fastcgi.FastCGIError()


def test_header_limit_is_the_scgi_default_and_is_configurable():
    pairs = {"N": "v" * 70000}
    assert isinstance(run([request_bytes(1, pairs)])[1], fastcgi.ParamsTooLarge)
    assert run([request_bytes(1, pairs)], max_header_size=80000)[1] is None
    assert isinstance(run([request_bytes(1, {"A": "1", "B": "2"})], max_headers=1)[1],
                      fastcgi.TooManyParams)


def test_two_gib_length_is_refused_before_the_bytes_arrive():
    # A record holding only the two lengths: refused at once, not after 2 GiB.
    conn = ServerConnection()
    conn.receive_data(encode_begin_request(1) + params_record(LONG + b"\x01"))
    with pytest.raises(fastcgi.ParamsTooLarge):
        conn.next_event()


# ---------------------------------------------------------------- encoders


def test_stdout_is_split_at_65535_and_padded_to_8():
    data = bytes(range(256)) * 600  # 153,600 bytes
    records = fastcgi.encode_stdout(1, data)
    events = client_events(records)
    assert [len(e.data) for e in events] == [65535, 65535, 22530]
    assert b"".join(e.data for e in events) == data
    pos = 0
    while pos < len(records):
        _, _, _, length, padding = struct.unpack_from("!BBHHBx", records, pos)
        assert (length + padding) % 8 == 0 and padding < 8
        pos += 8 + length + padding
    assert fastcgi.encode_stdout(1, b"") == b""  # an empty record would end the stream


def test_stderr_and_end_request_with_protocol_statuses():
    conn = ServerConnection()
    conn.receive_data(HEAD)
    conn.next_event()
    data = fastcgi.encode_stderr(1, b"oops") + conn.end_request(1, 3)
    assert client_events(data) == [fastcgi.Stderr(1, b"oops"), Stdout(1, b""),
                                   EndRequest(1, 3, ProtocolStatus.REQUEST_COMPLETE)]
    for status in ProtocolStatus:
        assert client_events(fastcgi.encode_end_request(5, 0, status)) == [
            EndRequest(5, 0, status)]


def test_encode_record_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        encode_record(RecordType.STDOUT, 1, b"x" * 65536)
    with pytest.raises(ValueError):
        encode_record(RecordType.STDOUT, 65536, b"x")


@pytest.mark.parametrize(("length", "encoded"), [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x00\x00\x80"), (65536, b"\x80\x01\x00\x00"),
])
def test_pair_length_forms(length, encoded):
    data = fastcgi.encode_pairs([("N", "v" * length)])
    assert data[1 : 1 + len(encoded)] == encoded
    assert fastcgi.decode_pairs(data, max_size=70000) == [("N", "v" * length)]


def test_response_parser_truncated_and_unexpected():
    parser = ResponseParser()
    parser.receive_data(fastcgi.encode_stdout(1, b"abc")[:-1] + b"")
    parser.receive_data(b"")
    with pytest.raises(fastcgi.IncompleteRecord):
        parser.next_event()
    with pytest.raises(fastcgi.UnexpectedRecord):
        client_events(encode_begin_request(1))


# ---------------------------------------------------------------- properties

LATIN1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=200)
NAMES = st.text(st.characters(min_codepoint=1, max_codepoint=255), min_size=1, max_size=200)
PAIRS = st.lists(st.tuples(NAMES, LATIN1), max_size=20)


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@FUZZ
@given(PAIRS, st.binary(max_size=300), st.lists(st.integers(0, 10**6), max_size=30),
       st.booleans(), st.integers(1, 0xFFFF))
def test_any_valid_request_in_any_cut_parses_back(pairs, body, points, keep_conn, rid):
    data = request_bytes(rid, pairs, body, keep_conn=keep_conn, stdin_chunks=3)
    events, error, _ = run(cuts(data, points))
    assert error is None
    assert events == [*expected_events(rid, pairs, body, keep_conn), ConnectionClosed()]


@FUZZ
@given(PAIRS)
def test_pairs_round_trip(pairs):
    assert fastcgi.decode_pairs(fastcgi.encode_pairs(pairs), max_size=10**6,
                                max_pairs=10**6) == pairs


@st.composite
def hostile_streams(draw) -> bytes:
    """Records with random types, ids, contents and damage, around a valid request."""
    parts = [request_bytes(1, draw(PAIRS), draw(st.binary(max_size=40)))]
    for _ in range(draw(st.integers(0, 6))):
        parts.insert(draw(st.integers(0, len(parts))), encode_record(
            draw(st.integers(0, 255)), draw(st.sampled_from([0, 1, 2, 0xFFFF])),
            draw(st.binary(max_size=40))))
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data) + draw(st.binary(max_size=16))


@FUZZ
@given(hostile_streams() | st.binary(max_size=400), st.lists(st.integers(0, 10**6),
                                                             max_size=20))
def test_hostile_input_gives_events_or_one_typed_error_whatever_the_cut(data, points):
    whole = run([data], max_body_size=30, max_header_size=4096, max_headers=50)
    cut = run(cuts(data, points), max_body_size=30, max_header_size=4096, max_headers=50)
    assert whole[0] == cut[0]
    assert type(whole[1]) is type(cut[1])
    if whole[1] is not None:
        assert isinstance(whole[1], ProtocolError)
    for event in whole[0]:
        if isinstance(event, RequestHead):
            assert sum(len(k) + len(v) for k, v in event.environ.items()) <= 4096
        if isinstance(event, Stdin):
            assert 0 < len(event.data) <= 30


# ---------------------------------------------------------------- the C accelerator

try:
    from django_scgi._speedups import fcgi_params as c_fcgi_params
except ImportError:  # not built (no compiler at install time): Python does it all
    c_fcgi_params = None

needs_c = pytest.mark.skipif(c_fcgi_params is None, reason="django_scgi._speedups not built")
PARAMS_SIZES = st.sampled_from([16, 300, 65536])


@needs_c
@FUZZ
@given(st.lists(st.tuples(st.text(st.characters(max_codepoint=255), max_size=140)
                          | st.sampled_from(["HTTP_COOKIE", "HTTP_HOST", "SCRIPT_NAME", "A"]),
                          LATIN1),
                max_size=12).map(fastcgi.encode_pairs) | st.binary(max_size=300),
       PARAMS_SIZES, st.integers(1, 12))
def test_c_params_parser_agrees_with_python(data, max_size, max_pairs):
    answer = c_fcgi_params(data, max_size, max_pairs)
    try:
        expected = fastcgi.params_environ(fastcgi.decode_pairs(data, max_size, max_pairs))
    except ProtocolError:
        assert answer is None  # every refusal is Python's
        return
    if answer is not None:
        assert answer == expected and list(answer) == list(expected)
    else:  # declined: only for a repeated client header, which Python joins
        names = [name for name, _ in fastcgi.decode_pairs(data, max_size, max_pairs)]
        assert any(names.count(name) > 1 and name.startswith("HTTP_") and name != "HTTP_HOST"
                   for name in names)


@needs_c
def test_c_params_parser_takes_the_usual_stream_and_declines_the_rest():
    usual = [(n, v) for n, v in NGINX_GET if n not in ("HTTP_COOKIE", "HTTP_X_DUP")]
    assert c_fcgi_params(fastcgi.encode_pairs(usual), 65536, 1000) == dict(usual)
    assert c_fcgi_params(fastcgi.encode_pairs(NGINX_GET), 65536, 1000) is None  # joined
    # The deploy file's `fastcgi_param SCRIPT_NAME` after the include: the later wins.
    overridden = [*usual, ("SCRIPT_NAME", "/app"), ("HTTP_HOST", "example.com")]
    assert c_fcgi_params(fastcgi.encode_pairs(overridden), 65536, 1000) == dict(overridden)
    assert c_fcgi_params(LONG + b"\x01abc", 65536, 1000) is None  # 2 GiB: Python refuses
    assert c_fcgi_params(b"\x05\x01ab", 65536, 1000) is None  # truncated
    assert c_fcgi_params(bytearray(b"\x01\x01ab"), 65536, 1000) is None  # not bytes
    # A repeated name that is "HTTP_" and nothing more is a client header too (joined).
    assert c_fcgi_params(fastcgi.encode_pairs([("HTTP_", ""), ("HTTP_", "")]), 65536, 9) is None


try:
    from django_scgi._speedups import fcgi_head as c_fcgi_head
except ImportError:
    c_fcgi_head = None


def python_fcgi_head(data: bytes, pos: int, max_size: int, max_pairs: int):
    """What the Python path reads from the same bytes: fcgi_head's answer, None where
    it takes nothing, "error" where the stream is refused."""
    reader = fastcgi.RecordReader()
    reader.feed(data)
    reader.skip_to(pos)
    found = reader.whole_head()
    if found is None:
        return None
    rid, begin, chunks, end = found
    role, flags = fastcgi.BEGIN_BODY.unpack(begin)
    if role not in (Role.RESPONDER, Role.AUTHORIZER):
        return None
    try:
        pairs = fastcgi.PairReader(max_size, max_pairs)
        for chunk in chunks:
            pairs.feed(chunk)
        environ = fastcgi.params_environ(pairs.finish())
    except ProtocolError:
        return "error"
    stdin_end = role == Role.RESPONDER and reader.skip_head(end, rid)
    return (rid, role, bool(flags & fastcgi.KEEP_CONN), environ,
            reader._pos if stdin_end else end, stdin_end)


@st.composite
def heads(draw) -> tuple[bytes, int]:
    """Request heads as front-ends write them, some damaged, after a few stray bytes."""
    prefix = draw(st.binary(max_size=12))
    rid = draw(st.sampled_from([0, 1, 2, 0xFFFF]))
    role = draw(st.sampled_from([Role.RESPONDER, Role.AUTHORIZER, Role.FILTER, 0]))
    data = request_bytes(rid, draw(PAIRS), draw(st.binary(max_size=20)),
                         keep_conn=draw(st.booleans()), role=role)
    data = bytearray(prefix + data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(0, 2))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data), len(prefix)


@needs_c
@FUZZ
@given(heads() | st.tuples(hostile_streams() | st.binary(max_size=300), st.just(0)),
       PARAMS_SIZES, st.integers(1, 30), st.booleans())
def test_c_head_reader_agrees_with_python(case, max_size, max_pairs, as_bytearray):
    data, pos = case
    answer = c_fcgi_head(bytearray(data) if as_bytearray else data, pos, max_size, max_pairs)
    expected = python_fcgi_head(data, pos, max_size, max_pairs)
    if answer is not None:
        assert answer == expected
        assert list(answer[3]) == list(expected[3])  # the order, as Python's dict keeps it
    elif isinstance(expected, tuple):  # declined: PARAMS not in one record, or for C's
        reader = fastcgi.RecordReader()  # params parser to decline (a repeated header)
        reader.feed(data)
        reader.skip_to(pos)
        chunks = reader.whole_head()[2]
        assert len(chunks) != 1 or c_fcgi_params(chunks[0], max_size, max_pairs) is None


@needs_c
def test_c_head_reader_takes_the_usual_head_and_what_follows_stays_unread():
    usual = [(n, v) for n, v in NGINX_GET if n not in ("HTTP_COOKIE", "HTTP_X_DUP")]
    get = request_bytes(1, usual, keep_conn=True)
    answer = c_fcgi_head(bytearray(get + b"next"), 0, 65536, 1000)
    assert answer == (1, Role.RESPONDER, True, dict(usual), len(get), True)
    post = request_bytes(7, usual, b"body")
    rid, role, keep_conn, _, end, stdin_end = c_fcgi_head(post, 0, 65536, 1000)
    assert (rid, role, keep_conn, stdin_end) == (7, Role.RESPONDER, False, False)
    assert post[end:] == encode_stdin(7, b"body") + encode_record(RecordType.STDIN, 7)
    authorizer = request_bytes(3, usual, role=Role.AUTHORIZER)
    assert c_fcgi_head(authorizer, 0, 65536, 1000)[4:] == (len(authorizer) - 8, False)
    assert c_fcgi_head(get[:-1], 0, 65536, 1000)[4:] == (len(get) - 8, False)
    assert c_fcgi_head(get[:-9], 0, 65536, 1000) is None  # the PARAMS end incomplete
    for declined in (get[:20], request_bytes(0, usual), request_bytes(1, usual, role=3),
                     request_bytes(1, NGINX_GET), request_bytes(1, []),
                     request_bytes(1, usual)[1:]):
        assert c_fcgi_head(declined, 0, 65536, 1000) is None
    assert c_fcgi_head(get, 0, 100, 1000) is None  # over the limit: Python refuses it
    assert c_fcgi_head(memoryview(get), 0, 65536, 1000) is None


@needs_c
@FUZZ
@given(hostile_streams() | heads().map(lambda case: case[0]),
       st.lists(st.integers(0, 10**6), max_size=8))
def test_events_are_the_same_with_and_without_the_c_head_reader(data, points):
    limits = {"max_body_size": 30, "max_header_size": 4096, "max_headers": 50}
    with_c = run(cuts(data, points), **limits)
    saved, fastcgi._c_fcgi_head = fastcgi._c_fcgi_head, None
    try:
        without = run(cuts(data, points), **limits)
    finally:
        fastcgi._c_fcgi_head = saved
    assert with_c[0] == without[0]
    assert type(with_c[1]) is type(without[1])


def events_after_receive_head(data: bytes, **limits):
    """run([data]), but through receive_head() first: (events, error, whether taken)."""
    conn = ServerConnection(**limits)
    events: list = []
    taken = conn.receive_head(data) if data else None  # b"" would be EOF
    if taken is not None:
        head, no_stdin = taken
        events.append(head)
        if no_stdin and head.role is Role.RESPONDER:  # the StdinEnd it took, as drain() would
            events += [StdinEnd(head.request_id), conn.end_request(head.request_id)]
    try:
        drain(conn, events)
        conn.receive_data(b"")
        drain(conn, events)
    except ProtocolError as error:
        return merge(events), error, taken is not None
    return merge(events), None, taken is not None


@FUZZ
@given(hostile_streams() | heads().map(lambda case: case[0]))
def test_receive_head_gives_the_events_receive_data_gives(data):
    limits = {"max_body_size": 30, "max_header_size": 4096, "max_headers": 50}
    events, error, _ = events_after_receive_head(data, **limits)
    expected, expected_error, _ = run([data], **limits)
    assert events == expected
    assert type(error) is type(expected_error)


def test_receive_head_takes_the_usual_head_whole():
    usual = [(n, v) for n, v in NGINX_GET if n not in ("HTTP_COOKIE", "HTTP_X_DUP")]
    get = request_bytes(1, usual, keep_conn=True)
    conn = ServerConnection()
    taken = conn.receive_head(get)
    if fastcgi._c_fcgi_head is None:  # without C (or switched off) the usual way
        assert taken is None
        return
    assert taken == (RequestHead(1, Role.RESPONDER, True, dict(usual)), True)
    assert conn.next_event() is NEED_DATA
    conn.end_request(1)
    assert conn.idle()
    assert conn.receive_head(get + b"\x01") is None  # more than a head: buffered
    assert isinstance(conn.next_event(), RequestHead)


try:
    from django_scgi._speedups import fcgi_stdout_end as c_fcgi_stdout_end
except ImportError:
    c_fcgi_stdout_end = None


@needs_c
@FUZZ
@given(st.integers(-2, 0x10001), st.binary(max_size=300) | st.integers(0, 70000).map(bytes))
def test_c_stdout_end_agrees_with_python(rid, data):
    answer = c_fcgi_stdout_end(rid, data)
    if answer is None:  # declined: what one record cannot carry, or an id out of range
        assert not 0 < len(data) <= 0xFFFF or not 0 <= rid <= 0xFFFF
        return
    assert answer == (fastcgi.encode_stdout(rid, data) + encode_record(RecordType.STDOUT, rid)
                      + fastcgi.encode_end_request(rid))
    assert client_events(answer)[-1] == EndRequest(rid, 0, ProtocolStatus.REQUEST_COMPLETE)


@pytest.mark.parametrize("data", [b"", b"x" * 9, b"y" * 70000])
def test_end_with_stdout_frames_the_rest_and_ends_the_request(data):
    conn = ServerConnection()
    conn.receive_data(request_bytes(3, [("A", "b")], keep_conn=True))
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.end_with_stdout(3, data) == fastcgi.encode_stdout(3, data) + (
        encode_record(RecordType.STDOUT, 3) + fastcgi.encode_end_request(3))
    assert not conn.active
    with pytest.raises(ValueError, match="not in progress"):
        conn.end_with_stdout(3, data)
