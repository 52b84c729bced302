"""connection.py on real sockets: accept4 (C) and the Python accept, the peer address
kept raw and decoded on demand, the FIONREAD check that decides how to close, and the
send that leaves a response's last segment for the FIN."""

from __future__ import annotations

import os
import socket

import pytest
from helpers import segments_received
from netcheck import needs_ipv6_loopback

from django_scgi import connection


@pytest.fixture(params=["c", "python"])
def accept_mode(request, monkeypatch):
    # Each way accept() can go: the C accelerator (when built) and Python's own accept.
    if request.param == "c" and connection._c_accept is None:
        pytest.skip("django_scgi._syscalls is not built")
    if request.param != "c":
        monkeypatch.setattr(connection, "_c_accept", None)
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


@pytest.mark.parametrize("way", ["c", "fcntl"])
def test_has_unread_bytes(way, monkeypatch):
    if way == "c" and connection._c_unread_bytes is None:
        pytest.skip("django_scgi._syscalls is not built")
    if way != "c":
        monkeypatch.setattr(connection, "_c_unread_bytes", None)
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


@pytest.mark.parametrize("way", ["c", "plain"])
def test_send_before_close_puts_the_fin_in_the_last_segment(way, monkeypatch):
    # The peer counts the segments it receives until EOF: with MSG_MORE the short
    # response waits in the kernel and leaves with the FIN that close() adds; without
    # the C module (or MSG_MORE) it is a plain send, and the FIN follows on its own.
    if way == "c" and connection._c_send_more is None:
        pytest.skip("django_scgi._syscalls is not built, or the platform has no MSG_MORE")
    if way == "plain":
        monkeypatch.setattr(connection, "_c_send_more", None)
    listener = _listener(socket.AF_INET, ("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as peer:
        fd, _ = _accept_one(listener)
        conn = connection.Connection(fd, socket.AF_INET)
        try:
            before = segments_received(peer)
            assert conn.send_before_close(b"x" * 300) == 300
        finally:
            conn.close()
        peer.settimeout(10)
        assert b"".join(iter(lambda: peer.recv(4096), b"")) == b"x" * 300
        assert segments_received(peer) - before == (1 if way == "c" else 2)


def test_send_before_close_on_a_unix_socket_is_a_plain_send():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = connection.Connection(os.dup(ours.fileno()), socket.AF_UNIX)
        try:
            assert conn.send_before_close(b"abc") == 3
        finally:
            conn.close()
        ours.close()
        assert theirs.recv(10) == b"abc"


# --- the accept queue and closes held for a batch (server.Workers.close) ------------------


def _connect_and_wait_for_backlog(listener: socket.socket, count: int, length) -> list:
    clients = [socket.create_connection(listener.getsockname()) for _ in range(count)]
    for _ in range(200):
        if length() == count:
            break
        os.sched_yield()  # handshakes still on their way
    return clients


def test_listen_queue_function_counts_the_backlog():
    with _listener(socket.AF_INET, ("127.0.0.1", 0)) as listener:
        length = connection.listen_queue_function(listener)
        assert length is not None and length() == 0
        clients = _connect_and_wait_for_backlog(listener, 3, length)
        try:
            assert length() == 3
            os.close(_accept_one(listener)[0])
            assert length() == 2
        finally:
            for client in clients:
                client.close()


def test_listen_queue_function_is_none_for_a_unix_listener(short_tmp):
    with _listener(socket.AF_UNIX, str(short_tmp / "queue.sock")) as listener:
        assert connection.listen_queue_function(listener) is None


@pytest.fixture
def tcp_pair():
    """(Connection, peer socket) over loopback TCP."""
    listener = _listener(socket.AF_INET, ("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as peer:
        fd, _ = _accept_one(listener)
        conn = connection.Connection(fd, socket.AF_INET)
        try:
            yield conn, peer
        finally:
            conn.close()


def _ended(peer: socket.socket) -> bytes:
    """What the peer has received, once the connection has ended (waits up to 10 s)."""
    peer.settimeout(10)
    return b"".join(iter(lambda: peer.recv(4096), b""))


def _nothing_yet(peer: socket.socket) -> bool:
    peer.setblocking(False)
    try:
        peer.recv(1)
    except BlockingIOError:
        return True
    return False


def test_a_queued_connection_stays_open_until_flushed(tcp_pair):
    if connection._c_send_more is None:
        pytest.skip("django_scgi._syscalls is not built, or the platform has no MSG_MORE")
    conn, peer = tcp_pair
    queue = connection.ClosingQueue()
    before = segments_received(peer)
    conn.send_before_close(b"x" * 300)
    queue.add(conn)
    assert conn.fd == -1 and len(queue.fds) == 1
    assert _nothing_yet(peer)  # the last bytes wait for the FIN, and so does the peer
    queue.flush()
    assert queue.fds == []
    assert _ended(peer) == b"x" * 300
    assert segments_received(peer) - before == 1  # bytes and FIN together


def test_a_connection_with_idle_watchers_is_queued_without_them(tcp_pair):
    conn, peer = tcp_pair
    watcher = conn._watcher(1)  # as after a recv() that had to wait, and then got bytes
    queue = connection.ClosingQueue()
    queue.add(conn)
    assert conn._watchers is None and watcher.callback is None and not watcher.active
    assert len(queue.fds) == 1 and _nothing_yet(peer)
    queue.flush()
    assert _ended(peer) == b""


def test_a_connection_a_greenlet_waits_on_is_closed_at_once(tcp_pair):
    import gevent

    conn, peer = tcp_pair
    waiting = gevent.spawn(conn.recv, 10)
    gevent.sleep(0.01)  # now it waits in recv() for bytes that never come
    queue = connection.ClosingQueue()
    queue.add(conn)
    assert queue.fds == []  # not held: the waiter is told at once
    with pytest.raises(OSError):
        waiting.get(timeout=5)
    assert _ended(peer) == b""


def test_held_connections_are_closed_when_the_loop_runs(tcp_pair):
    import gevent

    conn, peer = tcp_pair
    queue = connection.ClosingQueue()
    queue.add(conn)
    queue.hold()
    assert _nothing_yet(peer)
    gevent.sleep(0)  # the worker lets the loop run
    assert queue.fds == []
    assert _ended(peer) == b""
