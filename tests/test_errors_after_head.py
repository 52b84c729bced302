"""Errors after the response head went out, and before it.

``/stream-error/`` raises after its first chunk: the head (``200``) and that chunk are
already with the peer, so the server can only stop and close -- the front-end sees a
truncated response. The error is logged once, at ERROR, with the request line and
one traceback; nothing about it reaches the peer. ``/stream-error-early/`` raises
before its first chunk: the server can still answer ``500``, again without a traceback
to the peer.
"""

from __future__ import annotations

import time

import pytest

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

LEAKED = (b"Traceback", b"RuntimeError", b"stream broke", b"views.py", b"File ")


@pytest.fixture(scope="module")
def srv(start_module_server):
    return start_module_server("127.0.0.1:0")


def exchange(address: str, path: str) -> bytes:
    with client.connect(address, 10) as sock:
        sock.sendall(encode_request(client.build_environ(path)))
        sock.settimeout(10)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def settle(server, request_line: str, start: int, timeout: float = 5.0) -> list[str]:
    """Lines since ``start`` once the request's access line (written last) is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.startswith("[") and request_line in line for line in server.lines[start:]):
            break
        time.sleep(0.05)
    time.sleep(0.1)  # a second error line would come right away
    return list(server.lines[start:])


def test_error_after_the_head_truncates_and_is_logged_once(srv):
    mark = len(srv.lines)
    raw = exchange(srv.address, "/stream-error/")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK\r\n")
    assert body == b"first chunk\n"  # then the connection closed: truncated
    for secret in LEAKED:
        assert secret not in raw

    lines = settle(srv, '"GET /stream-error/ HTTP/1.1"', mark)
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, lines
    assert '"GET /stream-error/ HTTP/1.1"' in errors[0]
    assert "after the response head was sent" in errors[0]
    text = "\n".join(lines)
    assert text.count("Traceback") == 1, text
    assert "RuntimeError: stream broke after the first chunk" in text
    assert client.request(srv.address, "/").status == 200


def test_error_before_the_first_chunk_is_a_500(srv):
    mark = len(srv.lines)
    raw = exchange(srv.address, "/stream-error-early/")
    response = client.parse_response(raw)
    assert (response.status, response.body) == (500, b"Internal Server Error")
    for secret in LEAKED:
        assert secret not in raw

    lines = settle(srv, '"GET /stream-error-early/ HTTP/1.1"', mark)
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1 and '"GET /stream-error-early/ HTTP/1.1"' in errors[0], lines
    assert "\n".join(lines).count("Traceback") == 1
    assert client.request(srv.address, "/").status == 200
