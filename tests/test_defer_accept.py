"""Issue 21: deferred accept (``--defer-accept``) on the TCP listeners runscgi binds.

Against a real ``runscgi``: the kernel keeps a connection that has sent nothing out of
the server (its server side stays in SYN_RECV in ``/proc/net/tcp``), hands it over as
soon as its request comes, and after about ``--defer-accept`` seconds hands over a peer
that stays silent, whose header timeout then closes it. ``--defer-accept 0`` restores
the plain listener.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import assert_healthy, closed_by_server, read_until_close, request

from django_scgi import client

pytestmark = pytest.mark.timeout(90)

SYN_RECV, ESTABLISHED = "03", "01"


def server_side_state(server_port: int, client_port: int) -> str | None:
    """The TCP state (``/proc/net/tcp``'s hex code) of the server's end of a loopback
    connection, or None when the kernel lists no such socket."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if (int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port):
            return state
    return None


def ports(server_address: str, sock) -> tuple[int, int]:
    return int(server_address.rpartition(":")[2]), sock.getsockname()[1]


def wait_for_state(server_address: str, sock, wanted: str, timeout: float = 10.0) -> str:
    """The server side's state once it is ``wanted`` (or the last seen at ``timeout``)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = server_side_state(*ports(server_address, sock))
        if state == wanted:
            break
        time.sleep(0.05)
    return state or "none"


def test_a_silent_connection_stays_in_the_kernel_until_its_request_comes(start_server):
    server = start_server("127.0.0.1:0", "--max-connections", "1")
    silent = client.connect(server.address, 10)
    try:
        # A request on a later connection is answered: had the silent one been accepted
        # first, it would hold the only slot.
        assert client.request(server.address, "/", timeout=15).status == 200
        assert server_side_state(*ports(server.address, silent)) == SYN_RECV
        silent.sendall(request("/"))
        raw, _ = read_until_close(silent, 15)
        assert client.parse_response(raw).status == 200
    finally:
        silent.close()
    assert "Traceback" not in server.output


def test_without_deferred_accept_a_silent_connection_is_accepted(start_server):
    server = start_server("127.0.0.1:0", "--defer-accept", "0")
    silent = client.connect(server.address, 10)
    try:
        assert wait_for_state(server.address, silent, ESTABLISHED) == ESTABLISHED
    finally:
        silent.close()
    assert_healthy(server.address)


def test_a_peer_that_stays_silent_is_handed_over_and_timed_out(start_server):
    # --defer-accept 1: the kernel hands the connection over after a retransmitted
    # SYN-ACK (about a second); --header-timeout 1 then closes it. Bound: loose.
    server = start_server("127.0.0.1:0", "--header-timeout", "1", "--defer-accept", "1")
    silent = client.connect(server.address, 10)
    try:
        started = time.monotonic()
        assert closed_by_server(silent, 30.0)
        assert time.monotonic() - started >= 0.9  # not before it was handed over
    finally:
        silent.close()
    assert_healthy(server.address)
    assert "Traceback" not in server.output
