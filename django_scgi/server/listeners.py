"""Listening sockets: TCP (v4/v6), unix sockets (stale-file probe, mode), inherited fds."""

from __future__ import annotations

import errno
import os
import socket as stdlib_socket
import stat
from collections.abc import Iterable

from ..conf import Address, FDAddress, TCPAddress, UnixAddress

# Linux's TCP_DEFER_ACCEPT: accept() returns a connection only once data came on it (or,
# for a silent peer, after the given seconds). Without it a connection whose request
# bytes are a moment behind its handshake costs a read that finds nothing, a watcher and
# a pass of the loop (issue 21: 1-15 of every 1,000 sequential requests). Elsewhere: None.
DEFER_ACCEPT: int | None = getattr(stdlib_socket, "TCP_DEFER_ACCEPT", None)


class ListenerError(OSError):
    """A listener could not be set up; the message is one sentence for the operator."""


class Listener:
    """A bound, listening socket and how to clean up after it."""

    def __init__(self, sock: stdlib_socket.socket, address: Address, owned_path: str | None = None):
        self.socket = sock
        self.address = address
        self.owned_path = owned_path
        self._inode = os.stat(owned_path).st_ino if owned_path else None

    @property
    def display(self) -> str:
        if isinstance(self.address, TCPAddress):
            host, port = self.socket.getsockname()[:2]
            return str(TCPAddress(host, port))
        return str(self.address)

    def close(self) -> None:
        self.socket.close()
        self.remove_socket_file()

    def remove_socket_file(self) -> None:
        """Unlink our unix socket, unless someone else's socket replaced it meanwhile."""
        if not self.owned_path:
            return
        try:
            if os.stat(self.owned_path).st_ino == self._inode:
                os.unlink(self.owned_path)
        except FileNotFoundError:
            pass


def open_listeners(addresses: Iterable[Address], *, socket_mode: int, backlog: int,
                   defer_accept: int = 0) -> list[Listener]:
    """Bind every address or none: on an error the ones already bound are closed."""
    listeners: list[Listener] = []
    try:
        for address in addresses:
            listeners.append(open_listener(address, socket_mode=socket_mode, backlog=backlog,
                                           defer_accept=defer_accept))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def open_listener(address: Address, *, socket_mode: int, backlog: int,
                  defer_accept: int = 0) -> Listener:
    """``defer_accept``: seconds of TCP_DEFER_ACCEPT on a TCP socket we bind (0: none)."""
    if isinstance(address, UnixAddress):
        return _open_unix(address, socket_mode, backlog)
    if isinstance(address, FDAddress):
        return _adopt_fd(address)
    return _open_tcp(address, backlog, defer_accept)


def _open_tcp(address: TCPAddress, backlog: int, defer_accept: int) -> Listener:
    family = stdlib_socket.AF_INET6 if address.family_is_v6 else stdlib_socket.AF_INET
    if not address.family_is_v6 and not address.host[0].isdigit():
        family = stdlib_socket.AF_UNSPEC
    try:
        infos = stdlib_socket.getaddrinfo(address.host, address.port, family,
                                          stdlib_socket.SOCK_STREAM)
    except stdlib_socket.gaierror:
        raise ListenerError(
            errno.EADDRNOTAVAIL, f"Cannot resolve the host name {address.host!r}."
        ) from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = stdlib_socket.socket(family, kind, proto)
    try:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        if family == stdlib_socket.AF_INET6:
            sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        if defer_accept and DEFER_ACCEPT is not None:
            sock.setsockopt(stdlib_socket.IPPROTO_TCP, DEFER_ACCEPT, defer_accept)
    except OSError:
        sock.close()
        raise
    return Listener(sock, address)


def _open_unix(address: UnixAddress, mode: int, backlog: int) -> Listener:
    path = address.path
    _clear_stale_socket(path)
    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # chmod after bind: the mode given to bind() is filtered by the umask.
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return Listener(sock, address, owned_path=path)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse anything else at ``path``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenerError(errno.EEXIST, f"{path} exists and is not a socket; not touching it.")
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
        return
    except (TimeoutError, BlockingIOError):
        pass  # a live server whose backlog is full: it is listening, so leave it alone
    except OSError as error:
        raise ListenerError(
            error.errno, f"Cannot probe the socket {path}: {error.strerror or error}."
        ) from None
    finally:
        probe.close()
    raise ListenerError(errno.EADDRINUSE,
                        f"Another server is listening on {path}; leaving it alone.")


def _adopt_fd(address: FDAddress) -> Listener:
    try:
        sock = stdlib_socket.socket(fileno=address.fd)
    except OSError as error:
        raise ListenerError(
            error.errno, f"File descriptor {address.fd} is not a usable socket."
        ) from None
    if sock.type != stdlib_socket.SOCK_STREAM:
        raise ListenerError(errno.ENOTSOCK, f"File descriptor {address.fd} is not a stream socket.")
    return Listener(sock, address)


def listening_on_stdin() -> bool:
    """Whether file descriptor 0 is a listening stream socket.

    The FastCGI launch convention (FCGI_LISTENSOCK_FILENO, used by mod_fcgid and
    spawn-fcgi): the process manager binds the socket and starts the application with
    it as standard input.
    """
    try:
        fd = os.dup(0)
    except OSError:  # no fd 0
        return False
    try:
        probe = stdlib_socket.socket(fileno=fd)
    except OSError:  # not a socket (a terminal, /dev/null, a pipe)
        os.close(fd)
        return False
    try:
        return bool(probe.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN)
                    and probe.type == stdlib_socket.SOCK_STREAM)
    except OSError:
        return False
    finally:
        probe.close()

