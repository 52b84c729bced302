"""The Gemini front-ends' environ rules, and the path helpers environ.py shares with them.

Part of ``environ.py``'s job (every front-end quirk is corrected there), kept apart to
keep that module short: what Molly Brown and Xitzin send (``docs/gemini.rst``) made a
plain Django GET, and the small pure helpers on decoded paths and Host values that
both use. Imports: the standard library and ``gemini`` only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from .gemini import (
    GEMINI,
    GEMINI_CLIENT_CERT,
    GEMINI_DEFAULT_PORT,
    GEMINI_INPUT,
    client_cert_sha256,
    gemini_input,
)

__all__ = [
    "_gemini_request",
    "_prefix_from_config",
    "_split_gemini_path",
    "_split_host",
    "_under",
    "_unquote",
]


def _gemini_request(environ: dict[str, object], cgi: Mapping[str, str]) -> None:
    """Make a Gemini request a plain Django GET that is secure.

    Gemini is always TLS, so ``HTTPS=on``: ``request.is_secure()`` is true and
    SECURE_SSL_REDIRECT leaves the request alone (the scheme stays "https" because
    Django's is_secure() is ``scheme == "https"``; ``django_scgi.capsule`` makes
    ``request.scheme`` "gemini" and the server's answer makes redirects gemini://).
    Neither front-end sends Host: it comes from GEMINI_URL (what the client asked
    for) or SERVER_NAME, so ALLOWED_HOSTS still guards it.
    """
    environ["REQUEST_METHOD"] = "GET"
    environ["HTTPS"] = "on"
    environ[GEMINI] = True
    if not cgi.get("HTTP_HOST"):
        environ["HTTP_HOST"] = _gemini_host(cgi)
    environ[GEMINI_INPUT] = gemini_input(cgi.get("QUERY_STRING", ""))
    fingerprint = client_cert_sha256(cgi)
    if fingerprint:
        environ[GEMINI_CLIENT_CERT] = fingerprint


def _gemini_host(cgi: Mapping[str, str]) -> str:
    # The authority of GEMINI_URL ("gemini://host[:port]/path"), else SERVER_NAME with
    # SERVER_PORT unless it is Gemini's default. A value that cannot be a host is
    # left for Django's own validation (get_host() refuses it with a 400).
    url = cgi.get("GEMINI_URL", "")
    _, scheme_sep, rest = url.partition("://")
    if scheme_sep:
        authority = rest.partition("/")[0].partition("?")[0]
        host, port = _split_host(authority)
        if host:
            return authority if port and port != GEMINI_DEFAULT_PORT else host
    name = cgi.get("SERVER_NAME") or "localhost"
    port = cgi.get("SERVER_PORT", "")
    return f"{name}:{port}" if port and port != GEMINI_DEFAULT_PORT else name


def _split_gemini_path(cgi: Mapping[str, str], mount_prefix: str | None) -> tuple[str, str]:
    """SCRIPT_NAME/PATH_INFO for a Gemini front-end: its mount + PATH_INFO, cut as usual.

    Both send PATH_INFO below the mount. The mount is SCRIPT_NAME (a server that sets
    it), else Molly Brown's SCRIPT_PATH, else GEMINI_URL's path minus PATH_INFO (Xitzin
    sends SCRIPT_NAME="" even when mounted). Molly Brown matches its mount as a plain
    string prefix ("/app" takes "/application", PATH_INFO "lication"): joined again,
    that path is not under "/app", so it is routed outside the mount and Django 404s it.
    """
    mount, path_info = _gemini_mount(cgi)
    if path_info and mount.endswith("/") and path_info.startswith("/"):
        mount = mount.rstrip("/")
    prefix = _prefix_from_config(mount_prefix) if mount_prefix else mount.rstrip("/")
    return _under(mount + path_info or "/", prefix)


def _gemini_mount(cgi: Mapping[str, str]) -> tuple[str, str]:
    """(mount, PATH_INFO), both decoded.

    Molly Brown sends PATH_INFO decoded; Xitzin sends it as the URL had it, encoded
    ("/caf%C3%A9"): a PATH_INFO that is the tail of GEMINI_URL's raw path is decoded.
    """
    path_info = cgi.get("PATH_INFO", "")
    mount = cgi.get("SCRIPT_NAME") or cgi.get("SCRIPT_PATH")
    if mount:
        return mount, path_info
    _, scheme_sep, rest = cgi.get("GEMINI_URL", "").partition("://")
    if not scheme_sep:
        return "", path_info
    raw = "/" + rest.partition("/")[2].partition("?")[0]
    if raw.endswith(path_info):
        return _unquote(raw[: len(raw) - len(path_info)]), _unquote(path_info)
    decoded = _unquote(raw)
    if decoded.endswith(path_info):
        return decoded[: len(decoded) - len(path_info)], path_info
    return "", path_info


# --- shared path helpers ------------------------------------------------------------------


def _split_host(host: str) -> tuple[str, str]:
    """("example.com", "8443") from "example.com:8443"; IPv6 keeps its brackets.

    "[::1]" needs no special case: its last ":" is followed by "1]", not a port.
    """
    name, colon, port = host.rpartition(":")
    if not colon:
        return host, ""
    # isascii(): str.isdigit() also accepts latin-1 superscripts such as "\xb2".
    if not port or (port.isascii() and port.isdigit()):
        return name, port
    return host, ""


def _unquote(text: str) -> str:
    # Percent-decode to bytes, then latin-1 -- the same form the front-ends send their
    # decoded paths in. The str is encoded as latin-1 first: unquote_to_bytes() would
    # encode it as UTF-8 and double-encode raw non-ASCII bytes.
    if "%" not in text:
        return text
    return unquote_to_bytes(text.encode("latin-1")).decode("latin-1")


@functools.lru_cache(maxsize=16)  # one value per server: computed once, not per request
def _prefix_from_config(mount_prefix: str) -> str:
    # FORCE_SCRIPT_NAME is text; the environ holds UTF-8 bytes as latin-1. "/" is root.
    prefix = mount_prefix.rstrip("/")
    if not prefix.isascii():
        prefix = prefix.encode("utf-8").decode("latin-1")
    return prefix


def _under(full: str, prefix: str) -> tuple[str, str]:
    """(prefix, rest) when ``full`` is ``prefix`` or lies below it, else ("", full).

    "/application/x" is not under "/app"; nothing is under "".
    """
    if prefix and full.startswith(prefix):
        cut = len(prefix)
        if len(full) == cut or full[cut] == "/":
            return prefix, full[cut:]
    return "", full
