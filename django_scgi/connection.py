"""Lean connection I/O on the gevent hub: accept, recv, send, wait, close.

One SCGI request per connection makes the per-connection set-up cost a large share
of a request. gevent's socket objects cost system calls for every accepted
connection (``getsockname`` when a Python socket wraps the descriptor, ``ioctl`` to
make it non-blocking, two ``fcntl`` while creating its watchers) and ``StreamServer``
spends one more ``accept4`` per wake-up to find the backlog empty. Here the listener
is accepted from with ``accept4(SOCK_NONBLOCK)``, the connection is a bare
descriptor used with ``os.read``/``os.write``, and a watcher is made only when an
operation would block. A Python socket object is made only for the rare calls that
need one (``shutdown``, ``setsockopt``). Descriptors are closed with ``_socket``'s
functions: gevent's monkey-patching replaces ``os.close`` and ``socket.socket`` with
versions that defer the close to a later pass of the loop.

Imports: stdlib and gevent only.
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
import socket
import sys
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from gevent import Timeout, get_hub

if TYPE_CHECKING:
    from gevent.hub import Hub

_READ, _WRITE = 1, 2
_NO_BYTES = b"\0\0\0\0"  # FIONREAD's int out-parameter, zero
_CLOSED_ERROR = OSError(errno.EBADF, "the connection was closed by another greenlet")


# accept4, FIONREAD and send(MSG_MORE) in C (_syscalls.c), when built: accelerators of
# the Python functions below, which do the same through the socket module (one
# implementation each; tests/test_connection.py runs both). DJANGO_SCGI_PURE_PYTHON=1
# leaves them out, as it does the C head parser.
_c_accept: Callable[[int], tuple[int, bytes] | None] | None = None
_c_unread_bytes: Callable[[int], int] | None = None
_c_send_more: Callable[[int, bytes], int] | None = None
if not os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
    try:
        from . import _syscalls
    except ImportError:
        pass
    else:
        _c_accept = getattr(_syscalls, "accept", None)  # absent without accept4
        _c_unread_bytes = _syscalls.unread_bytes
        _c_send_more = getattr(_syscalls, "send_more", None)  # absent without MSG_MORE
# Whether Connection.send_before_close() on TCP makes the kernel hold the last bytes
# for the FIN.
SENDS_MORE = _c_send_more is not None


def accept(listener_fd: int) -> tuple[int, Any] | None:
    """One waiting connection as (non-blocking descriptor, peer address), or None.

    The C accelerator leaves the address raw (sockaddr bytes): decoding it
    (``peer_address``) costs more than the ``accept4`` call, and most requests never
    need it (``peer_host`` is enough for the allow-list). The Python path gets it
    decoded from the socket module; both forms are understood everywhere.
    """
    if _c_accept is not None:
        return _c_accept(listener_fd)
    return _accept_python(listener_fd)


def accept_function() -> Callable[[int], tuple[int, Any] | None]:
    """``accept`` itself, or the C function it would call: called once per connection,
    the acceptor spares the dispatching frame."""
    return _c_accept if _c_accept is not None else accept


def listen_queue_function(listener: Any) -> Callable[[], int] | None:
    """A function giving how many connections wait in ``listener``'s accept queue.

    Linux reports it for a listening TCP socket in ``TCP_INFO``'s ``tcpi_unacked``
    (what ``ss`` shows as Recv-Q). None for other sockets and systems.
    """
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or not sys.platform.startswith("linux") or (
            listener.family not in _TCP_FAMILIES):
        return None
    getsockopt, byteorder = listener.getsockopt, sys.byteorder

    def queue_length() -> int:
        try:
            info = getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_UNACKED_END)
        except OSError:
            return 0
        return int.from_bytes(info[_TCP_INFO_UNACKED_END - 4:], byteorder)

    return queue_length


_TCP_INFO_UNACKED_END = 28  # struct tcp_info: 8 bytes of u8 fields, then u32s; unacked 5th


def _accept_python(listener_fd: int) -> tuple[int, Any] | None:
    # Python's accept, whose peer comes decoded already.
    listener = _socket.socket(fileno=listener_fd)
    try:
        # _socket.socket's accept is named _accept (socket.socket.accept wraps it);
        # typeshed leaves the underscore name out.
        fd, peer = listener._accept()  # type: ignore[attr-defined]
    except BlockingIOError:
        return None
    finally:
        listener.detach()
    os.set_blocking(fd, False)
    return fd, peer


def peer_host(raw: Any, family: int) -> Any:
    """The host part of a peer as ``accept`` gives it from a listener of ``family``, a
    cheap key for the allow-list's cache: of a raw TCP address, its address bytes
    (IPv6: plus the scope id); None for a unix socket peer."""
    if type(raw) is not bytes:  # decoded already (the Python accept)
        return raw[0] if type(raw) is tuple else None
    if family == _AF_INET:
        return raw[4:8]
    if family == _AF_INET6:
        return raw[8:28]
    return None


_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_TCP_FAMILIES = (_AF_INET, _AF_INET6)


def peer_address(raw: Any) -> Any:
    """The peer as Python's socket module gives it: (host, port[, flow, scope]) or ""."""
    if type(raw) is not bytes:
        return raw
    family = int.from_bytes(raw[:2], sys.byteorder)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        flow, scope = int.from_bytes(raw[4:8], "big"), int.from_bytes(raw[24:28], sys.byteorder)
        return host, int.from_bytes(raw[2:4], "big"), flow, scope
    return ""  # AF_UNIX: what socket.accept() reports for an unnamed peer


def _has_unread_bytes_python(fd: int) -> bool:
    return fcntl.ioctl(fd, termios.FIONREAD, _NO_BYTES) != _NO_BYTES


# Whether bytes wait in descriptor ``fd``'s receive buffer (true: a count of them): the
# C function itself where built, called without a Python frame in between.
has_unread_bytes: Callable[[int], int | bool] = (
    _c_unread_bytes if _c_unread_bytes is not None else _has_unread_bytes_python)


class Connection:
    """A connected, non-blocking stream descriptor with socket-like blocking methods.

    ``recv``/``send`` block the calling greenlet (never the process) for at most the
    ``settimeout`` value, then raise ``TimeoutError``; ``close()`` from another
    greenlet makes a pending wait raise ``OSError(EBADF)``.
    """

    __slots__ = ("_socket", "_watchers", "family", "fd", "hub", "timeout")

    def __init__(self, fd: int, family: int) -> None:
        self.fd = fd
        self.family = family
        self.timeout: float | None = None
        self._watchers: dict[int, Any] | None = None
        self._socket: _socket.socket | None = None
        # Set with the first watcher (_watcher): a connection that never waits never
        # looks the hub up.
        self.hub: Hub | None = None

    def fileno(self) -> int:
        return self.fd

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, size: int) -> bytes:
        while True:
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                self.wait(_READ)

    def recv_into(self, buffer: memoryview) -> int:
        """Read into ``buffer`` (a writable memoryview); 0 at EOF."""
        while True:
            try:
                return os.readv(self.fd, [buffer])
            except BlockingIOError:
                self.wait(_READ)

    def send(self, data: bytes | memoryview) -> int:
        while True:
            try:
                return os.write(self.fd, data)
            except BlockingIOError:
                self.wait(_WRITE)

    def send_before_close(self, data: bytes) -> int:
        """send() for the last bytes of a response, when close() follows at once.

        With MSG_MORE, TCP holds back a final segment shorter than the MSS until more
        data or the FIN comes, so the end of a response and the FIN that ends it for
        the front-end travel as one packet: one wake-up and one ACK instead of two.
        """
        if _c_send_more is None or self.family not in _TCP_FAMILIES:
            return self.send(data)
        while True:
            try:
                return _c_send_more(self.fd, data)
            except BlockingIOError:
                self.wait(_WRITE)

    def sendall(self, data: bytes | memoryview) -> None:
        view, sent = memoryview(data), 0
        while sent < len(view):
            sent += self.send(view[sent:])

    def has_unread_bytes(self) -> bool:
        """Whether bytes wait in the receive buffer (an ioctl: no exception, no wait)."""
        if _c_unread_bytes is not None:
            return _c_unread_bytes(self.fd) != 0
        return _has_unread_bytes_python(self.fd)

    def wait_writable(self) -> None:
        self.wait(_WRITE)

    def wait(self, events: int) -> None:
        if self.fd < 0:
            raise _CLOSED_ERROR
        watcher = self._watcher(events)
        hub = cast("Hub", self.hub)  # set by _watcher()
        if self.timeout is None:
            hub.wait(watcher)
            return
        timer = Timeout.start_new(self.timeout, TimeoutError("timed out"))
        try:
            hub.wait(watcher)
        finally:
            timer.close()

    def _watcher(self, events: int) -> Any:
        watchers, hub = self._watchers, self.hub
        if watchers is None or hub is None:  # both set together, here
            watchers = self._watchers = {}
            hub = self.hub = get_hub()
        watcher = watchers.get(events)
        if watcher is None:
            watcher = watchers[events] = hub.loop.io(self.fd, events)
        return watcher

    def as_socket(self) -> _socket.socket:
        """A plain socket object on the same descriptor, for the calls ``os`` lacks."""
        if self._socket is None:
            self._socket = _socket.socket(self.family, socket.SOCK_STREAM, 0, self.fd)
        return self._socket

    def shutdown(self, how: int) -> None:
        self.as_socket().shutdown(how)

    def setsockopt(self, *args: Any) -> None:
        self.as_socket().setsockopt(*args)

    def detach(self) -> int | None:
        """Give up the descriptor, open, to whoever closes it later (-1 if closed
        already); None, and nothing changed, while a greenlet waits on it."""
        watchers = self._watchers
        if watchers:
            if any(watcher.callback is not None for watcher in watchers.values()):
                return None
            for watcher in watchers.values():  # stopped before their fd is closed
                watcher.close()
            self._watchers = None
        fd = self._socket.detach() if self._socket is not None else self.fd
        self.fd, self._socket = -1, None
        return fd

    def close(self) -> None:
        if self.fd < 0:
            return
        fd, sock, watchers = self.fd, self._socket, self._watchers
        self.fd, self._socket, self._watchers = -1, None, None
        if sock is None and not watchers:  # the usual case: _close_fd(), inlined
            _socket.close(fd)
        elif watchers:
            # A greenlet may be waiting on one of them: wake it with EBADF first and
            # close the descriptor only after, so the loop never polls a closed fd.
            cast("Hub", self.hub).cancel_waits_close_and_then(  # set with the watchers
                list(watchers.values()), _CLOSED_ERROR, _close_fd, fd, sock
            )
        else:
            _close_fd(fd, sock)


class ClosingQueue:
    """Finished connections whose close is held, to close several together.

    The close ends an SCGI response for the front-end, and wakes the front-end's
    worker for it. Under load a worker greenlet serves the backlog one connection
    after another (``server.Workers``); if it holds each finished connection for the
    next few requests and then closes them together, one wake-up of the front-end
    takes several responses. Behind nginx, with 32 connections and eight closes
    together, nginx went from 0.8 to 0.16 context switches per request, and the
    server's kernel time fell by a third. When to hold and when to close is the
    server's decision (``server.Workers``); this class closes what is queued when
    it is told to, and whenever the worker lets the event loop run.
    """

    __slots__ = ("_flush_scheduled", "fds", "holder")

    def __init__(self) -> None:
        self.fds: list[int] = []
        # The worker greenlet whose closes may be queued, set while it takes
        # follow-up connections; any other closes at once.
        self.holder: Any = None
        self._flush_scheduled = False

    def add(self, connection: Connection) -> None:
        """Take over ``connection``'s close (at once if a greenlet waits on it)."""
        fd = connection.detach()
        if fd is None:
            connection.close()  # wakes the waiter with EBADF first
        elif fd >= 0:
            self.fds.append(fd)

    def hold(self) -> None:
        """Keep the queue while the worker goes on; the loop's next pass closes it.

        Anything that makes the worker wait (a slow front-end, a sleeping view, a
        database socket) lets the loop run, so a held close never waits for that.
        """
        if not self._flush_scheduled:
            self._flush_scheduled = True
            get_hub().loop.run_callback(self._flush_from_loop)

    def flush(self) -> None:
        """Close every queued connection, oldest first."""
        fds, self.fds = self.fds, []
        for fd in fds:
            try:
                _socket.close(fd)
            except OSError:  # not ours any more: nothing to send a FIN on
                pass

    def _flush_from_loop(self) -> None:
        self._flush_scheduled = False
        if self.fds:
            self.flush()


def _close_fd(fd: int, sock: _socket.socket | None) -> None:
    if sock is not None:
        sock.close()
    else:
        _socket.close(fd)
