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

    def whole_head(self) -> tuple[int, bytes, list[bytes], int] | None:
        """(request id, BEGIN_REQUEST content, PARAMS contents, end offset) when the
        unread bytes start with a BEGIN_REQUEST and its whole PARAMS stream, as
        front-ends write them, else None. Nothing is consumed (``skip_to`` does that);
        anything unusual is None, for the record-by-record path to judge."""
        buf, pos = self._buf, self._pos
        size = len(buf)
        if size - pos < 2 * HEADER_SIZE or buf[pos + 1] != RecordType.BEGIN_REQUEST:
            return None
        version, _, request_id, length, padding = HEADER.unpack_from(buf, pos)
        if version != VERSION or length != 8 or not request_id:
            return None
        begin = bytes(buf[pos + HEADER_SIZE : pos + HEADER_SIZE + 8])
        pos += HEADER_SIZE + 8 + padding
        chunks: list[bytes] = []
        while pos + HEADER_SIZE <= size:
            version, rtype, rid, length, padding = HEADER.unpack_from(buf, pos)
            if version != VERSION or rtype != RecordType.PARAMS or rid != request_id:
                return None
            start = pos + HEADER_SIZE
            pos = start + length + padding
            if pos > size:
                return None
            if not length:
                return request_id, begin, chunks, pos
            chunks.append(bytes(buf[start : start + length]))
        return None

    def skip_head(self, pos: int, request_id: int) -> bool:
        """Consume the bytes up to ``pos`` (the end of a whole_head()), and the empty
        STDIN record of ``request_id`` that follows them if there is one (a GET's
        body, which front-ends send with the head): whether there was."""
        buf = self._buf
        self._pos = pos
        if len(buf) < pos + HEADER_SIZE or buf[pos + 1] != RecordType.STDIN:
            return False
        version, _, rid, length, padding = HEADER.unpack_from(buf, pos)
        end = pos + HEADER_SIZE + padding
        if version != VERSION or rid != request_id or length or end > len(buf):
            return False
        self._pos = end
        return True

    def idle(self) -> bool:
        """Nothing unread and no EOF: the next event needs data."""
        return self._pos == len(self._buf) and not self._eof

    def skip_to(self, pos: int) -> None:
        self._pos = pos

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
    size = len(data)
    if 0 < size <= MAX_CONTENT and 0 <= request_id <= 0xFFFF:
        # The usual response chunk, in one record: the same bytes as _stream, fewer calls.
        padding = -size % 8
        return HEADER.pack(VERSION, RecordType.STDOUT, request_id, size, padding) + data + (
            _PADDING[padding])
    return _stream(RecordType.STDOUT, request_id, data)


_PADDING = [b"\0" * n for n in range(8)]


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
        buf: bytes | bytearray
        if self._buf:
            buf = self._buf
            buf += data  # in place: an unfinished pair is never copied again
        else:
            buf = data  # the usual case: the whole stream in one record, not copied
        pos = self._parse(buf)
        if pos == len(buf):
            self._buf = bytearray()
        elif buf is data:
            self._buf = bytearray(data[pos:])
        else:
            del self._buf[:pos]
        self._seen += pos

    def _parse(self, buf: bytes | bytearray) -> int:
        """Take the whole pairs at the start of ``buf``; the offset after the last one.

        One function, no calls per pair: this is the PARAMS parser's hot loop. The
        bytes are decoded at most once per call, when a pair is whole: latin-1 maps
        byte offsets to the same character offsets, so names and values are slices.
        """
        size, pos, count = len(buf), 0, self._count
        limit = self._max_size - self._seen
        text = ""
        while pos < size:
            name = buf[pos]
            if name < 0x80:
                at = pos + 1
            elif pos + 4 <= size:
                name = int.from_bytes(buf[pos : pos + 4], "big") & _MAX_PAIR_LENGTH
                at = pos + 4
            else:
                break
            if at >= size:
                break
            value = buf[at]
            if value < 0x80:
                at += 1
            elif at + 4 <= size:
                value = int.from_bytes(buf[at : at + 4], "big") & _MAX_PAIR_LENGTH
                at += 4
            else:
                break
            cut = at + name
            end = cut + value
            if end > limit:  # refused on the lengths alone: nothing of it is stored
                raise ParamsTooLarge()
            if end > size:
                break
            if not name:
                raise BadParams()
            count += 1
            if count > self._max_pairs:
                raise TooManyParams()
            if not text:
                text = buf.decode("latin-1")
            self.pairs.append((text[at:cut], text[cut:end]))
            pos = end
        self._count = count
        return pos

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
    pairs = pairs if isinstance(pairs, list) else list(pairs)
    environ = dict(pairs)  # C-level; right when no name is repeated (the usual case)
    if len(environ) == len(pairs):
        return environ
    environ = {}
    for name, value in pairs:
        if name in environ and name.startswith("HTTP_") and name != "HTTP_HOST":
            separator = "; " if name == "HTTP_COOKIE" else ", "
            environ[name] = environ[name] + separator + value
        else:
            environ[name] = value
    return environ
