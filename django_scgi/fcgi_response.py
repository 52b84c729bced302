"""The web server's side of FastCGI without I/O: the application's records as events,
for clients (``fastcgi_client``, the tests, the bench). ``fastcgi`` re-exports it; the
server side never uses it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .fcgi_records import (
    END_BODY,
    MAX_CONTENT,
    UNKNOWN_TYPE_BODY,
    BadRecord,
    IncompleteRecord,
    RecordReader,
    RecordType,
    UnexpectedRecord,
    decode_pairs,
)
from .scgi_events import NEED_DATA, ConnectionClosed, ProtocolError, _NeedData


@dataclass(slots=True)
class Stdout:
    request_id: int
    data: bytes  # b"": the stream's end


@dataclass(slots=True)
class Stderr:
    request_id: int
    data: bytes  # b"": the stream's end


@dataclass(slots=True)
class EndRequest:
    request_id: int
    app_status: int
    protocol_status: int


@dataclass(slots=True)
class ValuesResult:
    values: dict[str, str]


@dataclass(slots=True)
class UnknownTypeReply:
    record_type: int


ClientEvent = Stdout | Stderr | EndRequest | ValuesResult | UnknownTypeReply | ConnectionClosed


class ResponseParser:
    """The web server's side: the application's records as events (for clients)."""

    def __init__(self) -> None:
        self._reader = RecordReader()

    def receive_data(self, data: bytes) -> None:
        self._reader.feed(data)

    def next_event(self) -> ClientEvent | _NeedData:
        record = self._reader.next_record()
        if record is None:
            if not self._reader.eof:
                return NEED_DATA
            if not self._reader.at_boundary():
                raise IncompleteRecord()
            return ConnectionClosed()
        rtype, request_id, content = record
        return _client_event(rtype, request_id, content)


def _client_event(rtype: int, request_id: int, content: bytes) -> ClientEvent:
    if rtype == RecordType.STDOUT:
        return Stdout(request_id, content)
    if rtype == RecordType.STDERR:
        return Stderr(request_id, content)
    try:
        if rtype == RecordType.END_REQUEST:
            return EndRequest(request_id, *END_BODY.unpack(content))
        if rtype == RecordType.GET_VALUES_RESULT:
            return ValuesResult(dict(decode_pairs(content, MAX_CONTENT)))
        if rtype == RecordType.UNKNOWN_TYPE:
            return UnknownTypeReply(UNKNOWN_TYPE_BODY.unpack(content)[0])
    except (struct.error, ProtocolError):
        raise BadRecord() from None
    raise UnexpectedRecord()
