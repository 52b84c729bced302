"""SIGTERM while connections wait in the backlog beyond ``--max-connections``.

The one slot is held by a slow request; three more connections have sent whole requests
and wait in the kernel's backlog. On SIGTERM the server takes the backlog, waits up to
``--graceful-timeout`` for a slot, and, finding none, closes the queued connections
with a FIN (it reads what they sent first, so the close is not a reset), cancels the
slow request and exits 0. It used to crash unpacking the queued connections and hang
until a second signal.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest

from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

QUEUED = 3
GRACEFUL = 2


def _send(address: str, path: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(encode_request({"REQUEST_METHOD": "GET", "REQUEST_URI": path,
                                 "SERVER_NAME": "localhost", "SERVER_PORT": "80",
                                 "SERVER_PROTOCOL": "HTTP/1.1"}))
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_sigterm_with_connections_queued_beyond_the_cap(start_server):
    server = start_server("127.0.0.1:0", "--max-connections", "1",
                          "--graceful-timeout", str(GRACEFUL))
    busy = _send(server.address, "/sleep/?s=40")
    time.sleep(0.5)  # the slow request takes the only slot
    queued = [_send(server.address, "/") for _ in range(QUEUED)]
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0, server.output
    assert f"Closing {QUEUED} queued connection(s)" in server.output
    for sock in queued:
        with sock:
            assert _read_to_end(sock) == b""  # a FIN, not ConnectionResetError
    busy.close()
    assert "Traceback" not in server.output
