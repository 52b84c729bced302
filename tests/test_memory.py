"""Memory stays flat: big bodies in and out never sit in the server's memory.

A 256 MiB upload read in 64 KiB pieces by ``/upload/`` and a 256 MiB streamed response
from ``/big/?mb=256`` each keep the whole server process (psutil on its PID; the
launcher's ``execv`` keeps the PID) under 100 MiB of RSS, sampled every few ms during
the transfer, and within 30 MiB of its RSS before. The bench runs the same with 1 GiB.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import PeakRSS, rss

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
SIZE = 256 * MiB
RSS_LIMIT = 100 * MiB
GROWTH_LIMIT = 30 * MiB


@pytest.fixture(scope="module")
def srv(start_module_server):
    server = start_module_server("127.0.0.1:0")
    # Warm up both paths once, so imports and first-use caches are in the baseline.
    client.request(server.address, "/big/?mb=1", timeout=10)
    client.request(server.address, "/upload/", method="POST", body=b"w" * MiB, timeout=10)
    return server


def baseline(pid: int) -> int:
    return rss(pid)


def report(name: str, before: int, peak: PeakRSS) -> str:
    return (f"{name}: RSS before {before / MiB:.1f} MiB, peak {peak.peak / MiB:.1f} MiB "
            f"({peak.samples} samples)")


def test_large_upload_read_in_pieces(srv):
    before = baseline(srv.pid)
    block = bytes(range(256)) * 4096  # 1 MiB, sent 256 times: never built whole here
    environ = client.build_environ("/upload/", "POST", extra={
        "CONTENT_TYPE": "application/octet-stream"})
    head = encode_request(environ, b"")
    head = head.replace(b"CONTENT_LENGTH\x000\x00", b"CONTENT_LENGTH\x00%d\x00" % SIZE)
    block_len = len(head.partition(b":")[2]) - 1  # the netstring's length prefix changed
    head = b"%d:" % block_len + head.partition(b":")[2]
    digest = hashlib.sha256()
    with PeakRSS(srv.pid) as peak, client.connect(srv.address, 30) as sock:
        sock.sendall(head)
        for _ in range(SIZE // len(block)):
            sock.sendall(block)
            digest.update(block)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = client.parse_response(b"".join(chunks))
    assert response.status == 200
    assert json.loads(response.body) == {"bytes": SIZE, "sha256": digest.hexdigest()}
    text = report("upload", before, peak)
    print(text)
    assert peak.samples > 10, text
    assert peak.peak < RSS_LIMIT, text
    assert peak.peak - before < GROWTH_LIMIT, text


def test_large_streamed_response(srv):
    before = baseline(srv.pid)
    received = 0
    with PeakRSS(srv.pid) as peak, client.connect(srv.address, 30) as sock:
        sock.sendall(encode_request(client.build_environ("/big/?mb=256")))
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        head, _, rest = first.partition(b"\r\n\r\n")
        received = len(rest)
        while chunk := sock.recv(1024 * 1024):
            received += len(chunk)
    assert head.startswith(b"Status: 200 OK")
    assert received == SIZE
    text = report("download", before, peak)
    print(text)
    assert peak.samples > 10, text
    assert peak.peak < RSS_LIMIT, text
    assert peak.peak - before < GROWTH_LIMIT, text


def test_request_body_is_held_once(start_server):
    # request.body of N bytes costs about N: wsgi.input.read(N) fills one buffer in
    # place instead of joining N bytes of chunks into a second N (2N at the peak).
    server = start_server(env={"DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE": "none"})
    size = 64 * MiB
    body = bytes(range(256)) * (size // 256)
    client.request(server.addresses[0], "/echo/", method="POST", body=body[:2 * MiB],
                   timeout=30)  # warm-up: imports and first-use allocations
    before = baseline(server.pid)
    with PeakRSS(server.pid) as peak:
        response = client.request(server.addresses[0], "/echo/", method="POST", body=body,
                                  headers={"Content-Type": "application/octet-stream"},
                                  timeout=60)
    assert response.status == 200 and response.body == body
    text = report("request.body", before, peak)
    print(text)
    assert peak.samples > 10, text
    # The bytes themselves (echoed without a copy), plus room for the interpreter.
    assert peak.peak - before < size + 24 * MiB, text
