"""connection.py on real sockets: accept4 and its portable fallback, the peer address
kept raw and decoded on demand, and the FIONREAD check that decides how to close."""

from __future__ import annotations

import os
import socket

import pytest

from django_scgi import connection
from netcheck import needs_ipv6_loopback


@pytest.fixture(params=["c", "ctypes", "portable"])
def accept_mode(request, monkeypatch):
    # Each way accept() can go: the C module (when built), accept4 through ctypes
    # (not built), Python's own accept (no accept4: macOS).
    if request.param == "c" and connection._c_accept is None:
        pytest.skip("django_scgi._syscalls is not built")
    if request.param != "c":
        monkeypatch.setattr(connection, "_c_accept", None)
    if request.param == "portable":
        monkeypatch.setattr(connection, "_accept4", None)
    return request.param


def _listener(family: int, address) -> socket.socket:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(8)
    listener.setblocking(False)
    return listener


def _accept_one(listener: socket.socket):
    for _ in range(200):
        accepted = connection.accept(listener.fileno())
        if accepted is not None:
            return accepted
        os.sched_yield()  # the handshake is still on its way
    pytest.fail("the connection never reached the backlog")


def test_empty_backlog_gives_none(accept_mode):
    with _listener(socket.AF_INET, ("127.0.0.1", 0)) as listener:
        assert connection.accept(listener.fileno()) is None


def test_ipv4_peer_is_decoded_on_demand(accept_mode):
    with _listener(socket.AF_INET, ("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        with client:
            fd, raw_peer = _accept_one(listener)
            try:
                assert not os.get_blocking(fd)
                assert connection.peer_address(raw_peer) == client.getsockname()
                assert connection.peer_host(raw_peer, socket.AF_INET) is not None
                # Same host, another port: the same allow-list cache key.
                other = socket.create_connection(listener.getsockname())
                with other:
                    fd2, raw2 = _accept_one(listener)
                    os.close(fd2)
                assert connection.peer_host(raw2, socket.AF_INET) == \
                    connection.peer_host(raw_peer, socket.AF_INET)
                assert connection.peer_address(raw2) != connection.peer_address(raw_peer)
            finally:
                os.close(fd)


@needs_ipv6_loopback
def test_ipv6_peer_is_decoded_on_demand(accept_mode):
    with _listener(socket.AF_INET6, ("::1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        with client:
            fd, raw_peer = _accept_one(listener)
            os.close(fd)
            assert connection.peer_address(raw_peer) == client.getsockname()
    assert connection.peer_host(raw_peer, socket.AF_INET6) is not None


def test_unix_peer_has_no_host(accept_mode, short_tmp):
    path = str(short_tmp / "s")
    with _listener(socket.AF_UNIX, path) as listener:
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        with client:
            fd, raw_peer = _accept_one(listener)
            os.close(fd)
    assert connection.peer_host(raw_peer, socket.AF_UNIX) is None
    assert connection.peer_address(raw_peer) == ""


@pytest.mark.parametrize("way", ["c", "ctypes", "fcntl"])
def test_has_unread_bytes(way, monkeypatch):
    if way == "c" and connection._c_unread_bytes is None:
        pytest.skip("django_scgi._syscalls is not built")
    if way != "c":
        monkeypatch.setattr(connection, "_c_unread_bytes", None)
    if way == "fcntl":
        monkeypatch.setattr(connection, "_ioctl", None)
    ours, theirs = socket.socketpair()
    closed_fd = ours.fileno()
    with ours, theirs:
        conn = connection.Connection(os.dup(closed_fd), socket.AF_UNIX)
        try:
            assert not conn.has_unread_bytes()
            theirs.sendall(b"x")
            assert conn.has_unread_bytes()
            assert conn.recv(10) == b"x"
            assert not conn.has_unread_bytes()
        finally:
            conn.close()
    with pytest.raises(OSError):  # a closed descriptor: EBADF, raised, not "no bytes"
        connection.Connection(closed_fd, socket.AF_UNIX).has_unread_bytes()


def test_accept_on_something_not_a_listener_raises(accept_mode):
    # The Acceptor logs and pauses on such errors (EMFILE and the like) instead of
    # spinning: they must arrive as OSError, not as None ("nothing waiting").
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError):
            connection.accept(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
