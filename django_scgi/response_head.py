"""Parsing a CGI response head: what a client of runscgi reads (client.py, the tests).

The server never parses a response head; only the client side does, so this lives apart
from the request parser in ``protocol.py``. Standard library and ``protocol`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .cgi_head import _BAD_NAME_RE, _split_status

__all__ = ["DEFAULT_MAX_RESPONSE_HEAD_SIZE", "ResponseHead", "parse_response_head"]

# Default cap for parse_response_head (client side). nginx refuses a response head
# that does not fit in scgi_buffer_size (one memory page, 4 or 8 KiB, by default:
# "upstream sent too big header"), so no head that works behind nginx comes near
# 64 KiB; the cap only stops a broken server from making the client buffer forever.
DEFAULT_MAX_RESPONSE_HEAD_SIZE = 65536


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A parsed CGI response head; the body starts at ``body_offset``."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body_offset: int


# The head ends at the first empty line; lines may end in CRLF or bare LF. The
# alternative "^" covers a head with no header lines at all.
_HEAD_END_RE = re.compile(rb"(?:^|\n)\r?\n")
_STATUS_LINE_RE = re.compile(r"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: (.*))?")


def parse_response_head(
    data: bytes, max_size: int = DEFAULT_MAX_RESPONSE_HEAD_SIZE
) -> ResponseHead | None:
    """Parse a CGI response head (client side) from the start of ``data``.

    Returns None while the blank line has not arrived; raises ValueError if the
    head is malformed or does not end within ``max_size`` bytes. Status comes
    from a ``Status:`` header or an ``HTTP/1.x NNN`` first line; without either
    it is 302 when Location is present, else 200.
    """
    match = _HEAD_END_RE.search(data, 0, max_size)
    if match is None:
        if len(data) >= max_size:
            raise ValueError(f"response head does not end within {max_size} bytes")
        return None
    text = data[: match.start()].decode("latin-1")
    lines = [line.removesuffix("\r") for line in text.split("\n")] if text else []
    code, reason, headers = _parse_head_lines(lines)
    return ResponseHead(code, reason, headers, match.end())


def _parse_head_lines(lines: list[str]) -> tuple[int, str, list[tuple[str, str]]]:
    status: str | None = None
    if lines and lines[0].startswith("HTTP/"):
        line_match = _STATUS_LINE_RE.fullmatch(lines.pop(0))
        if line_match is None:
            raise ValueError("malformed HTTP status line in response head")
        status = line_match[1] + (f" {line_match[2]}" if line_match[2] else "")
    headers = []
    for line in lines:
        name, value = _split_header_line(line)
        if name.lower() != "status":
            headers.append((name, value))
        elif status is None:
            status = value
        else:
            raise ValueError("more than one status in response head")
    if status is None:
        has_location = any(name.lower() == "location" for name, _ in headers)
        status = "302" if has_location else "200"
    code, reason = _split_status(status)
    return code, reason, headers


def _split_header_line(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not name or _BAD_NAME_RE.search(name):
        raise ValueError("malformed header line in response head")
    return name, value.strip(" \t")
