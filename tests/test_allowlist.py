"""Who may connect: the allow-list of TCP peer addresses (``--allow-from``).

SCGI has no authentication, so the default admits loopback only. A refused peer is
closed without a byte of response and logged at WARNING once per address per interval,
however often it retries. Unix sockets are guarded by their file mode, not the list.
The filter is about the peer's address, so loopback listeners are enough to test it.
"""

from __future__ import annotations

import time

import pytest
from netcheck import needs_ipv6_loopback

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

GOOD = (200, b"Hello from django-scgi\n")


def get(address: str) -> tuple[int, bytes]:
    response = client.request(address, "/", timeout=10)
    return response.status, response.body


def refused_silently(address: str) -> bool:
    """True when the server closed the connection without sending anything."""
    with client.connect(address, 10) as sock:
        try:
            sock.sendall(encode_request(client.build_environ("/")))
            sock.settimeout(10)
            return sock.recv(65536) == b""
        except (BrokenPipeError, ConnectionResetError):
            return True


def refusal_lines(server, start: int) -> list[str]:
    return [line for line in server.lines[start:] if "not in the allow-list" in line]


def test_default_allow_list_admits_loopback(start_server):
    server = start_server("127.0.0.1:0")
    assert get(server.address) == GOOD
    assert refusal_lines(server, 0) == []


def test_peer_outside_the_list_is_closed_and_logged_once(start_server, short_tmp):
    server = start_server("127.0.0.1:0", f"unix:{short_tmp}/s.sock", "--allow-from", "10.0.0.0/8")
    tcp, unix = server.addresses
    started = time.monotonic()
    for _ in range(20):
        assert refused_silently(tcp)
    assert time.monotonic() - started < 5  # refused at once, nothing waited for
    time.sleep(0.3)
    lines = refusal_lines(server, 0)
    assert len(lines) == 1, lines  # 20 refusals, one line: a scanner cannot flood the log
    assert "WARNING" in lines[0] and "Refused a connection from 127.0.0.1" in lines[0]
    # No request from a refused peer reached the application (no access line).
    assert not [line for line in server.lines if '"GET / ' in line]
    # Unix sockets are not filtered: their file mode is the access control.
    assert get(unix) == GOOD
    assert server.proc.poll() is None
    assert "Traceback" not in server.output


def test_listed_address_is_admitted(start_server):
    server = start_server("127.0.0.1:0", "--allow-from", "192.0.2.0/24, 127.0.0.1")
    assert get(server.address) == GOOD
    assert refusal_lines(server, 0) == []


@needs_ipv6_loopback
def test_ipv6_peer(start_server):
    admitted = start_server("[::1]:0", "--allow-from", "::1")
    assert admitted.address.startswith("[::1]:")
    assert get(admitted.address) == GOOD
    # ::1 is not 127.0.0.1: an IPv4-only list refuses the IPv6 loopback peer.
    refusing = start_server("[::1]:0", "--allow-from", "127.0.0.1")
    assert refused_silently(refusing.address)
    time.sleep(0.2)
    lines = refusal_lines(refusing, 0)
    assert len(lines) == 1 and "Refused a connection from ::1" in lines[0], lines
