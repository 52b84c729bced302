"""What the logs may show of a request: secrets masked, the request line escaped.

A request header or query parameter whose name holds a secret word is masked in error
logs and access lines; a request line is one printable ASCII token that cannot forge or
break a log line. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

__all__ = ["DEFAULT_SECRET_WORDS", "mask_environ", "request_line", "set_secret_words"]

_MASK = "********"
# The masking rule for logs (mask_environ, request_line): a request header (HTTP_*,
# also behind Apache's REDIRECT_ prefixes) or a query parameter is secret when its
# name contains one of these words, case-insensitively. Over-masking costs a log
# reader a value; under-masking leaks a credential, so the words are broad (AUTH covers
# Authorization and X-Auth-*, SIG covers X-Signature and sig=). Add words with
# SCGI_MASK_WORDS (set_secret_words).
DEFAULT_SECRET_WORDS = (
    "AUTH", "COOKIE", "CREDENTIAL", "CSRF", "KEY", "OTP", "PASS", "SECRET", "SESSION",
    "SIG", "TOKEN",
)
_secret_words: tuple[str, ...] = DEFAULT_SECRET_WORDS
# Values safe to show in an error log as they are: they cannot hold a secret or a
# large object. Everything else that is not a str is shown by its type name.
_PLAIN_TYPES = (bool, int, float, type(None))

# For log lines: control characters, space, '"' and bytes >= 0x7f become %XX, so a
# request line is one printable ASCII token that cannot forge or break a log line.
_LOG_ESCAPES = {c: f"%{c:02X}" for c in (*range(0x21), 0x22, *range(0x7F, 0x100))}
# Characters left alone when re-quoting a decoded path (RFC 3986 pchar plus "/").
_PATH_SAFE = "/!$&'()*+,;=:@~"


def set_secret_words(extra: Iterable[str]) -> None:
    """Mask names holding any of ``extra`` too, besides ``DEFAULT_SECRET_WORDS``.

    Process-wide: the server calls it once at start with ``SCGI_MASK_WORDS``.
    """
    global _secret_words, _secret_parameter
    _secret_words = tuple(dict.fromkeys(
        [*DEFAULT_SECRET_WORDS, *(word.upper() for word in extra if word)]))
    _secret_parameter = _parameter_pattern(_secret_words)


def _parameter_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """A query parameter (``name=value`` between ``&`` or ``;``) whose name holds a word."""
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"((?:^|[&;])[^&;=]*(?:{alternatives})[^&;=]*=)[^&;]*", re.IGNORECASE)


_secret_parameter = _parameter_pattern(DEFAULT_SECRET_WORDS)


def mask_environ(environ: Mapping[str, object]) -> dict[str, object]:
    """A copy for error logs: secrets replaced by "********", objects by their type."""
    return {name: _masked(name, value) for name, value in environ.items()}


def _masked(name: str, value: object) -> object:
    if isinstance(value, str):
        if _is_secret(name):
            return _MASK
        return _mask_query(value) if _holds_query(name) else value
    if isinstance(value, _PLAIN_TYPES) or (
        isinstance(value, tuple) and all(isinstance(item, _PLAIN_TYPES) for item in value)
    ):
        return value
    return f"<{type(value).__name__}>"


def _is_secret(name: str) -> bool:
    upper = name.upper()
    # An Apache internal redirect copies every variable as REDIRECT_<name>, cookies too.
    while upper.startswith("REDIRECT_"):
        upper = upper[len("REDIRECT_"):]
    return upper.startswith("HTTP_") and any(word in upper[5:] for word in _secret_words)


def _holds_query(name: str) -> bool:
    return name.upper().removeprefix("REDIRECT_").removeprefix("REDIRECT_") in (
        "QUERY_STRING", "REQUEST_URI", "URL", "RAW_URI")


def _mask_query(text: str) -> str:
    """``text`` (a query string, or a URI with one) with secret parameters' values masked."""
    if "=" not in text:
        return text
    path, mark, query = text.rpartition("?")
    if not mark:
        path, query = "", text
    return path + mark + _secret_parameter.sub(rf"\1{_MASK}", query)


def request_line(environ: Mapping[str, object]) -> str:
    """'"GET /app/path?q=1 HTTP/1.1"' for log lines; "-" for what is missing.

    The raw REQUEST_URI when the front-end sent one (what the client asked for),
    otherwise SCRIPT_NAME + PATH_INFO re-quoted plus the query string. Never raises.
    """
    method = _log_text(environ.get("REQUEST_METHOD")) or "-"
    uri = _log_text(_mask_query(_text(environ.get("REQUEST_URI")))) or _rebuilt_uri(environ) or "-"
    protocol_ = _log_text(environ.get("SERVER_PROTOCOL")) or "-"
    return f'"{method} {uri} {protocol_}"'


def _rebuilt_uri(environ: Mapping[str, object]) -> str:
    path = _text(environ.get("SCRIPT_NAME")) + _text(environ.get("PATH_INFO"))
    if not path:
        return ""
    uri = quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE)
    query = _log_text(_mask_query(_text(environ.get("QUERY_STRING"))))
    return f"{uri}?{query}" if query else uri


def _log_text(value: object) -> str:
    text = _text(value)
    # Printable ASCII but for space and '"' needs no escape: four C scans instead of
    # translate()'s mapping lookup per character (the access line's largest cost).
    if text.isascii() and text.isprintable() and " " not in text and '"' not in text:
        return text
    return text.translate(_LOG_ESCAPES)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"
