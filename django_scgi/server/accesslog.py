"""The access line of a finished exchange, to Django's ``django.server`` logger."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..environ import request_line

if TYPE_CHECKING:
    from .exchange import Exchange

access_logger = logging.getLogger("django.server")


def log_access(exchange: Exchange) -> None:
    """The access line, when the access log is on (the caller checks the setting)."""
    if exchange.environ is not None and access_logger.isEnabledFor(logging.INFO):
        _log_access(exchange, exchange.environ)


def _log_access(exchange: Exchange, environ: dict[str, object]) -> None:
    # REMOTE_ADDR "METHOD URI PROTOCOL" STATUS BYTES SECONDS -- docs/production.rst
    # gives the regex and a test holds it. Every field is one token: request_line()
    # escapes spaces, quotes and control characters, and so does this for the peer.
    # BYTES counts what went to the front-end, head included; STATUS 0: no response.
    code = status_code(exchange.status)
    remote = str(environ.get("REMOTE_ADDR") or "-")
    if not (remote.isascii() and remote.isprintable()) or " " in remote or '"' in remote:
        remote = quote(remote, safe="")
    line = request_line(environ)
    method, _, rest = line[1:-1].partition(" ")
    uri, _, protocol_ = rest.rpartition(" ")
    duration = time.monotonic() - exchange.started
    # makeRecord() + handle() is what info() does, minus findCaller(): walking the
    # stack for a source line that an access line never shows cost about a third
    # of the whole access log's price per request.
    record = access_logger.makeRecord(
        access_logger.name, logging.INFO, __file__, 0, "%s %s %d %d %.3f",
        (remote, line, code, exchange.bytes_sent, duration), None,
        # For structured (JSON) formatters; status_code drives Django's colours.
        extra={"status_code": code, "remote_addr": remote, "request_method": method,
               "request_uri": uri, "server_protocol": protocol_,
               "response_bytes": exchange.bytes_sent, "duration": duration},
    )
    access_logger.handle(record)


def status_code(status: str | None) -> int:
    """The numeric code of a WSGI status line; 0 when there is none (no response)."""
    try:
        return int(status[:3])  # type: ignore[index]
    except (TypeError, ValueError):
        return 0
