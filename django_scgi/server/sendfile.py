"""Sending a response's bytes: the write errors, ``wsgi.file_wrapper`` and ``sendfile``.

``FileWrapper`` is what the application wraps a file in; when it wraps a real file the
exchange hands its descriptor to ``send_file``, which has the kernel copy it to the
socket (``os.sendfile``) under the exchange's write limits. The exchange itself
(``exchange.py``) writes everything else.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gevent import socket

if TYPE_CHECKING:
    from .exchange import Exchange

# Peer errors that mean "the front-end went away": close quietly.
PEER_GONE_ERRNOS = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ESHUTDOWN, errno.ECONNABORTED})


class PeerGone(Exception):
    """The front-end closed the connection or stopped reading in time."""


class WriteTimeout(PeerGone):
    """The front-end accepted no response bytes for ``write_timeout`` seconds, or took
    them slower than ``min_write_rate``; the message says which, for the log line."""


class FileWrapper:
    """``wsgi.file_wrapper``: lets the server send a real file with ``os.sendfile``."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while chunk := read(self.block_size):
            yield chunk

    def fileno(self) -> int | None:
        try:
            fd = self.filelike.fileno()
            return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except (AttributeError, OSError, ValueError):
            return None


def send_file(exchange: Exchange, fd: int) -> None:
    """The head, then the file from its current offset to its end, with ``sendfile``."""
    exchange.send_chunk(b"")
    # The file follows the head in several segments; the last, short one would
    # otherwise wait for the head's ACK (Nagle).
    exchange.nodelay = True
    set_nodelay(exchange.sock)
    offset = os.lseek(fd, 0, os.SEEK_CUR)
    end = os.fstat(fd).st_size
    out = exchange.sock.fileno()
    while offset < end:
        try:
            sent = os.sendfile(out, fd, offset, end - offset)
        except BlockingIOError:
            _wait_writable(exchange)
            continue
        except OSError as error:
            if error.errno in PEER_GONE_ERRNOS:
                raise PeerGone(str(error)) from None
            raise
        if sent == 0:
            break
        offset += sent
        exchange.bytes_sent += sent


def _wait_writable(exchange: Exchange) -> None:
    started = time.monotonic()
    try:
        exchange.sock.settimeout(exchange.write_budget())
        exchange.sock.wait_writable()
    except (TimeoutError, socket.timeout):
        raise exchange.write_timeout_error(time.monotonic() - started) from None
    finally:
        exchange.write_waited += time.monotonic() - started


def set_nodelay(sock: Any) -> None:
    """TCP_NODELAY on a TCP connection: later small segments go out without waiting."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the peer is already gone; reading the request will tell
