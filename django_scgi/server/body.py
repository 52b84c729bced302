"""``wsgi.input``: the request body, read lazily from the socket as the application asks.

What a peer *claims* (``CONTENT_LENGTH``) never decides what is allocated: buffers grow
with the bytes that arrive. How long a peer may take is bounded three ways, each checked
before every wait: ``body_timeout`` without a byte, ``min_body_rate`` over the whole
body (Apache's ``mod_reqtimeout`` ``MinRate``: every byte buys 1/rate more seconds),
and ``request_timeout`` for the head and body together. Only time spent waiting for the
peer counts towards the rate, never the application's own time between reads.
"""

from __future__ import annotations

import errno
import io
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, cast

from gevent import socket

from .. import protocol

# recv() size for the header block: one call reads a typical front-end request
# (Apache sends 600-900 bytes of variables) together with the start of the body.
RECV_SIZE = 64 * 1024
# wsgi.input.read() of at least this many bytes fills one buffer in place instead of
# joining chunks: request.body of N bytes then costs N, not 2N (BodyInput).
ONE_BUFFER_READ = 1024 * 1024
# That buffer grows by at least this much, or by an eighth of what it holds (fewer
# reallocations for big bodies), never past what was asked for: its size follows the
# bytes received, not CONTENT_LENGTH, which is only what the peer claims. An eighth is
# also what BytesIO over-allocates by itself; pages beyond the bytes written are never
# touched, so they cost address space, not memory.
BUFFER_STEP = 1024 * 1024


class IncompleteBody(OSError):
    """The request body ended before CONTENT_LENGTH bytes arrived.

    An ``OSError`` so Django turns it into ``UnreadablePostError``: no view gets to
    build a success response on a truncated body. ``django_scgi_peer_trouble`` tells
    the app's log filter (``apps.py``) that the server has logged it already, in one
    rate-limited line, so Django's traceback for it is dropped.
    """

    django_scgi_peer_trouble = True


class BodyLimits:
    """How long the peer may take over the body; shared by the reads and the drain."""

    __slots__ = ("deadline", "deadline_name", "min_rate", "timeout")

    def __init__(self, timeout: float, min_rate: int = 0, deadline: float = float("inf"),
                 deadline_name: str = "request timeout") -> None:
        self.timeout = timeout  # body_timeout: the longest wait for the next bytes
        self.min_rate = min_rate  # bytes per second over the body; 0: no minimum
        self.deadline = deadline  # time.monotonic() by which the whole request is in
        self.deadline_name = deadline_name  # which option set the deadline, for the log


class BodyInput:
    """``wsgi.input``: reads the body lazily from the socket, never past CONTENT_LENGTH."""

    __slots__ = (
        "_eof",
        "_limits",
        "_pending",
        "_sock",
        "_waited",
        "bytes_read",
        "failure",
        "length",
        "parser",
        "timed_out",
    )

    def __init__(self, sock: Any, parser: protocol.RequestParser | None,
                 limits: BodyLimits, length: int = 0) -> None:
        self._sock = sock
        self.length = length  # CONTENT_LENGTH
        # None: the request has no body (most do not; no parser is made for them), and
        # then ``remaining`` is 0: the hot path checks this instead of calling it.
        self.parser = parser
        self._pending = b""
        self._limits = limits
        self._waited = 0.0  # seconds spent waiting for body bytes (min_rate)
        self.bytes_read = 0
        self._eof = parser is None or parser.state is not protocol.State.BODY
        # The peer was too slow (a timeout, the rate or the deadline): the body is over
        # for us (reads return b"" from then on, no drain waits again).
        self.timed_out = False
        # Why the body could not be read whole, for the exchange's one log line.
        self.failure: str | None = None

    @property
    def remaining(self) -> int:
        """Body bytes not yet taken from the socket: what draining would have to read.

        Bytes that arrived with the header block, or were read and not yet handed out,
        are already off the socket and cannot make a close reset the connection.
        """
        return 0 if self.parser is None else self.parser.remaining

    def read(self, size: int | None = -1) -> bytes:
        left = self.length - self.bytes_read
        if size is None or size < 0 or size > left:
            size = left
        if size >= ONE_BUFFER_READ:
            return self._read_into_one_buffer(size)
        chunks, wanted = [], size
        while wanted > 0:
            chunk = self._next_chunk(wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _read_into_one_buffer(self, size: int) -> bytes:
        """Up to ``size`` bytes gathered straight into the bytes object that is returned.

        Joining a list of chunks holds the body twice at the end (the chunks and the
        result): request.body would cost 2x its size. A BytesIO grows step by step as
        bytes arrive (what is already off the socket first, then the socket reads
        straight into its buffer), and getvalue() hands that buffer over uncopied.
        On failure the buffer is released before the error leaves: a traceback that
        keeps this frame alive must not keep the bytes alive.
        """
        buffer = io.BytesIO()
        try:
            got = 0
            while got < size and (chunk := self._next_chunk(size - got, receive=False)):
                got += buffer.write(chunk)
            while got < size and not self._eof and self.remaining:
                got = self._receive_step(buffer, got, size)
            return buffer.getvalue()  # ``got`` bytes: each step is filled or raises
        except BaseException:
            buffer.close()
            raise

    def _receive_step(self, buffer: io.BytesIO, got: int, size: int) -> int:
        """Grow ``buffer`` by one step and fill it from the socket; the new ``got``."""
        end = got + min(size - got, self.remaining, max(BUFFER_STEP, got >> 3))
        buffer.seek(end - 1)
        buffer.write(b"\0")  # extends the buffer to ``end``: zeroes only this step
        with buffer.getbuffer() as view:
            return self._receive_into(view, got, end)

    def _receive_into(self, view: memoryview, got: int, size: int) -> int:
        """Fill ``view[got:size]`` from the socket; the parser only counts the bytes."""
        parser = cast("protocol.RequestParser", self.parser)  # set: the body is not over
        while got < size and parser.remaining:
            end = got + min(size - got, parser.remaining)
            count = self._wait_for(self._sock.recv_into, view[got:end])
            if not count:  # EOF inside the body
                parser.receive_data(b"")
                self._next_event()  # raises IncompleteBody
            parser.skip_body(count)
            got += count
            self.bytes_read += count
        return got

    def readline(self, size: int | None = -1) -> bytes:
        limit = sys.maxsize if size is None or size < 0 else size
        line = b""
        while len(line) < limit:
            chunk = self._next_chunk(limit - len(line))
            if not chunk:
                break
            newline = chunk.find(b"\n")
            if newline >= 0:
                self._unread(chunk[newline + 1 :])
                return line + chunk[: newline + 1]
            line += chunk
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _unread(self, data: bytes) -> None:
        if data:
            self._pending = data + self._pending
            self.bytes_read -= len(data)

    def _next_chunk(self, wanted: int, receive: bool = True) -> bytes:
        """Up to ``wanted`` body bytes; b"" at the end of the body (or, without
        ``receive``, when none is off the socket yet)."""
        if self._pending:
            chunk, self._pending = self._pending[:wanted], self._pending[wanted:]
        else:
            chunk = self._from_parser(receive)
            if len(chunk) > wanted:
                chunk, self._pending = chunk[:wanted], chunk[wanted:]
        self.bytes_read += len(chunk)
        return chunk

    def _from_parser(self, receive: bool = True) -> bytes:
        while not self._eof:
            event = self._next_event()
            if type(event) is protocol.Data:
                return event.data
            if event is protocol.NEED_DATA:
                if not receive:
                    break
                self._receive()
            else:
                self._eof = True
        return b""

    # _next_event(), _receive() and _budget() run only before the end of the body
    # (``_eof``), and then the parser is set: cast() says so to the type checker (these
    # run once per chunk; an assert would be stripped by ``python -O`` anyway).

    def _next_event(self) -> protocol.Event | protocol._NeedData:
        parser = cast("protocol.RequestParser", self.parser)
        remaining = parser.remaining  # the parser forgets it on an error
        try:
            return parser.next_event()
        except protocol.IncompleteRequest:
            self._eof = True
            self.failure = (f"the request body ended after {self.length - remaining}"
                            f" of {self.length} bytes")
            raise IncompleteBody(errno.EPIPE, self.failure) from None

    def _receive(self) -> None:
        parser = cast("protocol.RequestParser", self.parser)
        size = min(parser.remaining, RECV_SIZE)
        parser.receive_data(self._wait_for(self._sock.recv, size))

    def _wait_for(self, receive: Callable[[Any], Any], argument: Any) -> Any:
        """``receive(argument)`` waiting no longer than the limits allow."""
        timeout, limit = self._budget()
        self._sock.settimeout(timeout)
        started = time.monotonic()
        try:
            return receive(argument)
        except (TimeoutError, socket.timeout):
            self._give_up(limit)
        except ConnectionError as error:  # reset: a failed upload like any other
            self._eof = True
            self.failure = (f"the connection was reset after {self.length - self.remaining} "
                            f"of {self.length} request body bytes")
            raise IncompleteBody(error.errno, self.failure) from None
        finally:
            self._waited += time.monotonic() - started

    def _budget(self) -> tuple[float, str]:
        """Seconds the next read may wait, and which limit that is (for ``_give_up``)."""
        limits = self._limits
        timeout, limit = limits.timeout, _IDLE
        if limits.min_rate:
            received = self.length - self.remaining
            allowance = limits.timeout + received / limits.min_rate - self._waited
            if allowance < timeout:
                timeout, limit = allowance, _RATE
        to_deadline = limits.deadline - time.monotonic()
        if to_deadline < timeout:
            timeout, limit = to_deadline, _DEADLINE
        if timeout <= 0:
            self._give_up(limit)
        return timeout, limit

    def _give_up(self, limit: str) -> NoReturn:
        limits = self._limits
        if limit is _IDLE:
            reason = f"it sent no request body bytes for {limits.timeout}s (body timeout)"
        elif limit is _RATE:
            reason = f"it sent its request body slower than {limits.min_rate} bytes/s " \
                     "(min body rate)"
        else:
            reason = f"its request body was not in by the {limits.deadline_name}"
        # Not again: draining the rest before closing would wait another timeout.
        self._eof = self.timed_out = True
        self.failure = reason
        raise IncompleteBody(errno.ETIMEDOUT, reason) from None

    def discard(self, limit: int, seconds: float) -> bool:
        """Read and drop the unread body if at most ``limit`` bytes arrive within
        ``seconds``; True when all gone."""
        if self.timed_out or self.remaining > limit:
            return False
        limits = self._limits
        drain_deadline = time.monotonic() + seconds
        if drain_deadline < limits.deadline:
            # A copy: the application may still read, under the request's own limits.
            self._limits = BodyLimits(limits.timeout, limits.min_rate, drain_deadline,
                                      "drain timeout")
        try:
            while self._next_chunk(RECV_SIZE):
                pass
        except OSError:
            return False
        finally:
            self._limits = limits
        return True


_IDLE, _RATE, _DEADLINE = "idle", "rate", "deadline"  # the limits of _budget()


# wsgi.input of every request without a body, shared: with no parser it is at its end
# from the start, so no method changes it (bytes_read stays 0, timed_out False).
NO_BODY = BodyInput(None, None, BodyLimits(0.0))
