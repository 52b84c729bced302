"""Issue 20, item 1: the server's memory follows the body bytes received, never the
CONTENT_LENGTH a peer claims, and nothing of a failed upload stays behind.

A real ``runscgi`` with ``DATA_UPLOAD_MAX_MEMORY_SIZE`` off (so ``request.body`` reads
whatever is declared); RSS is the server process's, sampled in a thread. Bounds are
generous for a busy machine: the attack cost gigabytes before the fix.
"""

from __future__ import annotations

import socket
import time

import pytest
from helpers import MiB, PeakRSS, assert_healthy, claiming_head, read_until_close, rss

from django_scgi import client

pytestmark = pytest.mark.timeout(90)

GiB = 1024 * MiB
GROWTH_LIMIT = 10 * MiB


@pytest.fixture
def srv(start_server):
    server = start_server("127.0.0.1:0", env={"DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE": "none"})
    # Warm up the paths once, so imports and first-use caches are in the baseline.
    for _ in range(3):
        client.request(server.address, "/echo/", method="POST", body=b"w" * 2 * MiB, timeout=10)
    return server


def claim(address: str, declared: int, sent: bytes, hold: float) -> bytes:
    """Declare ``declared`` body bytes to /echo/, send ``sent``, wait, then end the upload."""
    with client.connect(address, 10) as sock:
        sock.sendall(claiming_head("/echo/", declared) + sent)
        time.sleep(hold)  # the view is reading: a reserving server has allocated by now
        sock.shutdown(socket.SHUT_WR)
        raw, _ = read_until_close(sock, 20)
    return raw


def settled_rss(pid: int, before: int) -> int:
    """RSS once it is back near ``before`` (freeing may lag a moment), or after 3 s."""
    deadline = time.monotonic() + 3
    while (now := rss(pid)) - before >= GROWTH_LIMIT and time.monotonic() < deadline:
        time.sleep(0.1)
    return now


def test_claimed_gigabyte_with_three_bytes_costs_almost_nothing(srv):
    before = rss(srv.pid)
    with PeakRSS(srv.pid, interval=0.01) as peak:
        raw = claim(srv.address, GiB, b"abc", hold=1.0)
    if raw:  # a truncated body is never answered as a success
        assert client.parse_response(raw).status >= 500
    text = f"RSS before {before / MiB:.1f} MiB, peak {peak.peak / MiB:.1f} MiB"
    assert peak.samples > 10, text
    assert peak.peak - before < GROWTH_LIMIT, text
    assert_healthy(srv.address)


def test_sequential_big_claims_do_not_accumulate(srv):
    before = rss(srv.pid)
    for _ in range(5):
        claim(srv.address, 512 * MiB, b"xyz", hold=0.3)
    after = settled_rss(srv.pid, before)
    assert after - before < GROWTH_LIMIT, (before / MiB, after / MiB)
    assert_healthy(srv.address)


def test_failed_upload_leaves_nothing_behind(srv):
    # 48 MiB of a declared 96 MiB really arrive and are buffered, then the peer goes:
    # the buffer must go with the request, not linger in the error's traceback.
    before = rss(srv.pid)
    raw = claim(srv.address, 96 * MiB, b"p" * (48 * MiB), hold=0.5)
    if raw:
        assert client.parse_response(raw).status >= 500
    after = settled_rss(srv.pid, before)
    assert after - before < GROWTH_LIMIT, (before / MiB, after / MiB)
    assert_healthy(srv.address)


def test_growing_buffer_still_holds_the_body_once(srv):
    # request.body of N bytes, sent in full, still costs about N at the peak (the buffer
    # grows in place and is handed over uncopied), and comes back whole.
    size = 48 * MiB
    body = bytes(range(256)) * (size // 256)
    before = rss(srv.pid)
    with PeakRSS(srv.pid) as peak:
        response = client.request(srv.address, "/echo/", method="POST", body=body,
                                  headers={"Content-Type": "application/octet-stream"},
                                  timeout=60)
    assert response.status == 200 and response.body == body
    text = f"RSS before {before / MiB:.1f} MiB, peak {peak.peak / MiB:.1f} MiB"
    assert peak.peak - before < size + 24 * MiB, text
