"""Behaviour of a real ``runscgi`` process over real sockets: TCP and a unix socket.

Every test runs twice, once per transport, against the demo project's views. Requests
are written with ``protocol.encode_request`` (or by hand) on a raw socket, so the tests
see exactly the bytes the server sends, the way a front-end does. No mocks: the server
is a ``manage.py runscgi`` subprocess and Django's own handler serves the views.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import signal
import socket
import subprocess
import time

import pytest
from helpers import REPO, assert_healthy, segments_received

from django_scgi import connection
from django_scgi.client import connect, parse_response
from django_scgi.protocol import encode_request

SAMPLE = REPO / "testproject" / "files" / "sample.txt"
MiB = 1024 * 1024
# Per-socket-operation bound: a wedged server fails the test instead of hanging it.
TIMEOUT = 15.0
# A CSRF secret sent as cookie and header: lets POSTs reach views that are not
# csrf_exempt (Django compares the two; nothing reads the body for that).
CSRF_SECRET = "a" * 32
CSRF = {"HTTP_COOKIE": f"csrftoken={CSRF_SECRET}", "HTTP_X_CSRFTOKEN": CSRF_SECRET}


@pytest.fixture(scope="module", params=["tcp", "unix"])
def srv(request, start_module_server, module_short_tmp):
    """One runscgi per transport, shared by the module's tests."""
    if request.param == "tcp":
        return start_module_server("127.0.0.1:0")
    return start_module_server(f"unix:{module_short_tmp}/s.sock")


# --- helpers -----------------------------------------------------------------------------


def cgi(path: str, method: str = "GET", **extra: str) -> dict[str, str]:
    """The variables a minimal front-end sends for ``path``."""
    environ = {
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "QUERY_STRING": path.partition("?")[2],
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost",
    }
    environ.update(extra)
    return environ


def read_all(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Everything until the server closes; fails the test on a stall."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(256 * 1024)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def raw_exchange(address: str, data: bytes, timeout: float = TIMEOUT) -> bytes:
    with connect(address, timeout) as sock:
        sock.sendall(data)
        return read_all(sock, timeout)


def split_raw(raw: bytes) -> tuple[list[bytes], bytes]:
    """(head lines without their CRLF, body) of a CGI response."""
    end = raw.index(b"\r\n\r\n")
    return raw[:end].split(b"\r\n"), raw[end + 4 :]


def get(address: str, path: str, method: str = "GET", body: bytes = b"", **extra: str):
    return parse_response(raw_exchange(address, encode_request(cgi(path, method, **extra), body)))


def info(address: str, environ: dict[str, str]) -> dict:
    response = parse_response(raw_exchange(address, encode_request(environ)))
    assert response.status == 200, response
    return json.loads(response.body)


def send_in_pieces(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` in irregular pieces, the way a front-end forwards a slow upload."""
    sizes = [1, 7, 100, 4096, 65536, 3, 300_000]
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        sock.sendall(data[offset : offset + size])
        offset += size
        index += 1


def wait_for_line(server, pattern: str, start: int, timeout: float = 10.0) -> str:
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.lines[start:]:
            if regex.search(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(server.lines[start:]))


# --- requests and the environ ------------------------------------------------------------


def test_get_with_query_string(srv):
    data = info(srv.address, cgi("/info/?q=1&q=2&name=caf%C3%A9"))
    assert data["path"] == "/info/"
    assert data["script_name"] == ""
    assert data["method"] == "GET"
    assert data["query"] == {"q": ["1", "2"], "name": ["café"]}
    assert data["full_path"] == "/info/?q=1&q=2&name=caf%C3%A9"


def test_bare_client_sends_only_request_uri(srv):
    # A bare client: no REQUEST_METHOD, PATH_INFO, QUERY_STRING, SERVER_NAME or Host.
    data = info(srv.address, {"REQUEST_URI": "/info/caf%C3%A9/x%20y?a=1&b=x%20y"})
    assert data["path"] == "/info/café/x y"
    assert data["method"] == "GET"
    assert data["query"] == {"a": ["1"], "b": ["x y"]}
    assert data["host"] == "localhost"
    assert data["url_scheme"] == "http"


# --- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, MiB, 8 * MiB], ids=["0B", "1MiB", "8MiB"])
def test_upload_in_pieces(srv, size):
    body = random.Random(size).randbytes(size)
    request = encode_request(cgi("/upload/", "POST", CONTENT_TYPE="application/octet-stream"), body)
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(request[: len(request) - size])  # the head alone first,
        send_in_pieces(sock, body)  # then the body in pieces
        response = parse_response(read_all(sock))
    assert response.status == 200
    assert json.loads(response.body) == {"bytes": size, "sha256": hashlib.sha256(body).hexdigest()}


def test_input_never_reads_past_content_length(srv):
    body = random.Random(1).randbytes(300 * 1024)
    extra = b"EXTRA" * 1000
    request = encode_request(cgi("/upload/", "POST"), body) + extra
    response = parse_response(raw_exchange(srv.address, request))
    assert response.status == 200
    assert json.loads(response.body) == {
        "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
    }
    assert_healthy(srv.address)


def test_bytes_after_the_body_do_not_cost_the_answer(srv):
    # nginx < 1.29.6 with scgi_request_buffering off sends CONTENT_LENGTH=0 and then the
    # body. The bytes are ignored, and the answer must still reach the peer: closing
    # over unread bytes would reset the connection and the peer would lose it.
    request = encode_request(cgi("/upload/", "POST")) + b"z" * MiB
    response = parse_response(raw_exchange(srv.address, request))
    assert response.status == 200
    assert json.loads(response.body) == {"bytes": 0, "sha256": hashlib.sha256().hexdigest()}


@pytest.mark.parametrize("extra", [
    {"SERVER_PROTOCOL": "HTTP/2.0"},  # an HTTP/2 body may come with no length at all
    {"HTTP_TRANSFER_ENCODING": "chunked"},  # nginx < 1.29.6, scgi_request_buffering off
], ids=["http2", "chunked"])
def test_a_body_behind_a_bodiless_head_does_not_cost_the_answer(srv, extra):
    # The body arrives while the view runs, after the server's first read took the head:
    # only the unread-bytes check before the close (a lingering close then) keeps the
    # answer from a reset. For HTTP/1.x without Transfer-Encoding the check is spared:
    # nothing can follow such a request.
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(encode_request(cgi("/sleep/?s=0.3", **extra)))
        time.sleep(0.1)
        sock.sendall(b"z" * 1000)
        response = parse_response(read_all(sock))
    assert (response.status, response.body) == (200, b"slept\n")


@pytest.mark.parametrize("size", [0, 100_000, 2 * MiB + 3], ids=["0B", "100KB", "2MiB"])
def test_request_body_whole_in_pieces(srv, size):
    # request.body: read(N) at once; from 1 MiB on it fills one buffer (BodyInput).
    body = random.Random(size).randbytes(size)
    request = encode_request(cgi("/echo/", "POST", CONTENT_TYPE="application/x-test"), body)
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(request[: len(request) - size])
        send_in_pieces(sock, body)
        response = parse_response(read_all(sock))
    assert (response.status, response.body) == (200, body)


@pytest.mark.parametrize(("path", "size"), [("/upload/", 100_000), ("/echo/", 2 * MiB)])
def test_truncated_body_is_not_answered_as_a_success(srv, path, size):
    block = _block(size, path)
    head = b"%d:%b," % (len(block), block)
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(head + b"x" * 1000)
        sock.shutdown(socket.SHUT_WR)
        try:
            raw = read_all(sock)
        except ConnectionResetError:
            raw = b""
    if raw:  # a closed connection is a fine answer too
        assert parse_response(raw).status >= 500
    assert_healthy(srv.address)


def _block(content_length: int, path: str) -> bytes:
    pairs = [("CONTENT_LENGTH", str(content_length)), ("SCGI", "1"),
             *cgi(path, "POST").items()]
    return b"".join(f"{name}\0{value}\0".encode() for name, value in pairs)


# --- the Apache deadlock rule ----------------------------------------------------------------


def test_unread_body_sent_whole_before_reading_post(srv):
    # Apache writes the whole body before it reads anything. /sleep/ never reads the
    # body: the server must discard it, or the peer gets a reset instead of its answer.
    # (The answer is small; the next test is the one that needs the discard to come
    # before the head.)
    body = b"b" * (8 * MiB)
    request = encode_request(cgi("/sleep/?s=0", "POST", **CSRF), body)
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(request)  # all of it, reading nothing
        response = parse_response(read_all(sock))
    assert (response.status, response.body) == (200, b"slept\n")


def test_unread_body_before_a_large_response(srv):
    # The deadlock itself: 8 MiB in, 4 MiB out, the view reads nothing. Without the
    # discard both sides block in send() until the socket timeout.
    body = b"b" * (8 * MiB)
    request = encode_request(cgi("/big/?mb=4", "GET"), body)
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(request)
        response = parse_response(read_all(sock))
    assert response.status == 200
    assert response.body == b"x" * (4 * MiB)


# --- streaming -------------------------------------------------------------------------------


def test_streaming_sends_each_chunk_as_produced(srv):
    request = encode_request(cgi("/stream/?n=3&delay=0.7"))
    arrivals: list[float] = []  # wall-clock arrival of each complete chunk line
    data = b""
    with connect(srv.address, TIMEOUT) as sock:
        sent = time.time()
        sock.sendall(request)
        sock.settimeout(TIMEOUT)
        while chunk := sock.recv(65536):
            data += chunk
            lines = data.count(b"\n", data.find(b"\r\n\r\n") + 4) if b"\r\n\r\n" in data else 0
            arrivals.extend([time.time()] * (lines - len(arrivals)))
    head_lines, body = split_raw(data)
    assert head_lines[0] == b"Status: 200 OK"
    assert b"X-Accel-Buffering: no" in head_lines
    assert not any(line.lower().startswith(b"transfer-encoding") for line in head_lines)
    # Raw chunks, no chunked framing (no hex length lines, no terminating "0").
    assert re.fullmatch(rb"(chunk \d at \d+\.\d+\n){3}", body), body
    produced = [float(t) for t in re.findall(rb"at (\d+\.\d+)", body)]
    assert len(arrivals) == 3
    assert arrivals[0] - sent < 0.5  # the head and chunk 0 came at once...
    assert arrivals[0] < produced[2] - 1.0  # ...well before the last chunk was made
    for earlier, later in itertools.pairwise(arrivals):
        assert 0.5 < later - earlier < 1.2  # one arrival per delay of 0.7 s
    for made, arrived in zip(produced, arrivals):
        assert arrived - made < 0.3  # each chunk left as soon as it was produced


def test_no_accel_buffering_header_on_plain_responses(srv):
    head_lines, _ = split_raw(raw_exchange(srv.address, encode_request(cgi("/"))))
    assert not any(line.lower().startswith(b"x-accel-buffering") for line in head_lines)


def test_peer_disconnect_mid_stream_is_quiet(srv):
    mark = len(srv.lines)
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(encode_request(cgi("/stream/?n=50&delay=0.05")))
        sock.settimeout(TIMEOUT)
        data = b""
        while b"chunk 0" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    # The access line is written once the server stopped the response; its last field
    # is the time taken: well under the 2.45 s the whole stream would take.
    line = wait_for_line(srv, r'"GET /stream/\?n=50&delay=0.05 HTTP/1.1"', mark)
    assert float(line.split()[-1]) < 1.5, line
    assert_healthy(srv.address)
    output = "\n".join(srv.lines[mark:])
    assert "ERROR" not in output and "Traceback" not in output, output


def test_response_ends_before_the_application_cleans_up(srv):
    """The connection closes once the response is sent; the iterable's close() runs after.

    For SCGI the FIN ends the response: a slow close() (Django's request_finished
    handlers, a view's cleanup) must not hold it back. /slow-cleanup/'s close() sleeps.
    """
    finished_before = json.loads(get(srv.address, "/stats/").body)["request_finished"]
    started = time.monotonic()
    response = get(srv.address, "/slow-cleanup/?s=2")
    took = time.monotonic() - started
    assert response.status == 200 and response.body == b"answered\n", response
    assert took < 1.0, f"the response ended {took:.2f} s after the request: after close()"
    # close() did run: Django sent request_finished for it (and for the first /stats/).
    deadline = time.monotonic() + TIMEOUT
    while json.loads(get(srv.address, "/stats/").body)["request_finished"] < finished_before + 2:
        assert time.monotonic() < deadline, "the response's close() never ran"
        time.sleep(0.05)


def _segments_until_eof(address: str, path: str) -> tuple[int, bytes]:
    """(TCP segments the client received, response) for one request to ``path``."""
    with connect(address, TIMEOUT) as sock:
        sock.sendall(encode_request(cgi(path)))
        response = read_all(sock)
        return segments_received(sock), response


@pytest.mark.parametrize("srv", ["tcp"], indirect=True)  # a unix socket has no segments
def test_a_complete_response_ends_in_the_segment_that_carries_the_fin(srv):
    """A response whose first send is all its Content-Length declares goes out with
    MSG_MORE, so its last bytes and the FIN that ends it travel together: one packet,
    one wake-up and one ACK of the front-end less. A streaming response never waits
    in the kernel: its chunk goes out at once and the FIN after it."""
    if connection._c_send_more is None:
        pytest.skip("django_scgi._syscalls is not built, or the platform has no MSG_MORE")
    complete, response = _segments_until_eof(srv.address, "/")
    assert response.endswith(b"\r\n\r\nHello from django-scgi\n")
    streamed, response = _segments_until_eof(srv.address, "/stream/?n=1&delay=0")
    assert response.endswith(b"\n") and b"chunk 0 at" in response
    assert complete == streamed - 1


# --- response heads ----------------------------------------------------------------------------


def test_head_request_has_no_body(srv):
    raw = raw_exchange(srv.address, encode_request(cgi("/", "HEAD")))
    head_lines, body = split_raw(raw)
    assert head_lines[0] == b"Status: 200 OK"
    assert b"Content-Length: 23" in head_lines  # len("Hello from django-scgi\n")
    assert body == b""


@pytest.mark.parametrize("path", ["/file/", "/stream/?n=2&delay=0", "/big/?mb=1"])
def test_head_request_for_files_and_streams_has_no_body(srv, path):
    raw = raw_exchange(srv.address, encode_request(cgi(path, "HEAD")))
    head_lines, body = split_raw(raw)
    assert head_lines[0] == b"Status: 200 OK"
    assert body == b""
    if path == "/file/":
        assert f"Content-Length: {SAMPLE.stat().st_size}".encode() in head_lines


def test_view_error_gives_a_500_without_traceback(srv):
    mark = len(srv.lines)
    raw = raw_exchange(srv.address, encode_request(cgi("/error/")))
    head_lines, _ = split_raw(raw)
    assert head_lines[0] == b"Status: 500 Internal Server Error"
    for secret in (b"Traceback", b"RuntimeError", b"fails on purpose", b"views.py"):
        assert secret not in raw
    wait_for_line(srv, r'"GET /error/ HTTP/1.1" 500', mark)
    assert_healthy(srv.address)


def test_error_after_the_head_resets_the_connection(srv):
    # The head already went out as 200: the server can only end the connection. Over
    # TCP it resets it, so the front-end sees a failed upstream rather than a
    # complete-looking response (a unix socket has no reset: the body just ends short).
    # Nothing about the error goes to the peer.
    received, reset = b"", False
    with connect(srv.address, TIMEOUT) as sock:
        sock.sendall(encode_request(cgi("/stream-error/")))
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            reset = True
    if srv.address.startswith("unix:"):
        assert received.startswith(b"Status: 200 OK")
        assert received.endswith(b"\r\n\r\nfirst chunk\n")
    else:
        assert reset
        assert received == b"" or received.startswith(b"Status: 200 OK")
    assert b"Traceback" not in received and b"RuntimeError" not in received
    assert_healthy(srv.address)


def test_several_set_cookie_headers_stay_separate(srv):
    head_lines, _ = split_raw(raw_exchange(srv.address, encode_request(cgi("/cookies/"))))
    cookies = [line.partition(b":") for line in head_lines]
    # Values compared without their leading blanks: Django hands Set-Cookie values over
    # with a leading space (Morsel.output(header="")), which is optional whitespace.
    assert [value.strip() for name, _, value in cookies if name == b"Set-Cookie"] == [
        b"first=1; Path=/", b"second=2; Path=/", b"third=3; Path=/",
    ]


def test_redirect_has_an_explicit_status(srv):
    head_lines, _ = split_raw(raw_exchange(srv.address, encode_request(cgi("/redirect/"))))
    assert head_lines[0] == b"Status: 302 Found"
    assert b"Location: /" in head_lines


@pytest.mark.parametrize("path", [
    "/", "/json/", "/stream/?n=2&delay=0", "/file/", "/redirect/", "/cookies/", "/error/",
    "/no-such-page/", "/big/?mb=1",
])
def test_response_head_is_exact_cgi(srv, path):
    raw = raw_exchange(srv.address, encode_request(cgi(path)))
    assert b"\r\n\r\n" in raw
    head = raw[: raw.index(b"\r\n\r\n")]
    assert re.match(rb"Status: [1-5][0-9]{2} [A-Za-z][^\r\n]*\r\n", head + b"\r\n"), head
    # CRLF everywhere: no bare CR or LF inside the head.
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")
    lines = head.split(b"\r\n")
    for line in lines[1:]:
        assert re.fullmatch(rb"[!-9;-~]+: [^\r\n]*", line), line  # no space before ':'
    names = {line.partition(b":")[0].lower() for line in lines[1:]}
    assert not names & {b"status", b"transfer-encoding", b"connection", b"keep-alive"}


# --- files -------------------------------------------------------------------------------------


def test_file_response_body(srv):
    response = get(srv.address, "/file/")
    expected = SAMPLE.read_bytes()
    assert response.status == 200
    assert response.header("Content-Length") == str(len(expected))
    assert response.body == expected


def test_file_response_uses_sendfile(srv, tmp_path):
    import shutil

    if not shutil.which("strace"):
        pytest.skip("strace is not installed; body equality is checked above")
    trace = tmp_path / "trace.txt"
    tracer = subprocess.Popen(
        ["strace", "-f", "-e", "trace=sendfile,setsockopt", "-o", str(trace),
         "-p", str(srv.pid)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )
    try:
        attached = tracer.stderr.readline()  # "strace: Process N attached"
        if b"attached" not in attached:
            pytest.skip(f"strace cannot attach here: {attached!r}")
        response = get(srv.address, "/file/")
    finally:
        tracer.send_signal(signal.SIGTERM)  # strace detaches and leaves the server running
        tracer.wait(10)
        tracer.stderr.close()
    assert response.body == SAMPLE.read_bytes()
    calls = trace.read_text()
    sent = [int(n) for n in re.findall(r"sendfile\(.*\) = (\d+)", calls)]
    assert sum(sent) == SAMPLE.stat().st_size, calls
    if not srv.address.startswith("unix:"):  # each chunk leaves at once: no Nagle delay
        assert re.search(r"setsockopt\(\d+, SOL_TCP, TCP_NODELAY, \[1\]", calls), calls
    assert_healthy(srv.address)


def test_file_response_to_a_slow_reader_waits_for_the_socket(start_server, tmp_path):
    # A file larger than the socket buffers makes sendfile() hit EAGAIN, so the server
    # must wait for the peer to drain them (the waiting path, not just the fast one).
    data = random.Random(7).randbytes(24 * MiB)
    (tmp_path / "big.bin").write_bytes(data)
    server = start_server("127.0.0.1:0", env={"PROTECTED_FILES_DIR": str(tmp_path)})
    received = bytearray()
    with connect(server.address, TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(encode_request(cgi("/file/", QUERY_STRING="name=big.bin")))
        time.sleep(0.5)  # let the server fill the buffers and block
        while chunk := sock.recv(1024 * 1024):
            received += chunk
    response = parse_response(bytes(received))
    assert response.status == 200
    assert response.body == data


def test_the_shared_empty_body_stays_empty():
    # Every bodiless request gets the same wsgi.input object: nothing an application
    # can call on it may change it (or the next request would see the change).
    from django_scgi.server.body import NO_BODY as _NO_BODY

    def state():
        return (_NO_BODY.bytes_read, _NO_BODY.timed_out, _NO_BODY.remaining,
                _NO_BODY._pending, _NO_BODY._eof)

    before = state()
    assert (_NO_BODY.read(), _NO_BODY.read(10), _NO_BODY.read(None)) == (b"", b"", b"")
    assert (_NO_BODY.readline(), _NO_BODY.readline(5), _NO_BODY.readlines()) == (b"", b"", [])
    assert list(_NO_BODY) == [] and _NO_BODY.discard(0, 1.0)
    assert state() == before == (0, False, 0, b"", True)
