"""Nothing leaks when a peer vanishes: mid-upload, mid-download, before the head.

Each case uses a demo view that first opens a database connection, then the peer
goes away at the worst moment. Afterwards the server must have closed the response
iterable (``request_finished`` fired, the streaming generator ran its ``finally``),
released the DB connection (the ``/stats/`` view counts connections from
``connection_created`` until closed; psutil counts the process's open files on the
SQLite database), and logged nothing at WARNING or above and no traceback.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import psutil
import pytest

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def srv(start_module_server):
    server = start_module_server("127.0.0.1:0")
    # The first request imports the views, which connect the counting signals.
    assert client.request(server.address, "/db/?sleep=0").status == 200
    return server


def stats(address: str) -> dict:
    response = client.request(address, "/stats/", timeout=5)
    assert response.status == 200
    data = json.loads(response.body)
    data["in_flight"] = data["request_started"] - data["request_finished"] - 1  # minus us
    return data


def wait_for_view(address: str, timeout: float = 30.0) -> None:
    """Until the view of the request in flight holds its database connection.

    Waiting for an event, not a fixed time: on a busy machine the server may take a
    while to get to the request, and a peer that vanished before the view started
    would test something else (and settled() could see the server idle too early).
    """
    deadline = time.monotonic() + timeout
    while stats(address)["db_open"] != 1:
        assert time.monotonic() < deadline, "the view never opened its database connection"
        time.sleep(0.05)


def database_files(pid: int) -> list[str]:
    return [f.path for f in psutil.Process(pid).open_files() if ".sqlite3" in f.path]


def settled(address: str, before: dict, timeout: float = 6.0) -> dict:
    """Stats once no request is in flight any more (or whatever they are at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = stats(address)
        if (now["in_flight"] == before["in_flight"] and now["db_open"] == 0) or (
            time.monotonic() > deadline
        ):
            return now
        time.sleep(0.1)


def assert_nothing_leaked(srv, before: dict, mark: int, streams_closed: int = 0,
                          peer_warning: str | None = None) -> None:
    """... and nothing logged but, when given, one warning holding ``peer_warning``."""
    after = settled(srv.address, before)
    started = after["request_started"] - before["request_started"]
    finished = after["request_finished"] - before["request_finished"]
    assert started >= 1
    assert finished == started, (before, after)  # request_finished fired: response closed
    assert after["db_open"] == 0, after
    assert after["streams_closed"] - before["streams_closed"] == streams_closed, after
    assert database_files(srv.pid) == []
    output = srv.lines[mark:]
    if peer_warning is not None:
        expected = [line for line in output if " WARNING " in line and peer_warning in line]
        assert len(expected) == 1, output
        output = [line for line in output if line not in expected]
    assert not [line for line in output if " ERROR " in line or " WARNING " in line
                or "Traceback" in line], output


def vanish(sock: socket.socket, reset: bool) -> None:
    if reset:  # SO_LINGER 0: the close sends RST, as a killed front-end process would
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_peer_vanishes_mid_upload(srv, reset):
    before, mark = stats(srv.address), len(srv.lines)
    body = b"u" * (8 * MiB)
    request = encode_request(client.build_environ("/db-upload/", "POST"), body)
    sock = client.connect(srv.address, 10)
    sock.sendall(request[: len(request) - len(body) // 2])  # the head and half the body
    wait_for_view(srv.address)  # the view has its DB connection and is reading the body
    vanish(sock, reset)
    # A failed upload is peer trouble: one warning line (issue 20), nothing else.
    assert_nothing_leaked(srv, before, mark, peer_warning=f"of {len(body)} ")


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_peer_vanishes_mid_download(srv, reset):
    before, mark = stats(srv.address), len(srv.lines)
    sock = client.connect(srv.address, 10)
    sock.sendall(encode_request(client.build_environ("/db-big/?mb=100")))
    received = 0
    while received < MiB:  # a bit of the response: the stream is running
        chunk = sock.recv(65536)
        assert chunk
        received += len(chunk)
    vanish(sock, reset)
    assert_nothing_leaked(srv, before, mark, streams_closed=1)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_peer_vanishes_before_the_head(srv, reset):
    before, mark = stats(srv.address), len(srv.lines)
    sock = client.connect(srv.address, 10)
    sock.sendall(encode_request(client.build_environ("/db/?sleep=1")))
    vanish(sock, reset)  # at once: the view is still holding its DB connection
    time.sleep(0.3)
    during = stats(srv.address)
    assert during["db_open"] == 1 and during["in_flight"] == before["in_flight"] + 1, during
    assert_nothing_leaked(srv, before, mark)
