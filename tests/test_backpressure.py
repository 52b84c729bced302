"""Backpressure at the connection cap: the server stops accepting, the kernel holds the rest.

With ``--max-connections 2`` and two slow requests in flight, a third peer still
connects (the kernel completes the handshake and queues it in the listen backlog), but
the server does not accept it -- it holds two connections, not three -- and serves it in
full once a slot frees. Nothing is accepted only to be dropped.
"""

from __future__ import annotations

import time

import psutil
import pytest

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)


def send(address: str, path: str):
    sock = client.connect(address, 10)
    sock.sendall(encode_request(client.build_environ(path)))
    return sock


def read_response(sock, timeout: float = 10.0) -> tuple[client.Response, float]:
    """The whole response and the monotonic time it was complete."""
    chunks, deadline = [], time.monotonic() + timeout
    with sock:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                return client.parse_response(b"".join(chunks)), time.monotonic()
            chunks.append(chunk)
    raise AssertionError(f"no complete response in {timeout}s")


def server_connections(pid: int, port: int) -> int:
    """Established connections the server process holds on its listening port."""
    return sum(
        1 for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == port
    )


def test_at_the_cap_the_kernel_backlog_holds_the_next_peer(start_server):
    server = start_server("127.0.0.1:0", "--max-connections", "2")
    port = int(server.address.rpartition(":")[2])
    busy = [send(server.address, "/sleep/?s=2") for _ in range(2)]
    started = time.monotonic()
    time.sleep(0.3)  # both slots are taken

    connect_began = time.monotonic()
    third = send(server.address, "/")  # connects and sends at once: the kernel queues it
    assert time.monotonic() - connect_began < 0.5
    sent_at = time.monotonic()
    time.sleep(0.3)
    # Accepted by the kernel, not by the server: it holds the two slow ones only.
    assert server_connections(server.pid, port) == 2

    # Read (and close, as a front-end does) the slow ones first: a slot is free once
    # the server has seen its peer close.
    slow_done = []
    for sock in busy:
        slept, finished_at = read_response(sock)
        assert (slept.status, slept.body) == (200, b"slept\n")
        slow_done.append(finished_at)
    assert min(slow_done) - started >= 1.9
    response, done_at = read_response(third)
    assert (response.status, response.body) == (200, b"Hello from django-scgi\n")
    assert done_at - sent_at >= 1.4, done_at - sent_at  # it waited for a free slot
    assert done_at - min(slow_done) < 1.0, done_at - min(slow_done)  # and got the first
    assert "Traceback" not in server.output


def test_a_queue_longer_than_the_cap_is_served_in_full(start_server):
    # Ten peers at a cap of two: all ten are answered, none is reset or cut short.
    server = start_server("127.0.0.1:0", "--max-connections", "2")
    started = time.monotonic()
    socks = [send(server.address, "/sleep/?s=0.3") for _ in range(10)]
    done = [read_response(sock, timeout=15) for sock in socks]
    assert [(r.status, r.body) for r, _ in done] == [(200, b"slept\n")] * 10
    # Two at a time: five rounds of 0.3 s, not one.
    assert max(at for _, at in done) - started >= 1.3
    assert "Traceback" not in server.output
