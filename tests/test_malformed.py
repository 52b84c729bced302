"""Malformed SCGI requests against a real ``runscgi``: refused cleanly, server unharmed.

Each request goes over a raw TCP socket. The answer must be a clean refusal -- a
``Status: 4xx`` head with a short plain-text body, never a traceback -- or a clean
close; it must come at once (the server must not wait for bytes that a valid request
would need), be logged once at WARNING with the peer's address, and the same server
must then answer a good request.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import time

import pytest
from helpers import netstring

from django_scgi.client import connect, parse_response
from django_scgi.protocol import encode_request

TIMEOUT = 10.0
# A refusal must not wait for more input: the default header timeout is 15 s, so an
# answer within this bound was not waiting for anything.
AT_ONCE = 1.0


@pytest.fixture(scope="module")
def srv(start_module_server):
    """Default limits."""
    return start_module_server("127.0.0.1:0")


@pytest.fixture(scope="module")
def limited(start_module_server):
    """Small limits, to test them without sending megabytes."""
    return start_module_server(
        "127.0.0.1:0", "--max-header-size", "1024", "--max-body-size", "65536",
        "--header-timeout", "1",
    )


# --- requests ---------------------------------------------------------------------------


def block(*pairs: tuple[str, str]) -> bytes:
    return b"".join(f"{name}\0{value}\0".encode("latin-1") for name, value in pairs)


CL0, SCGI1, GET = ("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("REQUEST_METHOD", "GET")
URI = ("REQUEST_URI", "/")

# (id, bytes sent, status expected)
REFUSED = [
    ("letters-in-length", b"abc:" + block(CL0, SCGI1) + b",", 400),
    ("huge-length", b"999999999:", 431),
    ("leading-zero", b"01:", 400),
    ("empty-length", b":,", 400),
    ("sign-in-length", b"+5:" + block(CL0, SCGI1) + b",", 400),
    ("missing-comma", netstring(block(CL0, SCGI1, URI), b";"), 400),
    ("odd-field-count", netstring(block(CL0, SCGI1) + b"REQUEST_METHOD\0"), 400),
    ("not-nul-terminated", netstring(block(CL0) + b"SCGI\x001"), 400),
    ("empty-name", netstring(block(CL0, SCGI1, ("", "x"))), 400),
    ("missing-content-length", netstring(block(SCGI1, GET, URI)), 400),
    ("non-numeric-content-length", netstring(block(("CONTENT_LENGTH", "ten"), SCGI1)), 400),
    ("negative-content-length", netstring(block(("CONTENT_LENGTH", "-1"), SCGI1)), 400),
    ("empty-content-length", netstring(block(("CONTENT_LENGTH", ""), SCGI1)), 400),
    ("content-length-not-first", netstring(block(SCGI1, CL0, GET, URI)), 400),
    ("missing-scgi", netstring(block(CL0, GET, URI)), 400),
    ("scgi-2", netstring(block(CL0, ("SCGI", "2"), GET, URI)), 400),
    ("empty-netstring", b"0:,", 400),
    ("duplicate-content-length", netstring(block(CL0, SCGI1, CL0, URI)), 400),
    ("duplicate-scgi", netstring(block(CL0, SCGI1, SCGI1, URI)), 400),
    ("header-block-over-default-limit", b"70000:" + b"x" * 100, 431),
    ("too-many-headers",
     netstring(block(CL0, SCGI1, *((f"HTTP_X{i}", "v") for i in range(1001)))), 431),
    ("binary-garbage", b"\xff" + random.Random(20261121).randbytes(4095), 400),
    ("http-request-line", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    ("tls-client-hello", bytes.fromhex("16030100f1010000ed0303") + bytes(64), 400),
]


# --- helpers ------------------------------------------------------------------------------


def send_raw(address: str, data: bytes, *, shut_wr: bool = False) -> tuple[bytes, float, int]:
    """(everything the server sent, seconds until it closed, our local port)."""
    with connect(address, TIMEOUT) as sock:
        port = sock.getsockname()[1]
        started = time.monotonic()
        sock.sendall(data)
        if shut_wr:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks), time.monotonic() - started, port


def assert_clean_refusal(raw: bytes, status: int) -> None:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw
    lines = head.split(b"\r\n")
    # A CGI head; an HTTP/1.0 one for a peer that spoke HTTP (curl shows that one).
    assert re.fullmatch(rb"(?:Status:|HTTP/1\.0) %d [A-Z][A-Za-z ]+" % status, lines[0]), lines[0]
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert headers[b"Content-Type"].startswith(b"text/plain")
    assert int(headers[b"Content-Length"]) == len(body)
    assert 0 < len(body) < 200 and body.isascii(), body
    assert b"Traceback" not in raw and b"Error:" not in body


def assert_serves(address: str) -> None:
    request = encode_request({"REQUEST_METHOD": "GET", "REQUEST_URI": "/"})
    raw, _, _ = send_raw(address, request)
    response = parse_response(raw)
    assert (response.status, response.body) == (200, b"Hello from django-scgi\n")


def peer_lines(server, port: int, start: int) -> list[str]:
    return [line for line in server.lines[start:] if f"127.0.0.1:{port}" in line]


def assert_logged_once(server, port: int, start: int) -> None:
    deadline = time.monotonic() + 5
    while not peer_lines(server, port, start) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # a second line for the same peer would come right after the first
    lines = peer_lines(server, port, start)
    assert len(lines) == 1, server.lines[start:]
    assert "WARNING" in lines[0] and "Refused" in lines[0], lines[0]
    assert "Traceback" not in "\n".join(server.lines[start:])


# --- tests --------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "status"), [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_refused_at_once(srv, data, status):
    mark = len(srv.lines)
    raw, elapsed, port = send_raw(srv.address, data)
    assert elapsed < AT_ONCE
    assert_clean_refusal(raw, status)
    assert_logged_once(srv, port, mark)
    assert_serves(srv.address)


def test_truncated_header_then_close(srv):
    mark = len(srv.lines)
    raw, elapsed, port = send_raw(srv.address, b"60:CONTENT_LENGTH\x000\x00SC", shut_wr=True)
    assert elapsed < AT_ONCE
    if raw:  # a refusal or a plain close are both clean
        assert_clean_refusal(raw, 400)
        assert_logged_once(srv, port, mark)
    assert_serves(srv.address)


def test_truncated_length_prefix_then_close(srv):
    raw, elapsed, _ = send_raw(srv.address, b"12", shut_wr=True)
    assert elapsed < AT_ONCE
    if raw:
        assert_clean_refusal(raw, 400)
    assert_serves(srv.address)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_close_before_the_first_byte_is_quiet(srv, reset):
    # Apache connects and closes without a byte when it refuses a chunked upload.
    mark = len(srv.lines)
    with connect(srv.address, TIMEOUT) as sock:
        port = sock.getsockname()[1]
        if reset:  # SO_LINGER 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert_serves(srv.address)
    time.sleep(0.2)
    assert peer_lines(srv, port, mark) == []
    assert not [line for line in srv.lines[mark:] if "WARNING" in line or "ERROR" in line]


def test_header_block_over_configured_limit(limited):
    mark = len(limited.lines)
    payload = block(CL0, SCGI1, URI, ("HTTP_X_PAD", "p" * 2000))
    assert 2048 <= len(payload) < 2100
    raw, elapsed, port = send_raw(limited.address, netstring(payload))
    assert elapsed < AT_ONCE
    assert_clean_refusal(raw, 431)
    assert_logged_once(limited, port, mark)
    assert_serves(limited.address)


def test_header_block_at_configured_limit_is_served(limited):
    payload = block(CL0, SCGI1, ("REQUEST_URI", "/"))
    payload += block(("HTTP_X_PAD", "p" * (1024 - len(payload) - len("HTTP_X_PAD") - 2)))
    assert len(payload) == 1024
    raw, _, _ = send_raw(limited.address, netstring(payload))
    assert parse_response(raw).status == 200


def test_body_over_configured_limit_is_refused_before_it_is_sent(limited):
    mark = len(limited.lines)
    head = netstring(block(("CONTENT_LENGTH", str(10 * 1024 * 1024)), SCGI1,
                           ("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/upload/")))
    raw, elapsed, port = send_raw(limited.address, head)  # no body at all
    assert elapsed < AT_ONCE
    assert_clean_refusal(raw, 413)
    assert_logged_once(limited, port, mark)
    assert_serves(limited.address)


def test_body_at_configured_limit_is_served(limited):
    request = encode_request({"REQUEST_METHOD": "POST", "REQUEST_URI": "/upload/"},
                             b"y" * 65536)
    raw, _, _ = send_raw(limited.address, request)
    response = parse_response(raw)
    assert response.status == 200 and b'"bytes": 65536' in response.body


def test_slow_header_is_closed_after_the_header_timeout(limited):
    mark = len(limited.lines)
    raw, elapsed, port = send_raw(limited.address, b"40:CONTENT_LENGTH\x00")
    assert raw == b""
    assert 0.8 < elapsed < 5.0  # --header-timeout 1
    deadline = time.monotonic() + 5
    while not peer_lines(limited, port, mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = peer_lines(limited, port, mark)
    assert len(lines) == 1 and "WARNING" in lines[0], limited.lines[mark:]
    assert_serves(limited.address)
