"""Gemini, as a Gemini front-end (Molly Brown, Xitzin) speaks it over SCGI: pure rules.

Boundary: no I/O, no Django, no gevent; the standard library only. ``environ`` uses
the request-side helpers (is this a Gemini request, its input, its client
certificate); the server uses :func:`response_head` to answer a Gemini request with a
Gemini head instead of a CGI one, and :func:`error_head` for its own refusals and
crash answers. ``django_scgi.capsule`` is the Django-side API on top (views that ask
for input or a certificate).

A Gemini front-end hands the backend's bytes to the client as they are, so the answer
is ``<two digits> <meta>\\r\\n`` and, for status 20 only, the body. Django's HTTP
statuses map onto Gemini's (docs/gemini.rst has the table); a view that wants a status
HTTP cannot say (input 10/11, certificate 60-62, ...) sets the two headers
``X-Gemini-Status`` and ``X-Gemini-Meta`` (percent-encoded UTF-8), which win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

__all__ = [
    "GEMINI",
    "GEMINI_CLIENT_CERT",
    "GEMINI_INPUT",
    "META_HEADER",
    "STATUS_HEADER",
    "GeminiHead",
    "client_cert_sha256",
    "encode_head",
    "error_head",
    "gemini_input",
    "is_gemini",
    "map_response",
    "response_head",
]

# --- request side -------------------------------------------------------------------------

# Environ keys added to a Gemini request (docs/gemini.rst). They are the server's own
# (PEP 3333 extension keys), not CGI variables, and hold proper text.
GEMINI = "django_scgi.gemini"  # True on a request from a Gemini front-end
GEMINI_INPUT = "django_scgi.gemini_input"  # the query percent-decoded (UTF-8), "" without
GEMINI_CLIENT_CERT = "django_scgi.client_cert"  # SHA-256 of the client certificate, hex
GEMINI_DEFAULT_PORT = "1965"

_HEX_DIGITS = frozenset("0123456789abcdef")


def is_gemini(cgi: Mapping[str, object]) -> bool:
    """Whether a request came from a Gemini front-end: ``SERVER_PROTOCOL=GEMINI``,
    as Molly Brown and Xitzin both send it."""
    value = cgi.get("SERVER_PROTOCOL")
    return isinstance(value, str) and len(value) == 6 and value.upper() == "GEMINI"


def gemini_input(query: str) -> str:
    """The Gemini "input" from a raw QUERY_STRING (latin-1 str): percent-decoded text.

    Gemini sends the answer to a ``10`` prompt as the whole query, percent-encoded
    (``hello%20world``); "+" is a plus sign there, not a space. Bytes that are not
    UTF-8 become U+FFFD.
    """
    raw = query.encode("latin-1", "replace")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


def client_cert_sha256(cgi: Mapping[str, str]) -> str:
    """The client certificate's SHA-256 fingerprint as 64 lower-case hex digits, or "".

    Molly Brown sends ``TLS_CLIENT_HASH=<hex>``, Xitzin ``sha256:<hex>`` (both the
    SHA-256 of the DER certificate); other Gemini servers write ``SHA256:`` or put
    colons between the bytes. Anything else (another algorithm, a wrong length,
    Xitzin's ``TLS_CLIENT_AUTHORISED=0``) is no certificate: a view must never take an
    identity it cannot compare for one.
    """
    if cgi.get("TLS_CLIENT_AUTHORISED") == "0":
        return ""
    value = cgi.get("TLS_CLIENT_HASH", "").strip().lower()
    value = value.removeprefix("sha256:").replace(":", "")
    if len(value) != 64 or not _HEX_DIGITS.issuperset(value):
        return ""
    return value


# --- response side ------------------------------------------------------------------------

# Response headers a view sets to choose the Gemini answer itself (django_scgi.capsule).
STATUS_HEADER = "X-Gemini-Status"
META_HEADER = "X-Gemini-Meta"  # percent-encoded UTF-8, so any text survives a header

# The Gemini specification caps the meta at 1024 bytes; clients may refuse more.
MAX_META_BYTES = 1024
DEFAULT_CONTENT_TYPE = "text/gemini"
# A 429 without a usable Retry-After: Gemini's 44 needs a number of seconds.
DEFAULT_SLOW_DOWN_SECONDS = 60

# HTTP status -> Gemini status, for those with a fixed answer (the rest by class).
_FIXED = {
    301: 31, 308: 31,
    404: 51, 410: 52,
    400: 59, 414: 59, 431: 59,
    401: 60,
    429: 44,
    503: 41,
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The meta of statuses whose text is not a reason phrase.
_CERTIFICATE_REQUIRED = "Client certificate required"
_CERTIFICATE_NOT_AUTHORISED = "Certificate not authorised"
# Control characters (CR and LF above all) cannot stand in a meta: one line, no forgery.
_CONTROLS = dict.fromkeys((*range(32), 127), " ")


@dataclass(frozen=True, slots=True)
class GeminiHead:
    """A Gemini response head: ``code`` 10-69, ``meta`` text. Only 20 has a body."""

    code: int
    meta: str

    @property
    def has_body(self) -> bool:
        return self.code == 20

    def encode(self) -> bytes:
        return encode_head(self.code, self.meta)


def encode_head(code: int, meta: str) -> bytes:
    """``b"<code> <meta>\\r\\n"``: meta without control characters, at most 1024 bytes
    of UTF-8 (cut on a character boundary). Raises ValueError for a code outside 10-69."""
    if not 10 <= code <= 69:
        raise ValueError(f"Gemini status {code!r} is not in 10-69")
    raw = meta.translate(_CONTROLS).strip().encode("utf-8")
    if len(raw) > MAX_META_BYTES:
        raw = raw[:MAX_META_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return b"%d %b\r\n" % (code, raw)


def response_head(status: str, headers: Iterable[tuple[str, str]],
                  environ: Mapping[str, object]) -> GeminiHead:
    """The Gemini head for a WSGI status and headers, answering the request ``environ``.

    Never raises for what an application may send: an unusable answer (a status
    Gemini cannot express, a redirect target past 1024 bytes, a bad X-Gemini-Status)
    becomes ``42``.
    """
    headers = list(headers)
    chosen = _chosen_by_view(headers)
    if chosen is not None:
        return chosen
    try:
        code = int(status[:3])
    except ValueError:
        return GeminiHead(42, "Invalid response status")
    return map_response(code, _text(_reason(status, code)), headers, environ)


def map_response(code: int, reason: str, headers: list[tuple[str, str]],
                 environ: Mapping[str, object]) -> GeminiHead:
    """The Gemini head for HTTP status ``code`` (docs/gemini.rst has the table)."""
    if 200 <= code < 300:
        return GeminiHead(20, _text(_header(headers, "content-type")) or DEFAULT_CONTENT_TYPE)
    if code in _REDIRECTS:
        return _redirect(code, _text(_header(headers, "location")), environ)
    if code == 403:
        certified = bool(environ.get(GEMINI_CLIENT_CERT))
        return GeminiHead(61, _CERTIFICATE_NOT_AUTHORISED) if certified else GeminiHead(
            60, _CERTIFICATE_REQUIRED)
    gemini = _FIXED.get(code)
    if gemini == 44:
        return GeminiHead(44, _retry_after(_header(headers, "retry-after")))
    if gemini == 60:
        return GeminiHead(60, _CERTIFICATE_REQUIRED)
    if gemini is None:
        gemini = 50 if 400 <= code < 500 else 42
    return GeminiHead(gemini, reason)


def error_head(http_status: int) -> bytes:
    """The server's own answer (a refused request, a crashed view) in Gemini form."""
    return response_head(str(http_status), [], {}).encode()


def _chosen_by_view(headers: list[tuple[str, str]]) -> GeminiHead | None:
    value = _header(headers, STATUS_HEADER.lower())
    if value is None:
        return None
    value = value.strip()
    if not (len(value) == 2 and value.isascii() and value.isdigit() and 10 <= int(value) <= 69):
        return GeminiHead(42, "Invalid X-Gemini-Status")
    meta = unquote_to_bytes(_header(headers, META_HEADER.lower()) or "").decode(
        "utf-8", "replace")
    return GeminiHead(int(value), meta)


def _header(headers: list[tuple[str, str]], lower_name: str) -> str | None:
    for name, value in headers:
        if name.lower() == lower_name:
            return value
    return None


def _text(value: str | None) -> str:
    """A WSGI header value (latin-1 str holding bytes) as the text those bytes are."""
    if not value:
        return ""
    if value.isascii():
        return value
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


def _reason(status: str, code: int) -> str:
    reason = status[4:].strip()
    if reason:
        return reason
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _retry_after(value: str | None) -> str:
    # Retry-After may be seconds or an HTTP date; Gemini's 44 takes seconds only.
    if value and value.strip().isascii() and value.strip().isdigit():
        return value.strip()
    return str(DEFAULT_SLOW_DOWN_SECONDS)


def _redirect(code: int, location: str | None, environ: Mapping[str, object]) -> GeminiHead:
    if not location:
        return GeminiHead(42, "Redirect without a target")
    target = absolute_url(location, environ)
    if len(target.encode("utf-8")) > MAX_META_BYTES or any(c in target for c in "\r\n"):
        return GeminiHead(42, "Redirect target too long")
    return GeminiHead(31 if code in (301, 308) else 30, target)


def request_url(environ: Mapping[str, object]) -> str:
    """The URL the Gemini client asked for, rebuilt from the environ (gemini://...)."""
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost")
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")) or "/"
    url = "gemini://" + host + quote(path.encode("latin-1", "replace"), safe="/!$&'()*+,;=:@~")
    query = str(environ.get("QUERY_STRING", ""))
    return f"{url}?{query}" if query else url


def absolute_url(location: str, environ: Mapping[str, object]) -> str:
    """``location`` made absolute against the request; this capsule's own http(s) URLs
    (Django's build_absolute_uri() gives https:// for a secure request) become gemini://.

    A URL on another host keeps its scheme: it is a deliberate link elsewhere.
    urljoin() knows nothing of gemini://, so the join is done over https://.
    """
    base = "https" + request_url(environ)[len("gemini"):]
    joined = urljoin(base, location)
    parts = urlsplit(joined)
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost").lower()
    if parts.scheme in ("http", "https") and parts.netloc.lower() == host:
        return "gemini" + joined[len(parts.scheme):]
    return joined
