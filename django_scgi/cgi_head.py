"""A CGI response head: the WSGI status and headers as the front-end reads them.

``Status: 200 OK`` first, then the headers, hop-by-hop ones (and an application's own
``Status``) left out, every line checked so that no name or value can split the head.
Its C accelerator (``_speedups.encode_head``, ``declared_length``) handles the usual
heads and leaves anything unusual to this code. Standard library only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import HttpOnScgiPort

# Their types: _speedups.pyi. DJANGO_SCGI_PURE_PYTHON=1 leaves them out.
_c_encode_head: Callable[[object, object], bytes | None] | None
_c_declared_length: Callable[[object], int | None] | None
_c_encode_head = _c_declared_length = None
if not os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
    try:
        from . import _speedups
    except ImportError:
        pass
    else:
        _c_declared_length = _speedups.declared_length
        _c_encode_head = _speedups.encode_head

__all__ = ["declared_length", "encode_http_refusal", "encode_response_head"]


# Reason phrases for statuses given without one: nginx before 1.25.3 passes an
# empty reason on to the client instead of filling it in.
_REASONS = {status.value: status.phrase for status in HTTPStatus}

_STATUS_RE = re.compile(r"([1-9][0-9]{2})(?: (.*))?", re.DOTALL)
_BAD_NAME_RE = re.compile(r"[\s:\0]")  # \s covers CR, LF, and latin-1 NBSP/NEL
_BAD_VALUE_RE = re.compile(r"[\r\n\0]")


_OPTIONAL_WHITESPACE = " \t"

# Response headers never passed on (_speedups.c holds the same list): the hop-by-hop
# ones (RFC 9110 7.6.1), and "Status", which in a CGI head would be a second status
# line: Apache and lighttpd answer with it, so an application-set "Status: 302" would
# override the status it returned (RFC 3875 6.3.3 makes it the script's status). A
# name lower-cases to one of them only if its length is one of theirs: checking the
# length first spares lower() for almost every header.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "status",
})
_HOP_BY_HOP_LENGTHS = frozenset(len(name) for name in _HOP_BY_HOP)

# Checked and encoded header lines by (name, value). An application sends the same
# few headers with every response (Django: Content-Type, X-Content-Type-Options,
# Referrer-Policy, Cross-Origin-Opener-Policy), and checking them with the regexes
# above was most of the cost of a head. The cache is cleared when full, so one-off
# values (Set-Cookie, Content-Length) cost an occasional refill, never memory: at
# most 512 lines of at most 256 bytes (a typical line is 20-60 bytes).
_HEADER_LINES: dict[tuple[str, str], bytes] = {}
_MAX_KEPT_HEADER_LINES = 512
_MAX_KEPT_HEADER_LINE = 256


def encode_http_refusal(error: HttpOnScgiPort) -> bytes:
    """A plain HTTP/1.0 answer for a peer that spoke HTTP to the SCGI port.

    Not SCGI at all: ``curl`` or a browser pointed at the port reads a CGI head as
    "HTTP/0.9" garbage, but shows this status and sentence.
    """
    body = error.message.encode("ascii")
    reason = HTTPStatus(error.status_hint).phrase
    return (f"HTTP/1.0 {error.status_hint} {reason}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body) + 1}\r\n"
            "Connection: close\r\n\r\n").encode("ascii") + body + b"\n"


def encode_response_head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode a CGI response head: ``Status:`` line, headers, blank line.

    ``status`` is a WSGI status ("200 OK"); a missing reason is filled in.
    Hop-by-hop headers (``Connection``, ``Transfer-Encoding``, ...) are dropped: they
    describe one connection, not the response (PEP 3333 forbids applications to
    send them), and the front-end runs its own connection to the client. So is a
    ``Status`` header: the status is ``status``, never what a header claims.
    """
    status_line = _STATUS_LINES.get(status) or _status_line(status)
    if _c_encode_head is not None:
        # Takes a list of plain, valid (str, str) headers; None: the code below decides.
        head = _c_encode_head(status_line, headers)
        if head is not None:
            return head
    lines = [status_line]
    for header in headers:
        name = header[0]
        if len(name) in _HOP_BY_HOP_LENGTHS and name.lower() in _HOP_BY_HOP:
            continue
        line = _HEADER_LINES.get(header) if type(header) is tuple else None
        lines.append(line or _header_line(header))
    lines.append(b"\r\n")
    return b"".join(lines)


def declared_length(headers: Iterable[tuple[str, str]]) -> int:
    """The Content-Length a response's headers declare, or -1.

    -1 also when the header is repeated or its value is not 1-18 ASCII digits (after
    optional whitespace is trimmed): nothing is inferred from such a response.
    """
    if _c_declared_length is not None:
        found = _c_declared_length(headers)  # None: not a list of plain headers
        if found is not None:
            return found
    found, seen = -1, False
    for name, value in headers:
        if len(name) == 14 and name.isascii() and name.lower() == "content-length":
            digits = value.strip(_OPTIONAL_WHITESPACE)
            plain = 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()
            found = int(digits) if plain and not seen else -1
            seen = True
    return found


def _header_line(header: tuple[str, str]) -> bytes:
    """Check and encode one header; keep the line for the next response."""
    name, value = header
    if not name or _BAD_NAME_RE.search(name):
        raise ValueError(f"invalid response header name {name!r}")
    if _BAD_VALUE_RE.search(value):
        raise ValueError(f"CR, LF or NUL in the value of response header {name!r}")
    # Django's Set-Cookie values start with a space (Morsel.output(header="")):
    # trim optional whitespace so the head is exactly "Name: value".
    line = f"{name}: {value.strip(_OPTIONAL_WHITESPACE)}\r\n".encode("latin-1")
    if type(header) is tuple and len(line) <= _MAX_KEPT_HEADER_LINE:
        if len(_HEADER_LINES) >= _MAX_KEPT_HEADER_LINES:
            _HEADER_LINES.clear()  # cheaper than LRU; the steady headers come back at once
        _HEADER_LINES[header] = line
    return line


def _status_line(status: str) -> bytes:
    code, reason = _split_status(status)
    return f"Status: {code} {reason}\r\n".encode("latin-1")


def _split_status(status: str) -> tuple[int, str]:
    match = _STATUS_RE.fullmatch(status)
    if match is None:
        raise ValueError(f"invalid status {status!r}: want 'NNN Reason'")
    code = int(match[1])
    reason = match[2] or _REASONS.get(code, "Unknown")
    if _BAD_VALUE_RE.search(reason):
        raise ValueError("CR, LF or NUL in the status reason")
    return code, reason


# The Status: line of every registered status, given as Django and most applications
# give it ("200 OK") or code-only ("200"): the usual head skips the regex of
# _split_status. Built by _status_line itself, so the two cannot disagree.
_STATUS_LINES = {
    given: _status_line(given)
    for status in HTTPStatus
    for given in (f"{status.value} {status.phrase}", str(status.value))
}
