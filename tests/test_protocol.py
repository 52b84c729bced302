"""Tests for django_scgi.protocol: the sans-I/O SCGI parser and encoders.

No Django, no sockets: requests are built as bytes in the exact shapes that the
real front-ends send (docs/frontend-variables.rst; the verbatim dumps are at the bottom
of tests/test_environ.py) and fed in every split we can think of.
"""

from __future__ import annotations

import pytest

from django_scgi import cgi_head, protocol
from django_scgi.protocol import (
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS,
    NEED_DATA,
    BadContentLength,
    BadHeaderBlock,
    BadLengthPrefix,
    BodyTooLarge,
    ConnectionClosed,
    Data,
    DuplicateHeader,
    EndOfMessage,
    HeaderBlockTooLarge,
    Headers,
    HttpOnScgiPort,
    IncompleteRequest,
    MissingScgiHeader,
    ProtocolError,
    RequestParser,
    State,
    TooManyHeaders,
    encode_request,
    encode_response_head,
)
from django_scgi.response_head import ResponseHead, parse_response_head

TERMINAL = (State.DONE, State.CLOSED)


# ---------------------------------------------------------------- helpers


def netstring(pairs: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """Encode pairs verbatim, in the given order (unlike encode_request, which
    puts CONTENT_LENGTH and SCGI first): lets a test copy a front-end's order or
    build a malformed request."""
    block = b"".join(name + b"\0" + value + b"\0" for name, value in pairs)
    return b"%d:%b,%b" % (len(block), block, body)


def drain(parser: RequestParser, events: list) -> None:
    while parser.state not in TERMINAL:
        event = parser.next_event()
        if event is NEED_DATA:
            return
        events.append(event)


def feed(chunks, eof: bool = True, **limits) -> tuple[list, ProtocolError | None, RequestParser]:
    """Feed chunks (draining events after each), then EOF. Returns the events
    with adjacent Data merged, the ProtocolError raised (if any), the parser.
    Empty chunks are skipped: b"" would mean EOF."""
    parser = RequestParser(**limits)
    events: list = []
    try:
        for chunk in filter(None, chunks):
            parser.receive_data(chunk)
            drain(parser, events)
        if eof:
            parser.receive_data(b"")
            drain(parser, events)
    except ProtocolError as exc:
        return merge_data(events), exc, parser
    return merge_data(events), None, parser


def merge_data(events: list) -> list:
    merged: list = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ---------------------------------------------------------------- real front-end requests

# Apache mod_proxy_scgi (apache / post): CONTENT_LENGTH, SCGI, then the rest.
APACHE_POST = [
    (b"CONTENT_LENGTH", b"12"),
    (b"SCGI", b"1"),
    (b"HTTP_HOST", b"127.0.0.1:18080"),
    (b"HTTP_USER_AGENT", b"hclient"),
    (b"HTTP_CONNECTION", b"close"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"PATH", b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    (b"SERVER_SIGNATURE", b""),
    (b"SERVER_SOFTWARE", b"Apache/2.4.71 (Debian) OpenSSL/3.0.19"),
    (b"SERVER_NAME", b"127.0.0.1"),
    (b"SERVER_PORT", b"18080"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"CONTEXT_PREFIX", b""),
    (b"SCRIPT_FILENAME", b"proxy:scgi://127.0.0.1:14000/form"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_METHOD", b"POST"),
    (b"QUERY_STRING", b"x=1"),
    (b"REQUEST_URI", b"/app/form?x=1"),
    (b"SCRIPT_NAME", b"/app/form"),
]
APACHE_BODY = b"a=1&b=%C3%A9"

# nginx 1.22 (nginx / dup-headers + nonascii-raw): SCGI in the middle, repeated
# client headers as repeated keys, raw non-ASCII bytes in REQUEST_URI.
NGINX_GET = [
    (b"CONTENT_LENGTH", b"0"),
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/app/caf\xc3\xa9/raw?x=\xc3\xa9"),
    (b"QUERY_STRING", b"x=\xc3\xa9"),
    (b"CONTENT_TYPE", b""),
    (b"DOCUMENT_URI", b"/app/caf\xc3\xa9/raw"),
    (b"SCGI", b"1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"18081"),
    (b"HTTP_HOST", b"127.0.0.1"),
    (b"HTTP_X_DUP", b"one"),
    (b"HTTP_X_DUP", b"two"),
    (b"HTTP_COOKIE", b"a=1"),
    (b"HTTP_COOKIE", b"b=2"),
    (b"HTTP_ACCEPT", b"text/html"),
    (b"HTTP_ACCEPT", b"text/plain"),
]

# lighttpd 1.4.69 (lighttpd / post): SCGI last, HTTP_CONTENT_LENGTH present.
LIGHTTPD_POST = [
    (b"CONTENT_LENGTH", b"12"),
    (b"QUERY_STRING", b"x=1"),
    (b"REQUEST_URI", b"/app/form?x=1"),
    (b"SCRIPT_NAME", b"/app"),
    (b"PATH_INFO", b"/form"),
    (b"REQUEST_METHOD", b"POST"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"SERVER_SOFTWARE", b"lighttpd/1.4.69"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"HTTP_HOST", b"127.0.0.1:18082"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"HTTP_CONTENT_LENGTH", b"12"),
    (b"SCGI", b"1"),
]


def expected_environ(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    environ: dict[str, str] = {}
    for name, value in pairs:
        key, val = name.decode("latin-1"), value.decode("latin-1")
        if key in environ:
            sep = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] += sep + val
        else:
            environ[key] = val
    return environ


GOOD_REQUESTS = {
    "apache-post": (APACHE_POST, APACHE_BODY),
    "nginx-dup-headers": (NGINX_GET, b""),
    "lighttpd-post": (LIGHTTPD_POST, APACHE_BODY),
}


def expected_events(pairs, body) -> list:
    events: list = [Headers(expected_environ(pairs), len(body))]
    if body:
        events.append(Data(body))
    return [*events, EndOfMessage()]


@pytest.mark.parametrize("name", GOOD_REQUESTS)
def test_front_end_request_all_at_once(name):
    pairs, body = GOOD_REQUESTS[name]
    events, error, parser = feed([netstring(pairs, body)])
    assert error is None
    assert events == expected_events(pairs, body)
    assert parser.state is State.DONE


@pytest.mark.parametrize("name", GOOD_REQUESTS)
def test_front_end_request_byte_at_a_time(name):
    # sioscgi's tiny-buffer test: the parser must not assume anything arrives whole.
    pairs, body = GOOD_REQUESTS[name]
    events, error, _ = feed(byte_at_a_time(netstring(pairs, body)))
    assert error is None
    assert events == expected_events(pairs, body)


@pytest.mark.parametrize("name", GOOD_REQUESTS)
def test_front_end_request_every_split_point(name):
    pairs, body = GOOD_REQUESTS[name]
    data = netstring(pairs, body)
    want = expected_events(pairs, body)
    for cut in range(len(data) + 1):
        events, error, _ = feed([data[:cut], data[cut:]])
        assert (events, error) == (want, None), f"split at {cut}"


@pytest.mark.parametrize("name", GOOD_REQUESTS)
def test_front_end_request_without_eof(name):
    # No front-end half-closes after the body: the request must complete
    # without EOF.
    pairs, body = GOOD_REQUESTS[name]
    events, error, parser = feed([netstring(pairs, body)], eof=False)
    assert error is None
    assert events == expected_events(pairs, body)
    assert parser.state is State.DONE


def test_nginx_duplicates_are_joined():
    [headers, _] = feed([netstring(NGINX_GET)])[0]
    assert headers.environ["HTTP_COOKIE"] == "a=1; b=2"
    assert headers.environ["HTTP_X_DUP"] == "one, two"
    assert headers.environ["HTTP_ACCEPT"] == "text/html, text/plain"


# nginx with Debian's scgi_params (HTTP_HOST $host) and the user's override after it:
# nginx sends both, in configuration order.
NGINX_HOST_OVERRIDE = [
    (b"CONTENT_LENGTH", b"0"),
    (b"REQUEST_METHOD", b"POST"),
    (b"SCGI", b"1"),
    (b"SERVER_PORT", b"8090"),
    (b"HTTP_HOST", b"127.0.0.1"),
    (b"REMOTE_ADDR", b"10.0.0.1"),
    (b"HTTP_HOST", b"127.0.0.1:8090"),
    (b"REMOTE_ADDR", b"192.0.2.7"),
    (b"HTTP_ORIGIN", b"http://127.0.0.1:8090"),
]


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_repeated_host_and_cgi_variables_take_the_later_value(split):
    data = netstring(NGINX_HOST_OVERRIDE)
    chunks = [data] if split == "whole" else byte_at_a_time(data)
    events, error, _ = feed(chunks)
    assert error is None
    environ = events[0].environ
    assert environ["HTTP_HOST"] == "127.0.0.1:8090"  # not "127.0.0.1, 127.0.0.1:8090"
    assert environ["REMOTE_ADDR"] == "192.0.2.7"


def test_parse_head_takes_the_later_host_too():
    environ, _, _ = protocol.parse_head(netstring(NGINX_HOST_OVERRIDE))
    assert environ["HTTP_HOST"] == "127.0.0.1:8090"


def test_later_host_wins_over_any_number_of_copies():
    events, error, _ = feed([with_cl(
        b"0", (b"HTTP_HOST", b"a"), (b"HTTP_X", b"1"), (b"HTTP_HOST", b"b"),
        (b"HTTP_X", b"2"), (b"HTTP_HOST", b"c"), (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_METHOD", b"POST"),
    )])
    assert error is None
    environ = events[0].environ
    assert (environ["HTTP_HOST"], environ["HTTP_X"], environ["REQUEST_METHOD"]) == (
        "c", "1, 2", "POST")


def test_http_on_scgi_port_says_so():
    _, error, _ = feed([b"GET /admin/ HTTP/1.1\r\n"])
    assert isinstance(error, BadLengthPrefix)  # still a bad prefix, for old handlers
    assert "spoke HTTP to an SCGI port" in str(error)
    assert "nginx" in str(error)
    with pytest.raises(HttpOnScgiPort):  # parse_head (no parser) agrees when it can tell
        protocol.parse_head(b"GET:/ HTTP/1.0\r\n\r\n")


def test_names_and_values_are_latin1_and_empty_values_kept():
    [headers, _] = feed([netstring(NGINX_GET)])[0]
    # PEP 3333: raw bytes survive as latin-1 code points for Django to re-encode.
    assert headers.environ["REQUEST_URI"] == "/app/caf\xc3\xa9/raw?x=\xc3\xa9"
    assert headers.environ["REQUEST_URI"].encode("latin-1") == b"/app/caf\xc3\xa9/raw?x=\xc3\xa9"
    assert headers.environ["CONTENT_TYPE"] == ""


def test_environ_keeps_order_and_framing_headers():
    # environ.py decides what to drop; the parser hands over everything.
    [headers, _, _] = feed([netstring(LIGHTTPD_POST, APACHE_BODY)])[0]
    assert list(headers.environ) == [name.decode() for name, _ in LIGHTTPD_POST]
    assert headers.environ["SCGI"] == "1"
    assert headers.content_length == 12


# ---------------------------------------------------------------- malformed input

MINIMAL = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]
GOOD = netstring(MINIMAL)


def raw(block: bytes) -> bytes:
    """A well-framed netstring around an arbitrary block."""
    return b"%d:%b," % (len(block), block)


def with_cl(value: bytes, *rest: tuple[bytes, bytes]) -> bytes:
    return netstring([(b"CONTENT_LENGTH", value), (b"SCGI", b"1"), *rest])


# (id, input, parser limits, expected error class)
MALFORMED = [
    ("letters-in-prefix", b"abc:", {}, BadLengthPrefix),
    # curl or a browser pointed at the SCGI port: the first byte is a method's capital.
    ("http-request-line", b"GET / HTTP/1.1\r\nHost: x:8000\r\n\r\n", {}, HttpOnScgiPort),
    ("http-method-with-colon", b"POST:", {}, HttpOnScgiPort),
    ("letter-after-digits", b"12a:" + b"x" * 13, {}, BadLengthPrefix),
    ("empty-prefix", b":,", {}, BadLengthPrefix),
    ("negative-prefix", b"-5:", {}, BadLengthPrefix),
    ("space-in-prefix", b" 5:", {}, BadLengthPrefix),
    ("unicode-digit-prefix", "\u0665:".encode(), {}, BadLengthPrefix),
    ("leading-zero", b"0" + GOOD, {}, BadLengthPrefix),
    ("double-zero", b"00:,", {}, BadLengthPrefix),
    ("missing-colon", GOOD.replace(b":", b"\0", 1), {}, BadLengthPrefix),
    ("nine-digit-length", b"999999999:", {}, HeaderBlockTooLarge),
    ("length-over-default", b"65537:", {}, HeaderBlockTooLarge),
    ("block-over-limit", GOOD, {"max_header_size": len(GOOD) - 5}, HeaderBlockTooLarge),
    ("missing-comma", GOOD[:-1] + b";", {}, BadHeaderBlock),
    ("odd-field-count", raw(b"CONTENT_LENGTH\x000\x00SCGI\x00"), {}, BadHeaderBlock),
    ("no-trailing-nul", raw(b"CONTENT_LENGTH\x000\x00SCGI\x001\x00X"), {}, BadHeaderBlock),
    ("empty-name", with_cl(b"0", (b"", b"value")), {}, BadHeaderBlock),
    ("empty-netstring", b"0:,", {}, BadContentLength),
    ("missing-content-length", netstring([(b"SCGI", b"1")]), {}, BadContentLength),
    (
        "content-length-not-first",
        netstring([(b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")]),
        {},
        BadContentLength,
    ),
    ("content-length-letters", with_cl(b"abc"), {}, BadContentLength),
    ("content-length-empty", with_cl(b""), {}, BadContentLength),
    ("content-length-negative", with_cl(b"-1"), {}, BadContentLength),
    ("content-length-space", with_cl(b" 5"), {}, BadContentLength),
    ("content-length-superscript", with_cl(b"\xb2"), {}, BadContentLength),
    ("content-length-beyond-off_t", with_cl(b"9" * 30), {}, BadContentLength),
    # Past CPython's 4300-digit int() limit: a ProtocolError, not a ValueError.
    ("content-length-5000-digits", with_cl(b"1" + b"0" * 5000), {}, BadContentLength),
    ("missing-scgi", netstring([(b"CONTENT_LENGTH", b"0")]), {}, MissingScgiHeader),
    ("scgi-0", netstring([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"0")]), {}, MissingScgiHeader),
    ("scgi-empty", netstring([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"")]), {}, MissingScgiHeader),
    ("duplicate-content-length", with_cl(b"0", (b"CONTENT_LENGTH", b"0")), {}, DuplicateHeader),
    ("duplicate-scgi", with_cl(b"0", (b"SCGI", b"1")), {}, DuplicateHeader),
    (
        "too-many-headers",
        with_cl(b"0", (b"A", b""), (b"B", b"")),
        {"max_headers": 3},
        TooManyHeaders,
    ),
    (
        "too-many-headers-default",
        with_cl(b"0", *[(b"H%d" % i, b"") for i in range(DEFAULT_MAX_HEADERS - 1)]),
        {},
        TooManyHeaders,
    ),
    ("body-too-large", with_cl(b"5") + b"hello", {"max_body_size": 4}, BodyTooLarge),
    ("eof-in-prefix", b"12", {}, IncompleteRequest),
    ("eof-in-block", GOOD[:10], {}, IncompleteRequest),
    ("eof-before-comma", GOOD[:-1], {}, IncompleteRequest),
    ("eof-in-body", with_cl(b"5") + b"hel", {}, IncompleteRequest),
]

EXPECTED_HINT = {
    BadLengthPrefix: 400,
    HttpOnScgiPort: 400,
    HeaderBlockTooLarge: 431,
    TooManyHeaders: 431,
    BadHeaderBlock: 400,
    BadContentLength: 400,
    MissingScgiHeader: 400,
    DuplicateHeader: 400,
    BodyTooLarge: 413,
    IncompleteRequest: 400,
}


@pytest.mark.parametrize(
    ("data", "limits", "error"),
    [row[1:] for row in MALFORMED],
    ids=[row[0] for row in MALFORMED],
)
def test_malformed_request(data, limits, error):
    for chunks in ([data], byte_at_a_time(data)):
        _, exc, parser = feed(chunks, **limits)
        assert type(exc) is error
        assert exc.status_hint == EXPECTED_HINT[error]
        assert str(exc) == exc.message
        # The parser stays failed and says so the same way every time.
        assert parser.state is State.ERROR
        for _ in range(2):
            with pytest.raises(error) as again:
                parser.next_event()
            assert again.value is exc


def test_every_error_class_has_a_malformed_row():
    # A new ProtocolError subclass must come with a row in MALFORMED.
    classes = {cls for cls in vars(protocol).values()
               if isinstance(cls, type) and issubclass(cls, ProtocolError)}
    assert classes - {ProtocolError} == set(EXPECTED_HINT) == {row[3] for row in MALFORMED}


def test_protocol_error_is_abstract():
    with pytest.raises(TypeError):
        ProtocolError()


def test_body_events_come_before_truncation_error():
    events, exc, _ = feed([with_cl(b"5") + b"hel"])
    assert type(exc) is IncompleteRequest
    assert events == [Headers({"CONTENT_LENGTH": "5", "SCGI": "1"}, 5), Data(b"hel")]


def test_oversized_length_refused_after_six_digits_without_more_input():
    # 65536 has 5 digits, so a 6th digit proves the block too large: refuse it
    # now instead of waiting for ':' (or for 999 MB that we would never allocate).
    parser = RequestParser()
    parser.receive_data(b"99999")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"9")
    with pytest.raises(HeaderBlockTooLarge):
        parser.next_event()


def test_length_digit_cap_follows_the_limit():
    parser = RequestParser(max_header_size=999)
    parser.receive_data(b"999")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"9")
    with pytest.raises(HeaderBlockTooLarge):
        parser.next_event()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"0", None),  # "0:" is a valid prefix
        (b"1", None),
        (b"01", BadLengthPrefix),  # a leading zero is refused before ':' arrives
        (b"x", BadLengthPrefix),
        (b"65536:", None),  # exactly the limit: wait for the block
        (b"65537:", HeaderBlockTooLarge),
    ],
)
def test_length_prefix_is_judged_as_soon_as_possible(data, error):
    parser = RequestParser()
    parser.receive_data(data)
    if error is None:
        assert parser.next_event() is NEED_DATA
    else:
        with pytest.raises(error):
            parser.next_event()


def test_limits_are_inclusive():
    many = with_cl(b"5", *[(b"H%d" % i, b"v") for i in range(8)]) + b"hello"
    block_size = int(many.split(b":", 1)[0])
    limits = {"max_header_size": block_size, "max_headers": 10, "max_body_size": 5}
    events, error, _ = feed([many], **limits)
    assert error is None
    assert events[1:] == [Data(b"hello"), EndOfMessage()]


def test_unlimited_body_size():
    parser = RequestParser(max_body_size=None)
    parser.receive_data(with_cl(b"1000000000000"))
    assert parser.next_event().content_length == 10**12
    assert parser.remaining == 10**12


@pytest.mark.parametrize("value", [b"005", b"0" * 5000 + b"5"], ids=["two", "five-thousand"])
def test_content_length_leading_zeros_are_accepted(value):
    # Still all ASCII digits and unambiguous; the zeros must not count towards
    # the digit cap (nor reach int(), which refuses more than 4300 digits).
    events, error, _ = feed([with_cl(value) + b"hello"])
    assert error is None
    assert events[0].content_length == 5
    assert events[1] == Data(b"hello")


def test_http_duplicates_with_empty_values_are_joined_verbatim():
    events, error, _ = feed([with_cl(b"0", (b"HTTP_X", b""), (b"HTTP_X", b"b"))])
    assert error is None
    assert events[0].environ["HTTP_X"] == ", b"


@pytest.mark.parametrize(
    "kwargs", [{"max_header_size": -1}, {"max_headers": -1}, {"max_body_size": -1}]
)
def test_negative_limits_are_refused(kwargs):
    with pytest.raises(ValueError):
        RequestParser(**kwargs)


# ---------------------------------------------------------------- lifecycle


def test_eof_before_any_byte_is_a_quiet_close():
    # Apache connects and closes without a byte when it refuses a chunked upload.
    parser = RequestParser()
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"")
    assert parser.next_event() == ConnectionClosed()
    assert parser.state is State.CLOSED
    assert parser.next_event() == ConnectionClosed()
    with pytest.raises(RuntimeError):
        parser.receive_data(b"x")


def test_remaining_across_the_lifecycle():
    parser = RequestParser()
    assert (parser.state, parser.remaining) == (State.LENGTH, 0)
    head = with_cl(b"10")
    parser.receive_data(head[:3])
    assert parser.next_event() is NEED_DATA
    assert (parser.state, parser.remaining) == (State.HEADERS, 0)
    parser.receive_data(head[3:] + b"abc")
    assert parser.remaining == 0  # not known before Headers is returned
    assert isinstance(parser.next_event(), Headers)
    assert (parser.state, parser.remaining) == (State.BODY, 7)
    parser.receive_data(b"defg")
    assert parser.remaining == 3  # counts received bytes, not handed-out ones
    assert parser.next_event() == Data(b"abc")
    assert parser.next_event() == Data(b"defg")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"hijEXTRA")
    assert parser.remaining == 0
    assert parser.next_event() == Data(b"hij")
    assert parser.next_event() == EndOfMessage()
    assert (parser.state, parser.remaining) == (State.DONE, 0)


def test_skip_body_counts_bytes_the_caller_read_itself():
    parser = RequestParser()
    parser.receive_data(with_cl(b"10") + b"abc")
    assert isinstance(parser.next_event(), Headers)
    with pytest.raises(RuntimeError):
        parser.skip_body(1)  # "abc" is still buffered: hand it out first
    assert parser.next_event() == Data(b"abc")
    with pytest.raises(RuntimeError):
        parser.skip_body(8)  # only 7 are left
    parser.skip_body(4)
    assert (parser.next_event(), parser.remaining) == (NEED_DATA, 3)
    parser.skip_body(3)
    assert parser.next_event() == EndOfMessage()
    with pytest.raises(RuntimeError):
        parser.skip_body(0)  # the body is over


def test_skip_body_then_eof_is_an_incomplete_request():
    parser = RequestParser()
    parser.receive_data(with_cl(b"10"))
    assert isinstance(parser.next_event(), Headers)
    parser.skip_body(4)
    parser.receive_data(b"")
    with pytest.raises(IncompleteRequest):
        parser.next_event()


def test_zero_length_body_ends_right_after_headers():
    parser = RequestParser()
    parser.receive_data(GOOD)
    assert isinstance(parser.next_event(), Headers)
    assert parser.remaining == 0
    assert parser.next_event() == EndOfMessage()


def test_bytes_after_the_body_are_ignored():
    events, error, _ = feed([with_cl(b"5") + b"helloEXTRA", b"MORE"])
    assert error is None
    assert events[1:] == [Data(b"hello"), EndOfMessage()]


def test_nginx_unbuffered_body_behind_content_length_zero_is_ignored():
    # nginx < 1.29.6 with scgi_request_buffering off: CONTENT_LENGTH=0, body follows.
    request = with_cl(b"0", (b"HTTP_CONTENT_LENGTH", b"10")) + b"x" * 10
    events, error, _ = feed([request, b"y" * 10])
    assert error is None
    assert [type(event) for event in events] == [Headers, EndOfMessage]


def test_done_state_repeats_end_of_message_and_drops_input():
    parser = RequestParser()
    parser.receive_data(GOOD)
    parser.next_event()
    parser.next_event()
    parser.receive_data(b"garbage")
    assert parser.next_event() == EndOfMessage()
    assert parser.state is State.DONE


def test_body_bytes_are_handed_out_without_copy():
    parser = RequestParser()
    parser.receive_data(with_cl(b"10"))
    parser.next_event()
    chunk = b"0123456789"
    parser.receive_data(chunk)
    assert parser.next_event().data is chunk


def test_mutable_input_is_copied():
    # A server that recv_into()s a reused buffer must not see its Data change.
    parser = RequestParser()
    parser.receive_data(bytearray(with_cl(b"4")))
    parser.next_event()
    buf = bytearray(b"abcd")
    parser.receive_data(memoryview(buf))
    buf[:] = b"XXXX"
    assert parser.next_event() == Data(b"abcd")


def test_parsed_events_are_the_same_frozen_objects_as_constructed_ones():
    # The parser fills the dataclass slots directly instead of calling __init__.
    import dataclasses

    parser = RequestParser()
    parser.receive_data(encode_request({"REQUEST_METHOD": "POST"}, b"hello"))
    headers, data = parser.next_event(), parser.next_event()
    expected = Headers({"CONTENT_LENGTH": "5", "SCGI": "1", "REQUEST_METHOD": "POST"}, 5)
    assert type(headers) is Headers and type(data) is Data
    assert headers == expected and repr(headers) == repr(expected)
    assert data == Data(b"hello") and hash(data) == hash(Data(b"hello"))
    assert repr(data) == repr(Data(b"hello"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        headers.content_length = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.data = b""


def test_receive_after_eof_is_a_programming_error():
    parser = RequestParser()
    parser.receive_data(b"1")
    parser.receive_data(b"")
    with pytest.raises(RuntimeError):
        parser.receive_data(b"2")


def test_need_data_is_a_singleton():
    assert type(NEED_DATA)() is NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"


# ---------------------------------------------------------------- encode_request


def test_encode_request_matches_the_spec_example():
    # scgi-protocol.md's example, byte for byte.
    data = encode_request(
        {"REQUEST_METHOD": "POST", "REQUEST_URI": "/deepthought"},
        b"What is the answer to life?",
    )
    assert data == (
        b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00"
        b"REQUEST_URI\x00/deepthought\x00,What is the answer to life?"
    )


@pytest.mark.parametrize(
    ("environ", "body"),
    [
        ({}, b""),
        ({"REQUEST_METHOD": "GET", "QUERY_STRING": ""}, b""),
        ({"REQUEST_URI": "/caf\xc3\xa9", "HTTP_X": "\xff"}, b"\x00\xff" * 100),
    ],
)
def test_encode_request_round_trips(environ, body):
    events, error, _ = feed([encode_request(environ, body)])
    assert error is None
    want = {"CONTENT_LENGTH": str(len(body)), "SCGI": "1", **environ}
    assert events == [Headers(want, len(body))] + ([Data(body)] if body else []) + [EndOfMessage()]


def test_encode_request_ignores_given_content_length_and_keeps_given_scgi():
    data = encode_request([("SCGI", "1"), ("CONTENT_LENGTH", "99"), ("A", "b")], b"xy")
    assert data == b"28:CONTENT_LENGTH\x002\x00SCGI\x001\x00A\x00b\x00,xy"


def test_encode_request_pairs_may_repeat_http_names():
    data = encode_request([("HTTP_COOKIE", "a=1"), ("HTTP_COOKIE", "b=2")])
    [headers, _] = feed([data])[0]
    assert headers.environ["HTTP_COOKIE"] == "a=1; b=2"


@pytest.mark.parametrize(
    "environ",
    [{"": "x"}, {"A\0B": "x"}, {"A": "x\0y"}, {"A": "\u20ac"}, {"\u20ac": "x"}],
    ids=["empty-name", "nul-in-name", "nul-in-value", "non-latin1-value", "non-latin1-name"],
)
def test_encode_request_refuses_what_cannot_be_framed(environ):
    with pytest.raises(ValueError):
        encode_request(environ)


# ---------------------------------------------------------------- encode_response_head


def test_encode_response_head_exact_bytes():
    head = encode_response_head(
        "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("X-Caf\xe9", "caf\xe9")]
    )
    assert head == (
        b"Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"X-Caf\xe9: caf\xe9\r\n\r\n"
    )


def test_encode_response_head_keeps_repeated_headers_and_empty_values():
    headers = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X", "")]
    head = encode_response_head("204 No Content", headers)
    assert head == b"Status: 204 No Content\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX: \r\n\r\n"


@pytest.mark.parametrize(
    ("status", "line"),
    [
        ("404", b"Status: 404 Not Found\r\n"),
        ("404 ", b"Status: 404 Not Found\r\n"),
        ("599", b"Status: 599 Unknown\r\n"),
        ("418 Short And Stout", b"Status: 418 Short And Stout\r\n"),
    ],
)
def test_encode_response_head_fills_a_missing_reason(status, line):
    # nginx < 1.25.3 forwards an empty reason to the client.
    assert encode_response_head(status, []) == line + b"\r\n"


def test_encode_response_head_reuses_lines_without_changing_them():
    # Checked lines are kept by (name, value); the result is the same every time,
    # bad headers are refused every time, and pairs that are not tuples still work.
    headers = [("Content-Type", "text/plain"), ("Set-Cookie", " a=1; Path=/ ")]
    expected = b"Status: 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1; Path=/\r\n\r\n"
    for _ in range(3):
        assert encode_response_head("200 OK", headers) == expected
        assert encode_response_head("200 OK", [list(pair) for pair in headers]) == expected
        with pytest.raises(ValueError):
            encode_response_head("200 OK", [("Content-Type", "text/plain"), ("X Y", "1")])
        with pytest.raises(ValueError):
            encode_response_head("200 OK", [("X", "a\r\nSet-Cookie: evil=1")])
        with pytest.raises(TypeError):
            encode_response_head("200 OK", [("X", 1)])


def test_encode_response_head_line_cache_is_bounded():
    for number in range(3 * cgi_head._MAX_KEPT_HEADER_LINES):
        head = encode_response_head("200 OK", [("X-N", str(number))])
        assert head == b"Status: 200 OK\r\nX-N: %d\r\n\r\n" % number
        assert len(cgi_head._HEADER_LINES) <= cgi_head._MAX_KEPT_HEADER_LINES
    long_value = "v" * cgi_head._MAX_KEPT_HEADER_LINE
    head = encode_response_head("200 OK", [("X-Long", long_value)])
    assert head == b"Status: 200 OK\r\nX-Long: " + long_value.encode() + b"\r\n\r\n"
    assert ("X-Long", long_value) not in cgi_head._HEADER_LINES


@pytest.mark.parametrize(
    ("status", "line"),
    [
        ("200 OK", b"Status: 200 OK\r\n"),
        ("200", b"Status: 200 OK\r\n"),
        ("200 Fine", b"Status: 200 Fine\r\n"),  # a registered code, another reason
        ("200 ok", b"Status: 200 ok\r\n"),
        ("503 Service Unavailable", b"Status: 503 Service Unavailable\r\n"),
        ("299 Custom", b"Status: 299 Custom\r\n"),
    ],
)
def test_encode_response_head_status_lines_with_and_without_the_table(status, line):
    # Registered statuses come from a prebuilt table, others are parsed each time.
    assert encode_response_head(status, []) == line + b"\r\n"


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("20", []),
        ("2000 OK", []),
        ("OK", []),
        ("", []),
        ("200OK", []),
        (" 200 OK", []),
        ("099 Low", []),
        ("200 OK\r\nX-Injected: 1", []),
        ("200 O\nK", []),
        ("200 OK", [("X", "a\r\nSet-Cookie: evil=1")]),
        ("200 OK", [("X", "a\nb")]),
        ("200 OK", [("X", "a\rb")]),
        ("200 OK", [("X", "a\0b")]),
        ("200 OK", [("X\r\nY", "1")]),
        ("200 OK", [("X:Y", "1")]),
        ("200 OK", [("X Y", "1")]),
        ("200 OK", [("X\tY", "1")]),
        ("200 OK", [("", "1")]),
        ("200 OK", [("X", "\u20ac")]),
        ("200 OK", [("\u20ac", "1")]),
        ("200 \u20ac", []),
    ],
)
def test_encode_response_head_refuses_bad_input(status, headers):
    with pytest.raises(ValueError):
        encode_response_head(status, headers)


# ---------------------------------------------------------------- parse_response_head


@pytest.mark.parametrize(
    ("data", "status", "reason", "headers", "body"),
    [
        (b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
         404, "Not Found", [("Content-Type", "text/plain")], b"nope"),
        (b"HTTP/1.1 201 Created\r\nX: y\r\n\r\nbody", 201, "Created", [("X", "y")], b"body"),
        (b"HTTP/1.0 204\r\n\r\n", 204, "No Content", [], b""),
        (b"Location: /next\r\n\r\n", 302, "Found", [("Location", "/next")], b""),
        (b"Status: 200 OK\r\nLocation: /x\r\n\r\n", 200, "OK", [("Location", "/x")], b""),
        (b"Content-Type: text/plain\n\nlf", 200, "OK", [("Content-Type", "text/plain")], b"lf"),
        (b"status:   503   \r\n\r\n", 503, "Service Unavailable", [], b""),
        (b"X:y\r\n\n\r\n", 200, "OK", [("X", "y")], b"\r\n"),
        (b"\r\nno headers", 200, "OK", [], b"no headers"),
        (b"\nno headers", 200, "OK", [], b"no headers"),
    ],
)
def test_parse_response_head(data, status, reason, headers, body):
    head = parse_response_head(data)
    assert (head.status, head.reason, head.headers) == (status, reason, headers)
    assert data[head.body_offset :] == body


def test_parse_response_head_round_trips_encode_response_head():
    headers = [("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    data = encode_response_head("403 Forbidden", headers)
    assert parse_response_head(data + b"x") == ResponseHead(403, "Forbidden", headers, len(data))


def test_parse_response_head_waits_for_the_blank_line():
    data = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    for cut in range(len(data)):
        assert parse_response_head(data[:cut]) is None, cut
    assert parse_response_head(data) is not None


@pytest.mark.parametrize(
    "data",
    [
        b"Status: 2000\r\n\r\n",
        b"Status: abc\r\n\r\n",
        b"Status: 200 OK\r\nStatus: 404 Not Found\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nStatus: 200 OK\r\n\r\n",
        b"HTTP/1.1 xyz\r\n\r\n",
        b"no colon here\r\n\r\n",
        b": no name\r\n\r\n",
        b"Name with space: 1\r\n\r\n",
        b"X: 1\r\n folded\r\n\r\n",
    ],
)
def test_parse_response_head_refuses_malformed_heads(data):
    with pytest.raises(ValueError):
        parse_response_head(data)


def test_parse_response_head_max_size():
    data = b"X: " + b"a" * 100 + b"\r\n\r\n"
    assert parse_response_head(data, max_size=len(data)) is not None
    with pytest.raises(ValueError):
        parse_response_head(data, max_size=len(data) - 1)
    # Without a blank line, the verdict comes as soon as max_size bytes are in.
    assert parse_response_head(data[:50], max_size=51) is None
    with pytest.raises(ValueError):
        parse_response_head(data[:50], max_size=50)


def test_defaults_are_the_documented_numbers():
    # Other modules (conf.py defaults, README) quote these.
    assert DEFAULT_MAX_HEADER_SIZE == 65536
    assert DEFAULT_MAX_HEADERS == 1000


def test_encode_response_head_trims_optional_whitespace_around_values():
    # Django's Set-Cookie values arrive as " name=value; Path=/".
    head = protocol.encode_response_head("200 OK", [("Set-Cookie", " a=1; Path=/\t")])
    assert head == b"Status: 200 OK\r\nSet-Cookie: a=1; Path=/\r\n\r\n"


# ---------------------------------------------------------------- Gemini front-ends

# Molly Brown (a Gemini server) sends its variables in a random order on every request:
# CONTENT_LENGTH is usually not first. Only a request that says SERVER_PROTOCOL=GEMINI
# may do that; everyone else keeps the strict rule.
MOLLY_PAIRS = [
    (b"SERVER_NAME", b"localhost"),
    (b"PATH_INFO", b"/caf\xc3\xa9"),
    (b"QUERY_STRING", b"hello%20world"),
    (b"SERVER_PROTOCOL", b"GEMINI"),
    (b"SCRIPT_PATH", b"/app"),
    (b"CONTENT_LENGTH", b"0"),
    (b"REQUEST_METHOD", b""),
    (b"SCGI", b"1"),
    (b"SERVER_PORT", b"1965"),
]


def _molly_order(start: int) -> list[tuple[bytes, bytes]]:
    """MOLLY_PAIRS rotated: CONTENT_LENGTH lands in every position in turn."""
    return MOLLY_PAIRS[start:] + MOLLY_PAIRS[:start]


@pytest.mark.parametrize("start", range(len(MOLLY_PAIRS)))
@pytest.mark.parametrize("split", ["whole", "byte-at-a-time"])
def test_gemini_request_may_put_content_length_anywhere(start, split):
    data = netstring(_molly_order(start))
    events, error, _ = feed(byte_at_a_time(data) if split != "whole" else [data])
    assert error is None
    assert events[0].content_length == 0
    assert events[0].environ["SERVER_PROTOCOL"] == "GEMINI"
    assert events[0].environ["PATH_INFO"] == "/caf\xc3\xa9"
    assert events[1:] == [EndOfMessage()]
    # The one-buffer path (the server's usual one, C or Python) agrees.
    head = protocol.parse_head(data)
    assert head is not None and head[0] == events[0].environ and head[1] == 0


def test_gemini_request_with_a_body_out_of_order_is_framed_by_its_content_length():
    pairs = [(b"SERVER_PROTOCOL", b"GEMINI"), (b"CONTENT_LENGTH", b"3"), (b"SCGI", b"1")]
    events, error, _ = feed(byte_at_a_time(netstring(pairs, b"abcEXTRA")))
    assert error is None
    assert events[0].content_length == 3
    assert events[1:] == [Data(b"abc"), EndOfMessage()]


# (id, pairs, expected error, whether the error says Gemini)
GEMINI_MALFORMED = [
    # The strict rule stays for everyone who is not a Gemini front-end, whatever
    # SERVER_PROTOCOL says otherwise.
    ("http-out-of-order", [(b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"SCGI", b"1"),
                           (b"CONTENT_LENGTH", b"0")], BadContentLength, False),
    ("no-protocol-out-of-order", [(b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")],
     BadContentLength, False),
    ("gemini-as-a-value-elsewhere", [(b"X", b"SERVER_PROTOCOL"), (b"GEMINI", b""),
                                     (b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")],
     BadContentLength, False),
    ("gemini-without-content-length", [(b"SERVER_PROTOCOL", b"GEMINI"), (b"SCGI", b"1")],
     BadContentLength, True),
    ("gemini-content-length-letters", [(b"SERVER_PROTOCOL", b"GEMINI"), (b"SCGI", b"1"),
                                       (b"CONTENT_LENGTH", b"x")], BadContentLength, True),
    ("gemini-content-length-twice", [(b"SERVER_PROTOCOL", b"GEMINI"), (b"CONTENT_LENGTH", b"0"),
                                     (b"SCGI", b"1"), (b"CONTENT_LENGTH", b"5")],
     DuplicateHeader, True),
    ("gemini-without-scgi", [(b"SERVER_PROTOCOL", b"GEMINI"), (b"CONTENT_LENGTH", b"0")],
     MissingScgiHeader, True),
    ("gemini-first-cl-without-scgi", [(b"CONTENT_LENGTH", b"0"), (b"SERVER_PROTOCOL", b"GEMINI")],
     MissingScgiHeader, True),
    ("http-without-scgi", [(b"CONTENT_LENGTH", b"0"), (b"SERVER_PROTOCOL", b"HTTP/1.1")],
     MissingScgiHeader, False),
]


@pytest.mark.parametrize(
    ("pairs", "error", "gemini"), [row[1:] for row in GEMINI_MALFORMED],
    ids=[row[0] for row in GEMINI_MALFORMED],
)
@pytest.mark.parametrize("split", ["whole", "byte-at-a-time"])
def test_gemini_framing_refusals(pairs, error, gemini, split):
    data = netstring(pairs)
    _, raised, parser = feed(byte_at_a_time(data) if split != "whole" else [data])
    assert type(raised) is error
    assert raised.gemini is gemini
    assert parser.state is State.ERROR
    with pytest.raises(error):
        protocol.parse_head(data)


def test_gemini_body_limit_refusal_says_gemini():
    pairs = [(b"SCGI", b"1"), (b"SERVER_PROTOCOL", b"GEMINI"), (b"CONTENT_LENGTH", b"5")]
    _, raised, _ = feed([netstring(pairs, b"hello")], max_body_size=4)
    assert type(raised) is BodyTooLarge and raised.gemini is True


def test_http_refusal_is_an_http_response():
    import http.client
    import io

    class FakeSocket:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def makefile(self, *args, **kwargs):
            return io.BytesIO(self.data)

    data = protocol.encode_http_refusal(HttpOnScgiPort())
    reply = http.client.HTTPResponse(FakeSocket(data))
    reply.begin()
    assert (reply.status, reply.reason) == (400, "Bad Request")
    assert reply.read().decode().strip() == HttpOnScgiPort.message
