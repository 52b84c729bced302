"""``wsgi.input``: the request body, read lazily from the socket as the application asks."""

from __future__ import annotations

import errno
import io
import sys
from collections.abc import Iterator
from typing import Any, cast

from gevent import socket

from .. import protocol

# recv() size for the header block: one call reads a typical front-end request
# (Apache sends 600-900 bytes of variables) together with the start of the body.
RECV_SIZE = 64 * 1024
# wsgi.input.read() of at least this many bytes fills one preallocated buffer instead of
# joining chunks: request.body of N bytes then costs N, not 2N (BodyInput).
ONE_BUFFER_READ = 1024 * 1024


class IncompleteBody(OSError):
    """The request body ended before CONTENT_LENGTH bytes arrived.

    An ``OSError`` so Django turns it into ``UnreadablePostError``: no view gets to
    build a success response on a truncated body.
    """


class BodyInput:
    """``wsgi.input``: reads the body lazily from the socket, never past CONTENT_LENGTH."""

    __slots__ = (
        "_eof",
        "_pending",
        "_sock",
        "_timeout",
        "bytes_read",
        "length",
        "parser",
        "timed_out",
    )

    def __init__(self, sock: Any, parser: protocol.RequestParser | None, timeout: float,
                 length: int = 0) -> None:
        self._sock = sock
        self.length = length  # CONTENT_LENGTH
        # None: the request has no body (most do not; no parser is made for them), and
        # then ``remaining`` is 0: the hot path checks this instead of calling it.
        self.parser = parser
        self._pending = b""
        self._timeout = timeout
        self.bytes_read = 0
        self._eof = parser is None or parser.state is not protocol.State.BODY
        # The peer sent no body bytes for ``timeout`` seconds: the body is over for us
        # (reads return b"" from then on) and the exchange logs it once.
        self.timed_out = False

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
        """``size`` bytes gathered straight into the bytes object that is returned.

        Joining a list of chunks holds the body twice at the end (the chunks and the
        result): request.body would cost 2x its size. A BytesIO extended to ``size``
        at once takes what is already off the socket, then the socket reads straight
        into its buffer, and getvalue() hands that buffer over uncopied.
        """
        buffer = io.BytesIO()
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
        got = 0
        while got < size and (chunk := self._next_chunk(size - got, receive=False)):
            got += buffer.write(chunk)
        if got < size and not self._eof:
            with buffer.getbuffer() as view:
                got = self._receive_into(view, got, size)
        if got < size:
            buffer.truncate(got)
        return buffer.getvalue()

    def _receive_into(self, view: memoryview, got: int, size: int) -> int:
        """Fill ``view[got:size]`` from the socket; the parser only counts the bytes."""
        parser, sock = self.parser, self._sock
        assert parser is not None  # read() asks for bytes only before the end of the body
        sock.settimeout(self._timeout)
        while got < size and parser.remaining:
            try:
                count = sock.recv_into(view[got : got + min(size - got, parser.remaining)])
            except (TimeoutError, socket.timeout):
                self._eof = self.timed_out = True
                raise IncompleteBody(
                    errno.ETIMEDOUT, f"no request body bytes for {self._timeout}s"
                ) from None
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

    # _next_event() and _receive() run only before the end of the body (``_eof``), and
    # then the parser is set: cast() says so to the type checker (these run once per
    # chunk; an assert would be stripped by ``python -O`` anyway).

    def _next_event(self) -> protocol.Event | protocol._NeedData:
        try:
            return cast("protocol.RequestParser", self.parser).next_event()
        except protocol.IncompleteRequest:
            self._eof = True
            raise IncompleteBody(
                errno.EPIPE, f"request body ended after {self.bytes_read} bytes"
            ) from None

    def _receive(self) -> None:
        parser = cast("protocol.RequestParser", self.parser)
        self._sock.settimeout(self._timeout)
        size = min(parser.remaining, RECV_SIZE)
        try:
            data = self._sock.recv(size)
        except (TimeoutError, socket.timeout):
            # Not again: draining the rest before closing would wait another timeout.
            self._eof = self.timed_out = True
            raise IncompleteBody(
                errno.ETIMEDOUT, f"no request body bytes for {self._timeout}s"
            ) from None
        parser.receive_data(data)

    def discard(self, limit: int) -> bool:
        """Read and drop the unread body if at most ``limit`` bytes; True when all gone."""
        if self.timed_out or self.remaining > limit:
            return False
        try:
            while self._next_chunk(RECV_SIZE):
                pass
        except OSError:
            return False
        return True


# wsgi.input of every request without a body, shared: with no parser it is at its end
# from the start, so no method changes it (bytes_read stays 0, timed_out False).
NO_BODY = BodyInput(None, None, 0.0)
