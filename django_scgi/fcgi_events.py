"""The events of FastCGI's server side (``fastcgi.ServerConnection``), and what tells
another protocol's first bytes on a FastCGI port: pure data, the standard library only.
``fastcgi`` re-exports all of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .fcgi_records import HTTPOnFastCGIPort, Role, SCGIOnFastCGIPort, TLSOnFastCGIPort
from .scgi_events import ConnectionClosed, ProtocolError


@dataclass(slots=True)
class RequestHead:
    """BEGIN_REQUEST and the whole PARAMS stream arrived: start the application.
    ``environ`` holds latin-1-decoded names and values as sent."""

    request_id: int
    role: Role
    keep_conn: bool
    environ: dict[str, str]


@dataclass(slots=True)
class Stdin:
    """Body bytes of a request (never empty)."""

    request_id: int
    data: bytes


@dataclass(slots=True)
class StdinEnd:
    """The request's body is complete."""

    request_id: int


@dataclass(slots=True)
class Abort:
    """The front-end gave up on a request whose RequestHead was delivered: close the
    application's iterable, then send ``end_request()``."""

    request_id: int


@dataclass(slots=True)
class Reply:
    """Bytes the protocol answers by itself (GET_VALUES_RESULT, UNKNOWN_TYPE, an
    END_REQUEST refusing a request): write them as they are; close the connection
    afterwards when ``close`` is true."""

    data: bytes
    close: bool = False


ServerEvent = RequestHead | Stdin | StdinEnd | Abort | Reply | ConnectionClosed


# Sniffing the first bytes of a connection that is not FastCGI, for a useful error.
_HTTP_START = re.compile(rb"[A-Z][A-Z-]{2,7}(?: |$)")
_SCGI_START = re.compile(rb"[1-9][0-9]{0,6}(?::|$)")
_TLS_START = re.compile(rb"\x16\x03[\x00-\x04]")


def foreign_protocol(start: bytes) -> ProtocolError | None:
    if _HTTP_START.match(start):
        return HTTPOnFastCGIPort()
    if _SCGI_START.match(start):
        return SCGIOnFastCGIPort()
    if _TLS_START.match(start):
        return TLSOnFastCGIPort()
    return None
