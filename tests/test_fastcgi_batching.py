"""Held final writes on kept FastCGI connections (server/fcgi_batch.py), against a real
``runscgi --protocol fastcgi`` and django_scgi.fastcgi_client.

To have several kept connections ready in one pass of the server's event loop without
relying on timing, the server is stopped (SIGSTOP) while the requests are sent and
continued afterwards: its next ``epoll_wait`` returns them all. ``--log-level debug``
makes the server log each batch it writes ("Wrote N held FastCGI response(s).").
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from django_scgi import fastcgi
from django_scgi.client import build_environ
from django_scgi.fastcgi_client import Connection

pytestmark = pytest.mark.timeout(120)

HELD = re.compile(r"Wrote (\d+) held FastCGI response")


def fcgi_server(start_server, *args: str):
    return start_server("--protocol", "fastcgi", "127.0.0.1:0", "--log-level", "debug", *args)


def send_request(conn: Connection, path: str) -> None:
    cgi = build_environ(path, "GET")
    cgi["CONTENT_LENGTH"] = "0"
    conn.begin(1, cgi)
    conn.send_body(1, b"", end=True)


def path_of(conn: Connection) -> str:
    exchange = conn.read_exchange(1)
    assert exchange.end is not None, "no END_REQUEST"
    assert exchange.end.protocol_status == fastcgi.ProtocolStatus.REQUEST_COMPLETE
    body = exchange.stdout.split(b"\r\n\r\n", 1)[1]
    return str(json.loads(body)["path"])


@contextmanager
def stopped(server) -> Iterator[None]:
    """The server process stopped for the block: what is sent waits in its sockets."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def batches(server) -> list[int]:
    return [int(n) for n in HELD.findall(server.output)]


@contextmanager
def kept_connections(server, count: int) -> Iterator[list[Connection]]:
    """``count`` connections, each kept after a first request: the next are follow-ups."""
    connections = [Connection(server.address, timeout=30) for _ in range(count)]
    try:
        for conn in connections:
            assert conn.request("/").status == 200
        yield connections
    finally:
        for conn in connections:
            conn.close()


def test_responses_ready_together_are_written_together_and_all_arrive(start_server):
    server = fcgi_server(start_server)
    with kept_connections(server, 6) as connections:
        assert batches(server) == [], server.output  # one request at a time: nothing is ever held
        # Rounds until one batch had several responses: a batch spans at most 1 ms
        # (CLOSE_HOLD), which a slow machine may cut into batches of one now and then.
        for round_ in range(10):
            with stopped(server):
                for index, conn in enumerate(connections):
                    send_request(conn, f"/info/{round_}-{index}")
            for index, conn in enumerate(connections):
                assert path_of(conn) == f"/info/{round_}-{index}"
            assert server.wait_for_output("held FastCGI response"), server.output
            if max(batches(server)) >= 2:
                break
        assert max(batches(server)) >= 2, server.output
        # None past close_batch (8) - 1.
        assert max(batches(server)) <= 7
        for conn in connections:  # the kept connections serve on
            assert conn.request("/").status == 200


def test_close_batch_1_holds_nothing(start_server):
    server = fcgi_server(start_server, "--close-batch", "1")
    with kept_connections(server, 4) as connections:
        with stopped(server):
            for index, conn in enumerate(connections):
                send_request(conn, f"/info/{index}")
        assert [path_of(conn) for conn in connections] == [f"/info/{i}" for i in range(4)]
        assert batches(server) == []


def test_a_lone_client_is_never_held(start_server):
    server = fcgi_server(start_server)
    with Connection(server.address) as conn:
        for index in range(30):
            send_request(conn, f"/info/{index}")
            assert path_of(conn) == f"/info/{index}"
    assert batches(server) == []  # each written at once: nothing else was ever ready


def test_order_per_connection_is_kept_when_requests_follow_a_held_one(start_server):
    server = fcgi_server(start_server)
    with kept_connections(server, 4) as connections:
        with stopped(server):
            for index, conn in enumerate(connections):
                # Two requests back to back on each (the same id once the first ended):
                # the second is read while the first's response may be held.
                send_request(conn, f"/info/a{index}")
                send_request(conn, f"/info/b{index}")
        for index, conn in enumerate(connections):
            assert path_of(conn) == f"/info/a{index}"
            assert path_of(conn) == f"/info/b{index}"
        assert batches(server), server.output


def test_sigterm_with_held_responses_delivers_them_then_closes(start_server):
    server = fcgi_server(start_server, "--graceful-timeout", "30")
    with kept_connections(server, 6) as connections:
        with stopped(server):
            for index, conn in enumerate(connections):
                send_request(conn, f"/info/{index}")
            server.signal(signal.SIGTERM)  # delivered with the requests on SIGCONT
        for index, conn in enumerate(connections):
            assert path_of(conn) == f"/info/{index}"
            conn.sock.settimeout(20)
            assert conn.sock.recv(1) == b""  # then closed: the server stops
        assert server.wait(20) == 0
        assert batches(server), server.output  # some were held as the server stopped
