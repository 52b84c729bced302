"""Timeouts against a real ``runscgi``: slow header blocks, stalled bodies, peers that stop
reading, and many slow peers at once next to a good one.

Each timeout is set to 1 s so the tests are quick; every socket operation of the test
has its own bound, so a server that never times out fails the test instead of hanging.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from helpers import assert_healthy, lines_with, local_port, read_until_close, request

from django_scgi import client

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
# A header block long enough that dribbling it never completes within a test.
SLOW_HEAD = b"5000:CONTENT_LENGTH\x000\x00SCGI\x001\x00HTTP_X_PAD\x00" + b"p" * 4000


# --- the header block ------------------------------------------------------------------------


def test_dribbling_header_is_closed_at_the_header_timeout(start_server):
    # A slowloris keeps each byte just inside any idle timeout: the header timeout is a
    # deadline for the whole block, so activity does not extend it.
    server = start_server("127.0.0.1:0", "--header-timeout", "1")
    mark = len(server.lines)
    with client.connect(server.address, 10) as sock:
        peer = local_port(sock)
        started, sent, closed_at = time.monotonic(), 0, None
        while closed_at is None and time.monotonic() - started < 6:
            try:
                sock.sendall(SLOW_HEAD[sent : sent + 1])
                sent += 1
                sock.settimeout(0.2)  # one byte every 0.2 s
                if sock.recv(1024) == b"":
                    closed_at = time.monotonic()
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
    assert closed_at is not None, "still open after 6 s of dribbling"
    assert 0.8 < closed_at - started < 2.5, closed_at - started
    assert sent >= 4  # bytes kept coming, and the deadline held anyway
    lines = lines_with(server, peer, mark)
    assert len(lines) == 1 and "WARNING" in lines[0] and "header block" in lines[0], lines
    assert_healthy(server.address)
    assert "Traceback" not in server.output


def test_many_dribbling_peers_do_not_delay_a_good_request(start_server):
    # 200 slowloris connections, one byte each every 0.5 s: each holds a greenlet and a
    # slot, none holds the server. A good request is answered at once meanwhile.
    server = start_server("127.0.0.1:0")
    slow = [client.connect(server.address, 10) for _ in range(200)]
    stop, errors = threading.Event(), []

    def dribble() -> None:
        sent = 0
        while not stop.is_set() and sent < len(SLOW_HEAD):
            for sock in slow:
                try:
                    sock.sendall(SLOW_HEAD[sent : sent + 1])
                except OSError as error:  # the server closed one: it should not
                    errors.append(error)
            sent += 1
            stop.wait(0.5)

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        time.sleep(1.2)  # every slow peer has sent a few bytes and is being waited for
        # Each answer arrives within the client's own timeout (5 s) while all 200 slow
        # peers are still sending: a server that served them one at a time would not
        # answer before the dribble ends (len(SLOW_HEAD) * 0.5 s).
        for _ in range(5):
            assert_healthy(server.address, timeout=5)
            time.sleep(0.3)
        assert not errors, errors[:3]
    finally:
        stop.set()
        thread.join(5)
        for sock in slow:
            sock.close()
    assert_healthy(server.address)
    assert "Traceback" not in server.output


# --- the request body ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/upload/", "/echo/"])  # pieces; request.body at once
def test_stalled_body_is_closed_at_the_body_timeout(start_server, path):
    server = start_server("127.0.0.1:0", "--body-timeout", "1")
    mark = len(server.lines)
    whole = request(path, "POST", b"u" * MiB)  # declares 1 MiB of body
    with client.connect(server.address, 10) as sock:
        peer = local_port(sock)
        sock.sendall(whole[: len(whole) - MiB + 10])  # the head and 10 bytes, then nothing
        started = time.monotonic()
        raw, closed_at = read_until_close(sock)
    assert 0.8 < closed_at - started < 3.0, closed_at - started
    if raw:  # the view's read failed: Django answers it as an error, never a success
        assert client.parse_response(raw).status >= 500
    lines = lines_with(server, peer, mark)
    assert len(lines) == 1, server.lines[mark:]
    assert "WARNING" in lines[0] and "body timeout" in lines[0], lines[0]
    assert f'"POST {path} HTTP/1.1"' in lines[0]
    assert_healthy(server.address)
    assert "Traceback" not in server.output


# --- the response ----------------------------------------------------------------------------


def test_peer_that_stops_reading_is_closed_and_frees_its_slot(start_server):
    # One slot only: the next request can be served only once the server has given up
    # on the peer that stopped reading 200 MiB.
    server = start_server("127.0.0.1:0", "--write-timeout", "1", "--max-connections", "1")
    mark = len(server.lines)
    with client.connect(server.address, 10) as stalled:
        peer = local_port(stalled)
        stalled.sendall(request("/big/?mb=200"))
        started = time.monotonic()
        time.sleep(0.3)  # the big response is filling the socket buffers
        response = client.request(server.address, "/", timeout=10)
        served_after = time.monotonic() - started
        assert (response.status, response.body) == (200, b"Hello from django-scgi\n")
        assert 0.8 < served_after < 4.0, served_after
        # The stalled connection was closed (reset: its unsent bytes are dropped).
        stalled.settimeout(5)
        received = 0
        try:
            while chunk := stalled.recv(4 * MiB):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < 200 * MiB
    lines = lines_with(server, peer, mark)
    assert len(lines) == 1, server.lines[mark:]
    assert "WARNING" in lines[0] and "write timeout" in lines[0], lines[0]
    assert '"GET /big/?mb=200 HTTP/1.1"' in lines[0]
    assert "Traceback" not in server.output


def test_slow_but_steady_reader_is_not_cut_off(start_server):
    # The write timeout is about a peer that stops taking bytes, not a deadline for a
    # whole chunk: /big-body/ sends 32 MiB as one chunk, read here over 2-3 s with a small
    # receive buffer, never pausing for long.
    server = start_server("127.0.0.1:0", "--write-timeout", "1")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    host, _, port = server.address.rpartition(":")
    sock.settimeout(10)
    sock.connect((host, int(port)))
    with sock:
        sock.sendall(request("/big-body/?mb=32"))
        started, data = time.monotonic(), b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        received = len(rest)
        while chunk := sock.recv(256 * 1024):
            received += len(chunk)
            time.sleep(0.008)  # the receive buffer holds at most ~128 KiB: 256+ pauses
        took = time.monotonic() - started
    assert head.startswith(b"Status: 200 OK\r\n")
    assert received == 32 * MiB
    assert took > 1.2, f"read too fast ({took:.2f}s) to prove anything"
    assert "write timeout" not in server.output
