"""FastCGI 1.0 on the wire: records, name-value pairs, constants and errors.

Boundary: the pure codec under ``fastcgi`` (which holds the per-connection state
machine) and ``fastcgi_client``. Bytes in, values out and back; no I/O, no state beyond
one stream's buffer. Imports: the standard library and ``protocol``, whose error
hierarchy and header limits FastCGI shares (a PARAMS stream is bounded like an SCGI
header block, and the same HTTP status hints apply).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping

from .protocol import (
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS,
    BadHeaderBlock,
    BodyTooLarge,
    HeaderBlockTooLarge,
    IncompleteRequest,
    ProtocolError,
    TooManyHeaders,
)

VERSION = 1
HEADER = struct.Struct("!BBHHBx")  # version, type, request id, content length, padding
HEADER_SIZE = HEADER.size  # 8
# A record's content length is a 16-bit field: 65,535 bytes at most.
MAX_CONTENT = 0xFFFF


class RecordType(enum.IntEnum):
    BEGIN_REQUEST = 1
    ABORT_REQUEST = 2
    END_REQUEST = 3
    PARAMS = 4
    STDIN = 5
    STDOUT = 6
    STDERR = 7
    DATA = 8
    GET_VALUES = 9
    GET_VALUES_RESULT = 10
    UNKNOWN_TYPE = 11


class Role(enum.IntEnum):
    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


class ProtocolStatus(enum.IntEnum):
    REQUEST_COMPLETE = 0
    CANT_MPX_CONN = 1
    OVERLOADED = 2
    UNKNOWN_ROLE = 3


KEEP_CONN = 1  # the only flag of BEGIN_REQUEST
BEGIN_BODY = struct.Struct("!HB5x")  # role, flags
END_BODY = struct.Struct("!IB3x")  # application status, protocol status
UNKNOWN_TYPE_BODY = struct.Struct("!B7x")
# The name-value pair lengths: one byte below 128, else four with the top bit set.
_LONG_LENGTH = struct.Struct("!I")
_MAX_PAIR_LENGTH = 0x7FFFFFFF


# --------------------------------------------------------------------- errors


class FastCGIError(ProtocolError):
    """Abstract base of the errors only FastCGI has. Errors that SCGI shares (too
    large, too many, truncated) subclass both this and the SCGI error, so a caller
    that maps ``HeaderBlockTooLarge`` to 431 does so for both protocols."""

    message = "Malformed FastCGI record stream."

    def __init__(self) -> None:
        if type(self) is FastCGIError:
            raise TypeError("FastCGIError is abstract; raise one of its subclasses")
        super().__init__()


class BadVersion(FastCGIError):
    message = "A FastCGI record header does not have version 1."


class HTTPOnFastCGIPort(FastCGIError):
    message = ("An HTTP request arrived on the FastCGI port: point a FastCGI front-end "
               "(nginx fastcgi_pass, Apache proxy:fcgi://, Caddy transport fastcgi) at it, "
               "not a browser or an HTTP proxy.")


class SCGIOnFastCGIPort(FastCGIError):
    message = ("An SCGI request arrived on the FastCGI port: serve it with --protocol scgi "
               "or configure the front-end for FastCGI.")


class TLSOnFastCGIPort(FastCGIError):
    message = "A TLS handshake arrived on the FastCGI port, which speaks plain FastCGI."


class BadRecord(FastCGIError):
    message = "A FastCGI record's content does not fit its type."


class UnexpectedRecord(FastCGIError):
    message = "A FastCGI record arrived out of order for its request."


class DuplicateRequestId(FastCGIError):
    message = "A FastCGI BEGIN_REQUEST reuses the id of a request still in progress."


class ParamsTooLarge(FastCGIError, HeaderBlockTooLarge):
    message = "The FastCGI PARAMS stream is larger than the configured limit."


class TooManyParams(FastCGIError, TooManyHeaders):
    message = "The FastCGI PARAMS stream has more pairs than the configured limit."


class BadParams(FastCGIError, BadHeaderBlock):
    message = "The FastCGI PARAMS stream is not a sequence of name-value pairs."


class StdinTooLarge(FastCGIError, BodyTooLarge):
    message = "The FastCGI STDIN stream is larger than the configured limit."


class IncompleteRecord(FastCGIError, IncompleteRequest):
    message = "The connection was closed inside a FastCGI record."


# --------------------------------------------------------------------- records


class RecordReader:
    """Cuts a byte stream into (type, request id, content) records."""

    __slots__ = ("_buf", "_eof", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the first unread record in _buf
        self._eof = False

    def feed(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("receive_data() called after EOF (b'')")
        if not data:
            self._eof = True
            return
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]  # compact: amortised linear in what was received
            self._pos = 0
        self._buf += data

    @property
    def eof(self) -> bool:
        return self._eof

    def pending(self) -> bytes:
        """Unread bytes (for judging what a peer that is not FastCGI sent)."""
        return bytes(self._buf[self._pos : self._pos + HEADER_SIZE])

    def next_record(self) -> tuple[int, int, bytes] | None:
        """The next whole record, None when more bytes are needed. Raises BadVersion."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_SIZE:
            return None
        version, rtype, request_id, length, padding = HEADER.unpack_from(buf, pos)
        if version != VERSION:
            raise BadVersion()
        end = pos + HEADER_SIZE + length
        if len(buf) < end + padding:
            return None
        self._pos = end + padding
        return rtype, request_id, bytes(buf[pos + HEADER_SIZE : end])

    def at_boundary(self) -> bool:
        return self._pos == len(self._buf)

    def clear(self) -> None:
        self._buf = bytearray()
        self._pos = 0


def encode_record(rtype: int, request_id: int, content: bytes = b"") -> bytes:
    """One record, its content padded to a multiple of 8 bytes as the spec advises."""
    if len(content) > MAX_CONTENT:
        raise ValueError(f"record content of {len(content)} bytes is over {MAX_CONTENT}")
    if not 0 <= request_id <= 0xFFFF:
        raise ValueError(f"request id {request_id} does not fit in 16 bits")
    padding = -len(content) % 8
    return HEADER.pack(VERSION, rtype, request_id, len(content), padding) + content + (
        b"\0" * padding)


def _stream(rtype: int, request_id: int, data: bytes) -> bytes:
    """``data`` as records of at most 65,535 bytes each; b"" for no data (an empty
    record would end the stream)."""
    if len(data) <= MAX_CONTENT:
        return encode_record(rtype, request_id, data) if data else b""
    view = memoryview(data)
    return b"".join(encode_record(rtype, request_id, bytes(view[i : i + MAX_CONTENT]))
                    for i in range(0, len(data), MAX_CONTENT))


def encode_stdout(request_id: int, data: bytes) -> bytes:
    return _stream(RecordType.STDOUT, request_id, data)


def encode_stderr(request_id: int, data: bytes) -> bytes:
    return _stream(RecordType.STDERR, request_id, data)


def encode_stdin(request_id: int, data: bytes) -> bytes:
    return _stream(RecordType.STDIN, request_id, data)


def encode_end_request(request_id: int, app_status: int = 0,
                       protocol_status: int = ProtocolStatus.REQUEST_COMPLETE) -> bytes:
    return encode_record(RecordType.END_REQUEST, request_id,
                         END_BODY.pack(app_status & 0xFFFFFFFF, protocol_status))


def encode_begin_request(request_id: int, role: int = Role.RESPONDER,
                         keep_conn: bool = False) -> bytes:
    return encode_record(RecordType.BEGIN_REQUEST, request_id,
                         BEGIN_BODY.pack(role, KEEP_CONN if keep_conn else 0))


def encode_params(request_id: int, params: Mapping[str, str] | Iterable[tuple[str, str]]
                  ) -> bytes:
    """The whole PARAMS stream, its closing empty record included."""
    return (_stream(RecordType.PARAMS, request_id, encode_pairs(params))
            + encode_record(RecordType.PARAMS, request_id))


def encode_get_values(names: Iterable[str]) -> bytes:
    return encode_record(RecordType.GET_VALUES, 0, encode_pairs((n, "") for n in names))


# --------------------------------------------------------------------- name-value pairs


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length > _MAX_PAIR_LENGTH:
        raise ValueError("a FastCGI name or value is longer than 2**31 - 1 bytes")
    return _LONG_LENGTH.pack(length | 0x80000000)


def encode_pairs(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """Name-value pairs, latin-1, each length in its one- or four-byte form."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out = bytearray()
    for name, value in items:
        raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
        out += _encode_length(len(raw_name)) + _encode_length(len(raw_value))
        out += raw_name + raw_value
    return bytes(out)


def _read_length(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(length, position after it) or None when its bytes have not all arrived."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    if pos + 4 > len(buf):
        return None
    return _LONG_LENGTH.unpack_from(buf, pos)[0] & _MAX_PAIR_LENGTH, pos + 4


class PairReader:
    """Name-value pairs from a stream that arrives in pieces, within the limits.

    A pair is checked against the size limit as soon as its two lengths are known,
    so a claimed 2 GiB name is refused before a byte of it is stored.
    """

    __slots__ = ("_buf", "_count", "_max_pairs", "_max_size", "_seen", "pairs")

    def __init__(self, max_size: int, max_pairs: int) -> None:
        self._buf = bytearray()
        self._seen = 0  # stream bytes before _buf[0]
        self._count = 0
        self._max_size, self._max_pairs = max_size, max_pairs
        self.pairs: list[tuple[str, str]] = []

    def feed(self, data: bytes) -> None:
        if self._seen + len(self._buf) + len(data) > self._max_size:
            raise ParamsTooLarge()
        self._buf += data
        pos = 0
        while True:
            pair = self._next_pair(pos)
            if pair is None:
                break
            pos = pair
        del self._buf[:pos]
        self._seen += pos

    def _next_pair(self, pos: int) -> int | None:
        buf = self._buf
        name = _read_length(buf, pos)
        value = _read_length(buf, name[1]) if name is not None else None
        if name is None or value is None:
            return None
        start = value[1]
        cut = start + name[0]
        end = cut + value[0]
        if self._seen + end > self._max_size:
            raise ParamsTooLarge()
        if end > len(buf):
            return None
        if name[0] == 0:
            raise BadParams()
        self._count += 1
        if self._count > self._max_pairs:
            raise TooManyParams()
        self.pairs.append((buf[start:cut].decode("latin-1"), buf[cut:end].decode("latin-1")))
        return end

    def finish(self) -> list[tuple[str, str]]:
        if self._buf:
            raise BadParams()
        return self.pairs


def decode_pairs(data: bytes, max_size: int = DEFAULT_MAX_HEADER_SIZE,
                 max_pairs: int = DEFAULT_MAX_HEADERS) -> list[tuple[str, str]]:
    """All pairs of a complete stream, in order; raises the errors of PARAMS."""
    reader = PairReader(max_size, max_pairs)
    reader.feed(data)
    return reader.finish()


def params_environ(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The environ of PARAMS pairs under the module's policy for repeated names."""
    environ: dict[str, str] = {}
    for name, value in pairs:
        if name in environ and name.startswith("HTTP_") and name != "HTTP_HOST":
            separator = "; " if name == "HTTP_COOKIE" else ", "
            environ[name] = environ[name] + separator + value
        else:
            environ[name] = value
    return environ
