"""``wsgi.input`` of a FastCGI request: the STDIN records of its connection
(``fcgi_channel.Channel``), read as the application asks, never slurped.
"""

from __future__ import annotations

import errno
import sys

from .body import RECV_SIZE, BodyInput, BodyLimits, IncompleteBody
from .fcgi_channel import Channel

# CONTENT_LENGTH absent or not a number: the body is whatever STDIN carries.
UNKNOWN_LENGTH = sys.maxsize


class FastCGIBody(BodyInput):
    """``wsgi.input`` of a FastCGI request: STDIN records, read as the application asks.

    Never past CONTENT_LENGTH when one was sent; else until the STDIN stream ends.
    """

    __slots__ = ("channel", "timeout")

    def __init__(self, channel: Channel, timeout: float, length: int,
                 prefetched: bytes = b"") -> None:
        # body_timeout bounds each wait for STDIN records; min_body_rate and
        # request_timeout are SCGI's (BodyLimits) and not applied to them.
        limits = channel.body_limits
        # BodyInput.__init__(self, None, None, limits, length), inlined (once a request;
        # tests/test_fastcgi_server.py checks that every slot of the base is set).
        self._sock = self.parser = self.failure = None
        self._limits = limits if limits.timeout == timeout else BodyLimits(timeout)
        self.length = length
        self._waited = 0.0
        self.bytes_read = 0
        self.timed_out = False
        self.channel = channel
        self.timeout = timeout
        self._eof = channel.stdin_done
        self._pending = prefetched  # read ahead by Channel.prefetch_stdin

    @property
    def remaining(self) -> int:
        """Unknown (as large as can be) while the STDIN stream has not ended, else 0:
        what is left is whatever the front-end still sends."""
        return 0 if self.channel.stdin_done else UNKNOWN_LENGTH

    def read(self, size: int | None = -1) -> bytes:
        if self.length == UNKNOWN_LENGTH and (size is None or size < 0):
            chunks = []
            while chunk := self._next_chunk(RECV_SIZE):
                chunks.append(chunk)
            return b"".join(chunks)
        return super().read(size)

    def _from_parser(self, receive: bool = True) -> bytes:
        if self._eof:
            return b""
        try:
            data = self.channel.read_stdin(receive, self.timeout)
        except IncompleteBody as error:
            self._eof = True
            self.timed_out = error.errno == errno.ETIMEDOUT
            raise
        if data is None:
            return b""
        if not data:
            self._eof = True
        return data

    def _receive_into(self, view: memoryview, got: int, size: int) -> int:
        while got < size and (chunk := self._next_chunk(size - got)):
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        return got

    def discard(self, limit: int, seconds: float = 0.0) -> bool:
        """Read and drop up to ``limit`` unread body bytes; True when the body is over.
        (Each wait is bounded by body_timeout; ``seconds`` is SCGI's drain timeout.)"""
        if self.timed_out:
            return False
        dropped = 0
        try:
            while dropped <= limit:
                chunk = self._next_chunk(RECV_SIZE)
                if not chunk:
                    return True
                dropped += len(chunk)
        except OSError:
            return False
        return False
