"""SCGI CGI variables -> PEP 3333 WSGI environ, and WSGI status/headers -> CGI response head.

Boundary: this module knows what Apache ``mod_proxy_scgi``/``mod_proxy_fcgi``, nginx
``scgi_pass``/``fastcgi_pass``, lighttpd ``mod_scgi``/``mod_fastcgi`` and Caddy's
``transport fastcgi`` actually send (``docs/frontend-variables.rst``; FastCGI:
``docs/fastcgi.rst``), and every quirk of
theirs is corrected here and nowhere else. It does no I/O and reads no settings: the
server passes in the header dict from ``protocol``, the body object, the constant part of
the environ and the configured mount prefix. Imports: the standard library and
``protocol`` only (no gevent, no Django).

Every environ value that came from the front-end stays a latin-1 ``str`` (the raw bytes,
PEP 3333); Django re-encodes them to bytes. Nothing is ever copied into ``os.environ``.

How the request path is found -- the "full path" is the decoded, normalised request path;
it is then cut into ``SCRIPT_NAME`` + ``PATH_INFO`` on a path-segment boundary:

1. ``PATH_INFO`` sent (lighttpd; an nginx regex location; Apache's
   ``proxy-scgi-pathinfo`` when it works; Caddy's ``transport fastcgi``, with
   ``SCRIPT_NAME ""``): full = SCRIPT_NAME + PATH_INFO, and the front-end's
   SCRIPT_NAME is its split. Exception: Apache's ``proxy-scgi-pathinfo``
   sends a *percent-encoded* PATH_INFO next to the whole *decoded* path in SCRIPT_NAME
   for non-ASCII paths; that PATH_INFO is ignored and rule 3 applies.
2. ``DOCUMENT_URI`` sent (nginx's stock ``scgi_params``): full = DOCUMENT_URI; a
   ``SCRIPT_NAME`` sent alongside (``scgi_param SCRIPT_NAME /app;``) is the split.
   FastCGI only: nginx's stock ``fastcgi_params`` send ``SCRIPT_NAME`` = the whole
   path (``$fastcgi_script_name``); equal to ``DOCUMENT_URI`` it implies no split. A
   ``fastcgi_param SCRIPT_NAME /app;`` after the include arrives as a later copy,
   which wins, and is the split, as is the shorter one ``fastcgi_split_path_info`` makes.
3. ``SCRIPT_NAME`` alone from Apache (known by ``SCRIPT_FILENAME=proxy:...``): it is
   the whole path. ``SCRIPT_FILENAME`` is ``proxy:scgi://<authority>/<rest>`` with
   ``<rest>`` percent-encoded (``proxy:fcgi://...`` from ``mod_proxy_fcgi`` alike);
   when the decoded ``/<rest>`` is a tail of the full path, the part before it is the
   split, else there is none. From anything else (lighttpd's
   ``GET /app``), a missing PATH_INFO is an empty one, as in CGI: rule 1 with "".
   FastCGI AUTHORIZER requests (Apache ``mod_authnz_fcgi``, ``FCGI_ROLE=AUTHORIZER``):
   the variables describe the resource Apache guards; SCRIPT_NAME + PATH_INFO is its
   path and implies no split.
4. Only ``REQUEST_URI`` (a bare SCGI client): full = its path part, percent-decoded to
   bytes, then latin-1; absolute-form ``http://host/path`` gives ``/path``. Nothing: "/".

A configured mount prefix (``FORCE_SCRIPT_NAME``) overrides the split from rules 1-3: a
full path equal to the prefix or under ``prefix + "/"`` gets ``SCRIPT_NAME = prefix``,
anything else ``SCRIPT_NAME = ""`` and ``PATH_INFO = full`` (outside the mount: Django
404s it). ``/application/x`` is not under ``/app``. ``REQUEST_URI`` is never routed on
when a decoded path variable exists: it is raw, not normalised, absolute-form on Apache
and stale after an Apache internal redirect. ``SCRIPT_NAME`` never ends with "/";
``PATH_INFO`` is "" only for a request for exactly the prefix.

Gemini front-ends (Molly Brown, Xitzin; ``SERVER_PROTOCOL=GEMINI``, detected per
request) get their own rules: a GET that is secure, the mount from SCRIPT_NAME, else
SCRIPT_PATH, else GEMINI_URL minus PATH_INFO, and the keys of ``gemini`` (the input,
the client certificate). docs/gemini.rst lists them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

from . import protocol
from .gemini import is_gemini
from .gemini_environ import (
    _gemini_request,
    _prefix_from_config,
    _split_gemini_path,
    _split_host,
    _under,
    _unquote,
)
from .logtext import _text, mask_environ, request_line, set_secret_words

if TYPE_CHECKING:
    from _typeshed.wsgi import InputStream

# A socket peer address: (host, port), (host, port, flowinfo, scope_id) for IPv6, or a
# unix socket path ("" when the peer socket is unnamed).
Peer = tuple[str, int] | tuple[str, int, int, int] | str | None

__all__ = [
    "build_environ",
    "make_base_environ",
    "mask_environ",
    "request_line",
    "response_head",
    "sendfile_path_is_decoded",
    "set_secret_words",
]

# The usual request's environ in C (_speedups.usual_environ), like protocol.py's head
# parser: not built, or switched off with DJANGO_SCGI_PURE_PYTHON=1, build_environ()
# does it all. Its type: _speedups.pyi.
_c_usual_environ: Callable[[object, object, object], bool] | None = None
if not os.environ.get("DJANGO_SCGI_PURE_PYTHON"):
    try:
        from . import _speedups
    except ImportError:
        pass
    else:
        _c_usual_environ = getattr(_speedups, "usual_environ", None)

# Variables removed from every environ. HTTP_PROXY: a client "Proxy:" header, forwarded
# by nginx, would be read as the proxy setting by HTTP libraries (httpoxy).
# HTTP_CONTENT_LENGTH / HTTP_CONTENT_TYPE: nginx and lighttpd copy the client's headers
# next to CONTENT_LENGTH / CONTENT_TYPE; only CONTENT_LENGTH frames the body, and a second,
# possibly different value invites confusion. HTTP_TRANSFER_ENCODING: nginx sends
# "chunked" for a body it has already de-chunked.
_DROPPED = frozenset(
    {"HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING"}
)

# SERVER_PROTOCOL values that are not Gemini's, checked without a call (is_gemini).
_HTTP_PROTOCOLS = frozenset({"HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/3.0", "HTTP/2", "HTTP/3"})

# Values of HTTPS that mean TLS. All three front-ends send "on"; others use "1".
_HTTPS_ON = frozenset({"on", "1", "yes", "true"})

# Headers that describe one hop. A CGI response must not carry them: the front-end
# frames the response towards the client itself, and a chunked Transfer-Encoding from
# the backend reaches the client double-chunked through Apache and nginx.

# Streaming responses nginx is told to pass on unbuffered (response_head): events that
# must reach the client as they happen.
_UNBUFFERED_TYPES = frozenset({"text/event-stream"})

# --- environ ------------------------------------------------------------------------------


def make_base_environ(
    *,
    errors: IO[str],
    file_wrapper: Callable[..., Iterable[bytes]] | None = None,
    multithread: bool = True,
    multiprocess: bool = False,
) -> dict[str, object]:
    """The server's constant ``wsgi.*`` entries of every environ; build it once per server."""
    base: dict[str, object] = {
        "wsgi.version": (1, 0),
        "wsgi.errors": errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        # wsgi.input returns b"" at the end of the body, never blocks past it.
        "wsgi.input_terminated": True,
    }
    if file_wrapper is not None:
        base["wsgi.file_wrapper"] = file_wrapper
    return base


def build_environ(
    cgi: dict[str, str],
    body: InputStream,
    base: Mapping[str, object],
    mount_prefix: str | None = None,
    peer: Peer | Callable[[], Peer] = None,
    fastcgi: bool = False,
) -> dict[str, object]:
    """The WSGI environ for one request, made of ``cgi`` in place and returned.

    ``cgi`` is taken over, not copied: the server parses a fresh dict per request,
    and a copy would cost about as much as the parse. ``base`` holds the server's
    constant ``wsgi.*`` entries (``make_base_environ``); they replace any variable of
    the same name the front-end sent: SCGI names are arbitrary bytes, and a
    variable called "wsgi.errors" must not replace an object the server and Django
    call with a str.

    ``mount_prefix`` is the configured mount point as text, like ``FORCE_SCRIPT_NAME``
    ("/app"; "" or None: find it from what the front-end sent). ``peer`` is the socket
    peer, used for REMOTE_ADDR/REMOTE_PORT only when the front-end sent no REMOTE_ADDR;
    it may be a function returning it, called only then (decoding costs). ``fastcgi``:
    the variables came in a FastCGI PARAMS stream, whose front-ends fill SCRIPT_NAME
    differently (see the module docstring). They may be passed by position: the
    server does, as Python 3.11 runs a call with keywords through a slower path.
    """
    if (_c_usual_environ is not None and not (mount_prefix or fastcgi)
            and _c_usual_environ(cgi, base, body)):
        return cgi  # type: ignore[return-value]  # made the environ in place, as below
    environ: dict[str, object] = cgi  # type: ignore[assignment]
    # keys().isdisjoint() looks the four names up in the dict; the frozenset's
    # isdisjoint() would look every variable up in the set instead.
    if not cgi.keys().isdisjoint(_DROPPED):
        for name in _DROPPED.intersection(cgi):
            del environ[name]
    environ.update(base)
    environ["wsgi.input"] = body
    # The usual request's SERVER_PROTOCOL and scheme are told apart without a call.
    gemini = cgi.get("SERVER_PROTOCOL") not in _HTTP_PROTOCOLS and is_gemini(cgi)
    if gemini:
        _gemini_request(environ, cgi)
    if cgi.get("REQUEST_SCHEME") == "http" and not cgi.get("HTTPS"):
        environ["wsgi.url_scheme"] = scheme = "http"  # what _url_scheme() gives it
    else:
        environ["wsgi.url_scheme"] = scheme = _url_scheme(cgi)
    # The rest fills in only what the front-end left out: all three send these.
    if not cgi.get("REQUEST_METHOD"):
        environ["REQUEST_METHOD"] = "GET"
    if not cgi.get("SERVER_PROTOCOL"):
        environ["SERVER_PROTOCOL"] = "HTTP/1.0"
    if "QUERY_STRING" not in cgi:
        environ["QUERY_STRING"] = cgi.get("REQUEST_URI", "").partition("?")[2]
    if not (cgi.get("SERVER_NAME") and cgi.get("SERVER_PORT")):
        _set_server(environ, cgi, scheme)
    if peer is not None and not cgi.get("REMOTE_ADDR"):
        _set_remote(environ, peer() if callable(peer) else peer)
    whole = None
    if not (gemini or mount_prefix or fastcgi or cgi.get("SCRIPT_NAME")):
        # No mount anywhere (nginx's scgi_params, lighttpd at the root): the whole
        # path is PATH_INFO, else DOCUMENT_URI, as _locate() finds it (rules 1 and 2).
        whole = cgi.get("PATH_INFO")
        if whole is None:
            whole = cgi.get("DOCUMENT_URI")
    if whole:
        environ["PATH_INFO"] = whole
        environ["SCRIPT_NAME"] = ""
    else:
        _set_path(environ, cgi, mount_prefix, gemini, fastcgi)
    if ", " in cgi.get("HTTP_COOKIE", "") and _from_apache(cgi):
        environ["HTTP_COOKIE"] = _apache_cookie(cgi["HTTP_COOKIE"])
    return environ


def _set_path(environ: dict[str, object], cgi: Mapping[str, str], mount_prefix: str | None,
              gemini: bool, fastcgi: bool) -> None:
    """SCRIPT_NAME and PATH_INFO by the module docstring's rules."""
    if gemini:
        script_name, path_info = _split_gemini_path(cgi, mount_prefix)
    else:
        script_name, path_info = _split_path(cgi, mount_prefix, fastcgi)
    environ["PATH_INFO"] = path_info
    environ["SCRIPT_NAME"] = script_name if script_name.isascii() else _utf8_safe(script_name)


def _utf8_safe(path: str) -> str:
    """``path`` with its bytes percent-encoded when they are not UTF-8.

    Django decodes SCRIPT_NAME as UTF-8 without a fallback (it re-percent-encodes a
    broken PATH_INFO, not a broken SCRIPT_NAME), so a client's ``/%FF/`` that a
    front-end put into SCRIPT_NAME (lighttpd at / without fix-root-scriptname) would
    be a 500 and a traceback per request.
    """
    raw = path.encode("latin-1")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return quote(raw, safe="/;=,:@!$&'()*+~")
    return path


def _from_apache(cgi: Mapping[str, str]) -> bool:
    # mod_proxy_scgi always sends SCRIPT_FILENAME=proxy:...; nothing else does.
    return cgi.get("SCRIPT_FILENAME", "").startswith("proxy:")


def _apache_cookie(value: str) -> str:
    """Undo Apache's ``", "`` join of repeated Cookie headers.

    Django splits cookies on ";" only, so "a=1, b=2" would be one cookie ``a`` with
    the value "1, b=2". A comma is not allowed in a cookie value (RFC 6265), so a
    ", " followed by ``name=`` is a header boundary; anything else is left alone.
    """
    pieces = value.split(", ")
    joined = [pieces[0]]
    for piece in pieces[1:]:
        if "=" in piece and ";" not in piece.partition("=")[0]:
            joined.append("; " + piece)
        else:
            joined.append(", " + piece)
    return "".join(joined)


def _url_scheme(cgi: Mapping[str, str]) -> str:
    # X-Forwarded-Proto is deliberately ignored: trusting it is Django's
    # SECURE_PROXY_SSL_HEADER decision.
    https = cgi.get("HTTPS")
    if https and https.lower() in _HTTPS_ON:
        return "https"
    scheme = cgi.get("REQUEST_SCHEME")
    return "https" if scheme and scheme.lower() == "https" else "http"


def _set_server(environ: dict[str, object], cgi: Mapping[str, str], scheme: str) -> None:
    # All three front-ends send SERVER_NAME and SERVER_PORT, and they are kept as sent
    # (lighttpd sends an empty SERVER_NAME for a request without Host). A bare client
    # may send neither: take them from Host, as Django's get_host() prefers anyway.
    name = cgi.get("SERVER_NAME")
    port = cgi.get("SERVER_PORT")
    host_name, host_port = _split_host(cgi.get("HTTP_HOST", ""))
    environ["SERVER_NAME"] = name or host_name or "localhost"
    environ["SERVER_PORT"] = port or host_port or ("443" if scheme == "https" else "80")


def _set_remote(environ: dict[str, object], peer: Peer) -> None:
    # Only a bare client omits REMOTE_ADDR. Both values then come from the peer (never
    # the front-end's REMOTE_ADDR with the peer's port: that pair would be invented).
    if isinstance(peer, tuple) and len(peer) >= 2:  # (host, port) or IPv6 4-tuple
        environ["REMOTE_ADDR"] = str(peer[0])
        environ["REMOTE_PORT"] = str(peer[1])
    else:  # a unix socket peer has no address; "" keeps META["REMOTE_ADDR"] readable
        environ["REMOTE_ADDR"] = ""


# --- path ---------------------------------------------------------------------------------


def _split_path(cgi: Mapping[str, str], mount_prefix: str | None,
                fastcgi: bool = False) -> tuple[str, str]:
    prefix = _prefix_from_config(mount_prefix) if mount_prefix else ""
    full, split = _locate(cgi, not prefix, fastcgi)
    if not prefix and split:
        prefix = split.rstrip("/")
    return _under(full or "/", prefix)


def _locate(cgi: Mapping[str, str], want_split: bool,
            fastcgi: bool = False) -> tuple[str, str | None]:
    """(full decoded path, the SCRIPT_NAME the front-end implies or None).

    Without ``want_split`` (a configured mount prefix decides) Apache's split, the
    one that takes work to find, is not looked for.
    """
    script_name = cgi.get("SCRIPT_NAME", "")
    path_info = cgi.get("PATH_INFO")
    if fastcgi and cgi.get("FCGI_ROLE") == "AUTHORIZER":
        # Apache's mod_authnz_fcgi asks about a resource it serves itself: its CGI
        # variables describe that resource (SCRIPT_NAME = its path), not our mount.
        full = script_name + (path_info or "")
        return full or _path_from_uri(cgi.get("REQUEST_URI", "")), None
    if path_info is not None and not _is_encoded_copy(cgi, script_name, path_info):
        return script_name + path_info, script_name
    document_uri = cgi.get("DOCUMENT_URI")
    if document_uri:
        if fastcgi and script_name == document_uri:
            # nginx's fastcgi_params: SCRIPT_NAME $fastcgi_script_name, the whole path.
            return document_uri, None
        return document_uri, script_name
    if _from_apache(cgi):
        if not want_split:
            return script_name, None
        return script_name, _apache_split(script_name, cgi["SCRIPT_FILENAME"])
    if script_name:
        # CGI: no PATH_INFO means an empty one (lighttpd's "GET /app" for "/app").
        return script_name, script_name
    return _path_from_uri(cgi.get("REQUEST_URI", "")), None


def _is_encoded_copy(cgi: Mapping[str, str], script_name: str, path_info: str) -> bool:
    # Apache's proxy-scgi-pathinfo builds PATH_INFO from the re-encoded URL; for a path
    # that re-encodes differently (non-ASCII, space, "?") it then leaves the whole
    # decoded path in SCRIPT_NAME and sends PATH_INFO percent-encoded (docs/frontend-variables.rst
    # §2.2). When it works, PATH_INFO equals its own re-encoding and so has no "%".
    if "%" not in path_info:
        return False
    return _from_apache(cgi) and script_name.endswith(_unquote(path_info))


def _apache_split(full: str, script_filename: str) -> str | None:
    """The mount point Apache implies: ``full`` minus the backend path, or None."""
    tail = _apache_backend_path(script_filename)
    if tail is None or not full.endswith(tail):
        return None
    # ``tail`` starts with "/", so the cut falls on a segment boundary.
    return full[: len(full) - len(tail)]


def _apache_backend_path(script_filename: str) -> str | None:
    # "proxy:scgi://127.0.0.1:14000/some/path" or, for a unix socket backend,
    # "proxy:scgi://localhost/some/path": the authority is whatever the ProxyPass URL
    # said. The rest is percent-encoded (Apache re-encodes the path it decoded).
    if not script_filename.startswith("proxy:"):
        return None
    _, scheme_sep, rest = script_filename.partition("://")
    if not scheme_sep:
        return None
    # lstrip: "ProxyPass /app scgi://h:p/" maps /app/x to "//x".
    return "/" + _unquote(rest.partition("/")[2].lstrip("/"))


def _path_from_uri(uri: str) -> str:
    path = uri.partition("?")[0]
    if not path.startswith("/"):
        _, scheme_sep, rest = path.partition("://")
        if scheme_sep:  # absolute-form: drop scheme and authority
            path = "/" + rest.partition("/")[2]
    return _unquote(path)


# --- response -----------------------------------------------------------------------------


def response_head(status: str, headers: Iterable[tuple[str, str]], *,
                  streaming: bool = False) -> bytes:
    """The CGI response head for a WSGI status and header list.

    Hop-by-hop headers are dropped (``protocol.encode_response_head``); repeated
    headers (Set-Cookie) stay separate lines. A ``Status`` header set by the
    application is dropped too (there, with them): the status is the one the
    application returned, and Apache and lighttpd would otherwise answer with the
    header's (CGI lets a script choose its status that way). For a streaming
    ``text/event-stream`` response ``X-Accel-Buffering: no`` is added unless the
    application set the header itself:
    nginx would otherwise hold the events back. Every other response stays buffered by
    nginx, which takes it as fast as runscgi sends it, so a slow client cannot pin a
    backend slot (and its database connection) for the length of its download; a view
    that wants its stream passed on chunk by chunk sets ``X-Accel-Buffering: no``.
    Raises ValueError (from ``protocol.encode_response_head``) on a bad status, name or
    value.
    """
    if streaming and _wants_unbuffered(headers):
        headers = [*headers, ("X-Accel-Buffering", "no")]  # the application's list stays
    return protocol.encode_response_head(status, headers)


def _wants_unbuffered(headers: Iterable[tuple[str, str]]) -> bool:
    content_type = ""
    for name, value in headers:
        lower = name.lower()
        if lower == "x-accel-buffering":
            return False  # the application decided
        if lower == "content-type":
            content_type = value
    return content_type.partition(";")[0].strip().lower() in _UNBUFFERED_TYPES


def sendfile_path_is_decoded(environ: Mapping[str, object]) -> bool:
    """Whether the front-end that sent ``environ`` percent-decodes an ``X-Sendfile`` path.

    lighttpd does (it reads the header as a URL path: ``100%41.txt`` names
    ``100A.txt``); Apache's ``ProxySCGISendfile`` takes the path as it is.
    """
    return _text(environ.get("SERVER_SOFTWARE")).lower().startswith("lighttpd")
