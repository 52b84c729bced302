"""Gemini without a network: the environ rules for Gemini front-ends, the mapping of
Django's answers to Gemini heads, and the Django-side API (``django_scgi.capsule``).

The CGI variables below are what Molly Brown (Debian's package) and Xitzin 0.8's SCGI
client sent on the wire (Molly Brown's order is random on every request; these are
three real orders). tests/test_gemini_frontends.py drives the real front-ends.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from pathlib import Path

import pytest
from django.test import RequestFactory

from django_scgi import capsule, gemini
from django_scgi.environ import build_environ

CERT_HEX = "92339cdf7bda3c19aa0b62e33921d9d17c41b314239310bea031c293f589b99b"

MOLLY = [  # gemini://localhost:19650/app/caf%C3%A9/x?hello%20world
    ("SERVER_NAME", "localhost"), ("SERVER_PORT", "19650"), ("CONTENT_LENGTH", "0"),
    ("SCGI", "1"), ("SCRIPT_PATH", "/app"), ("PATH_INFO", "/caf\xc3\xa9/x"),
    ("QUERY_STRING", "hello%20world"), ("REQUEST_METHOD", ""), ("SERVER_PROTOCOL", "GEMINI"),
    ("SERVER_SOFTWARE", "MOLLY_BROWN"), ("REMOTE_ADDR", "127.0.0.1"),
]
MOLLY_CERT_PREFIX_MATCH = [  # gemini://localhost:19650/application, with a certificate
    ("REQUEST_METHOD", ""), ("SERVER_PORT", "19650"), ("TLS_CLIENT_HASH", CERT_HEX),
    ("TLS_CLIENT_SUBJECT", "CN=client"), ("AUTH_TYPE", "Certificate"), ("QUERY_STRING", ""),
    ("TLS_CLIENT_ISSUER_CN", "client"), ("SCGI", "1"), ("PATH_INFO", "lication"),
    ("SERVER_NAME", "localhost"), ("SERVER_SOFTWARE", "MOLLY_BROWN"),
    ("REMOTE_ADDR", "127.0.0.1"), ("SERVER_PROTOCOL", "GEMINI"),
    ("TLS_CLIENT_ISSUER", "CN=client"), ("TLS_CLIENT_SUBJECT_CN", "client"),
    ("CONTENT_LENGTH", "0"), ("SCRIPT_PATH", "/app"),
]
MOLLY_MOUNT_ITSELF = [  # gemini://localhost:19650/app
    ("SCRIPT_PATH", "/app"), ("QUERY_STRING", ""), ("SERVER_NAME", "localhost"),
    ("SERVER_SOFTWARE", "MOLLY_BROWN"), ("REMOTE_ADDR", "127.0.0.1"), ("SCGI", "1"),
    ("REQUEST_METHOD", ""), ("SERVER_PORT", "19650"), ("SERVER_PROTOCOL", "GEMINI"),
    ("CONTENT_LENGTH", "0"), ("PATH_INFO", ""),
]
XITZIN = [  # gemini://host.example/api/ok?a%20b, mounted at /api, with a certificate
    ("CONTENT_LENGTH", "0"), ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "GEMINI"),
    ("SERVER_SOFTWARE", "Xitzin/0.1.0"), ("GEMINI_URL", "gemini://host.example/api/ok?a%20b"),
    ("SCRIPT_NAME", ""), ("PATH_INFO", "/ok"), ("QUERY_STRING", "a%20b"),
    ("SERVER_NAME", "host.example"), ("SERVER_PORT", "1965"), ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_HOST", "127.0.0.1"), ("TLS_CLIENT_HASH", f"sha256:{CERT_HEX}"),
    ("TLS_CLIENT_AUTHORISED", "1"), ("AUTH_TYPE", "CERTIFICATE"), ("SCGI", "1"),
]
XITZIN_ENCODED = [  # gemini://testserver/api/caf%C3%A9/x?hello%20world: PATH_INFO encoded
    ("CONTENT_LENGTH", "0"), ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "GEMINI"),
    ("SERVER_SOFTWARE", "Xitzin/0.1.0"),
    ("GEMINI_URL", "gemini://testserver/api/caf%C3%A9/x?hello%20world"), ("SCRIPT_NAME", ""),
    ("PATH_INFO", "/caf%C3%A9/x"), ("QUERY_STRING", "hello%20world"),
    ("SERVER_NAME", "testserver"), ("SERVER_PORT", "1965"), ("TLS_CLIENT_AUTHORISED", "0"),
    ("SCGI", "1"),
]
XITZIN_PORT_ROOT = [  # gemini://127.0.0.1:1966/ mounted at /
    ("CONTENT_LENGTH", "0"), ("SERVER_PROTOCOL", "GEMINI"),
    ("GEMINI_URL", "gemini://127.0.0.1:1966/"), ("SCRIPT_NAME", ""), ("PATH_INFO", "/"),
    ("QUERY_STRING", ""), ("SERVER_NAME", "127.0.0.1"), ("SERVER_PORT", "1966"),
    ("TLS_CLIENT_AUTHORISED", "0"), ("SCGI", "1"),
]


def environ_of(pairs, mount_prefix=None, **extra):
    cgi = dict(pairs)
    cgi.update(extra)
    return build_environ(cgi, io.BytesIO(), {}, mount_prefix=mount_prefix)


# --- the environ ----------------------------------------------------------------------------

# (id, pairs, mount prefix, expected environ entries)
ENVIRON_CASES = [
    ("molly", MOLLY, None, {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9/x",
        "HTTP_HOST": "localhost:19650", "HTTPS": "on", "wsgi.url_scheme": "https",
        gemini.GEMINI: True, gemini.GEMINI_INPUT: "hello world",
        "QUERY_STRING": "hello%20world"}),
    ("molly-string-prefix-is-not-the-mount", MOLLY_CERT_PREFIX_MATCH, None, {
        "SCRIPT_NAME": "", "PATH_INFO": "/application", gemini.GEMINI_CLIENT_CERT: CERT_HEX}),
    ("molly-the-mount-itself", MOLLY_MOUNT_ITSELF, None, {"SCRIPT_NAME": "/app",
                                                          "PATH_INFO": ""}),
    ("molly-configured-prefix-wins", MOLLY, "/app/caf\xe9", {
        "SCRIPT_NAME": "/app/caf\xc3\xa9", "PATH_INFO": "/x"}),
    ("xitzin-mount-from-gemini-url", XITZIN, None, {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/api", "PATH_INFO": "/ok",
        "HTTP_HOST": "host.example", gemini.GEMINI_INPUT: "a b",
        gemini.GEMINI_CLIENT_CERT: CERT_HEX}),
    ("xitzin-encoded-path-info", XITZIN_ENCODED, None, {
        "SCRIPT_NAME": "/api", "PATH_INFO": "/caf\xc3\xa9/x", "HTTP_HOST": "testserver",
        gemini.GEMINI_INPUT: "hello world", gemini.GEMINI_CLIENT_CERT: None}),
    ("xitzin-the-mount-itself", [*XITZIN_ENCODED, ("GEMINI_URL", "gemini://testserver/api"),
                                 ("PATH_INFO", "")], None, {"SCRIPT_NAME": "/api",
                                                            "PATH_INFO": ""}),
    ("xitzin-encoded-mount", [*XITZIN_ENCODED, ("GEMINI_URL", "gemini://t/m%C3%A9/caf%C3%A9/x")],
     None, {"SCRIPT_NAME": "/m\xc3\xa9", "PATH_INFO": "/caf\xc3\xa9/x"}),
    ("decoded-path-info-with-gemini-url", [*XITZIN_ENCODED, ("PATH_INFO", "/caf\xc3\xa9/x")],
     None, {"SCRIPT_NAME": "/api", "PATH_INFO": "/caf\xc3\xa9/x"}),
    ("path-info-not-in-the-url", [*XITZIN_ENCODED, ("PATH_INFO", "/other")], None, {
        "SCRIPT_NAME": "", "PATH_INFO": "/other"}),
    ("xitzin-root-other-port", XITZIN_PORT_ROOT, None, {
        "SCRIPT_NAME": "", "PATH_INFO": "/", "HTTP_HOST": "127.0.0.1:1966",
        gemini.GEMINI_INPUT: ""}),
    # A server that sends SCRIPT_NAME: it is the mount, before SCRIPT_PATH.
    ("script-name-first", [*MOLLY, ("SCRIPT_NAME", "/app/caf\xc3\xa9")], None, {
        "SCRIPT_NAME": "/app/caf\xc3\xa9", "PATH_INFO": "/caf\xc3\xa9/x"}),
    ("a-sent-host-is-kept", [*XITZIN, ("HTTP_HOST", "sent.example")], None, {
        "HTTP_HOST": "sent.example"}),
    ("plus-is-a-plus", [*XITZIN, ("QUERY_STRING", "1+1%20=%202")], None, {
        gemini.GEMINI_INPUT: "1+1 = 2"}),
]


@pytest.mark.parametrize(("pairs", "mount", "expected"), [c[1:] for c in ENVIRON_CASES],
                         ids=[c[0] for c in ENVIRON_CASES])
def test_gemini_environ(pairs, mount, expected):
    environ = environ_of(pairs, mount)
    assert {name: environ.get(name) for name in expected} == expected


def test_http_requests_get_no_gemini_keys():
    environ = environ_of([("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("REQUEST_METHOD", "GET"),
                          ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_URI", "/a?x%20y"),
                          ("TLS_CLIENT_HASH", CERT_HEX)])
    assert gemini.GEMINI not in environ and gemini.GEMINI_INPUT not in environ
    assert gemini.GEMINI_CLIENT_CERT not in environ
    assert environ["wsgi.url_scheme"] == "http" and "HTTP_HOST" not in environ


@pytest.mark.parametrize(("sent", "normalised"), [
    ({"TLS_CLIENT_HASH": CERT_HEX}, CERT_HEX),  # Molly Brown
    ({"TLS_CLIENT_HASH": f"sha256:{CERT_HEX}", "TLS_CLIENT_AUTHORISED": "1"}, CERT_HEX),  # Xitzin
    ({"TLS_CLIENT_HASH": f"SHA256:{CERT_HEX.upper()}"}, CERT_HEX),
    ({"TLS_CLIENT_HASH": ":".join(CERT_HEX[i:i + 2] for i in range(0, 64, 2))}, CERT_HEX),
    ({"TLS_CLIENT_HASH": f"sha256:{CERT_HEX}", "TLS_CLIENT_AUTHORISED": "0"}, ""),
    ({"TLS_CLIENT_HASH": "sha1:" + "a" * 40}, ""),
    ({"TLS_CLIENT_HASH": CERT_HEX[:-1]}, ""),
    ({"TLS_CLIENT_HASH": CERT_HEX[:-1] + "g"}, ""),
    ({"TLS_CLIENT_AUTHORISED": "0"}, ""),
    ({}, ""),
])
def test_client_certificate_is_normalised(sent, normalised):
    assert gemini.client_cert_sha256(sent) == normalised


@pytest.mark.parametrize(("query", "text"), [
    ("", ""), ("hello%20world", "hello world"), ("a+b", "a+b"), ("caf%C3%A9", "caf\xe9"),
    ("caf\xc3\xa9", "caf\xe9"), ("%FF", "\ufffd"), ("100%25", "100%"),
])
def test_gemini_input_is_the_query_percent_decoded(query, text):
    assert gemini.gemini_input(query) == text


# --- Django's answers as Gemini heads ---------------------------------------------------------

REQUEST = {"HTTP_HOST": "localhost:19650", "SCRIPT_NAME": "/app", "PATH_INFO": "/dir/page",
           "QUERY_STRING": ""}
WITH_CERT = {**REQUEST, gemini.GEMINI_CLIENT_CERT: CERT_HEX}
GEMTEXT = [("Content-Type", "text/gemini")]

# (status, headers, environ, expected head)
MAPPING = [
    ("200 OK", GEMTEXT, REQUEST, b"20 text/gemini\r\n"),
    ("200 OK", [("Content-Type", "text/html; charset=utf-8")], REQUEST,
     b"20 text/html; charset=utf-8\r\n"),
    ("200 OK", [], REQUEST, b"20 text/gemini\r\n"),
    ("204 No Content", [], REQUEST, b"20 text/gemini\r\n"),
    ("301 Moved Permanently", [("Location", "/app/new/")], REQUEST,
     b"31 gemini://localhost:19650/app/new/\r\n"),
    ("308 Permanent Redirect", [("Location", "other")], REQUEST,
     b"31 gemini://localhost:19650/app/dir/other\r\n"),
    ("302 Found", [("Location", "https://localhost:19650/app/x?q=1")], REQUEST,
     b"30 gemini://localhost:19650/app/x?q=1\r\n"),
    ("303 See Other", [("Location", "gemini://elsewhere.example/")], REQUEST,
     b"30 gemini://elsewhere.example/\r\n"),
    ("307 Temporary Redirect", [("Location", "https://elsewhere.example/")], REQUEST,
     b"30 https://elsewhere.example/\r\n"),
    ("302 Found", [], REQUEST, b"42 Redirect without a target\r\n"),
    ("302 Found", [("Location", "/" + "a" * 1100)], REQUEST, b"42 Redirect target too long\r\n"),
    ("304 Not Modified", [], REQUEST, b"42 Not Modified\r\n"),
    ("404 Not Found", [], REQUEST, b"51 Not Found\r\n"),
    ("410 Gone", [], REQUEST, b"52 Gone\r\n"),
    ("400 Bad Request", [], REQUEST, b"59 Bad Request\r\n"),
    ("414 URI Too Long", [], REQUEST, b"59 URI Too Long\r\n"),
    ("431 Request Header Fields Too Large", [], REQUEST,
     b"59 Request Header Fields Too Large\r\n"),
    ("401 Unauthorized", [], REQUEST, b"60 Client certificate required\r\n"),
    ("403 Forbidden", [], REQUEST, b"60 Client certificate required\r\n"),
    ("403 Forbidden", [], WITH_CERT, b"61 Certificate not authorised\r\n"),
    ("429 Too Many Requests", [("Retry-After", "7")], REQUEST, b"44 7\r\n"),
    ("429 Too Many Requests", [("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")], REQUEST,
     b"44 60\r\n"),
    ("429 Too Many Requests", [], REQUEST, b"44 60\r\n"),
    ("503 Service Unavailable", [], REQUEST, b"41 Service Unavailable\r\n"),
    ("405 Method Not Allowed", [], REQUEST, b"50 Method Not Allowed\r\n"),
    ("413 Payload Too Large", [], REQUEST, b"50 Payload Too Large\r\n"),
    ("500 Internal Server Error", [], REQUEST, b"42 Internal Server Error\r\n"),
    ("502 Bad Gateway", [], REQUEST, b"42 Bad Gateway\r\n"),
    ("500", [], REQUEST, b"42 Internal Server Error\r\n"),
    ("499 Client Closed", [], REQUEST, b"50 Client Closed\r\n"),
    ("abc", [], REQUEST, b"42 Invalid response status\r\n"),
    # What a view chose wins, whatever the HTTP status says.
    ("200 OK", [("X-Gemini-Status", "10"), ("X-Gemini-Meta", "Your%20name%3F")], REQUEST,
     b"10 Your name?\r\n"),
    ("403 Forbidden", [("x-gemini-status", "62"), ("X-Gemini-Meta", "Expired")], REQUEST,
     b"62 Expired\r\n"),
    ("200 OK", [("X-Gemini-Status", "11"), ("X-Gemini-Meta", "Mot%20de%20passe%C2%A0%3F")],
     REQUEST, "11 Mot de passe\xa0?\r\n".encode()),
    ("200 OK", [("X-Gemini-Status", "70")], REQUEST, b"42 Invalid X-Gemini-Status\r\n"),
    ("200 OK", [("X-Gemini-Status", "2")], REQUEST, b"42 Invalid X-Gemini-Status\r\n"),
    # No CR/LF from anywhere reaches the head.
    ("200 OK", [("X-Gemini-Status", "10"), ("X-Gemini-Meta", "a%0D%0A20 text/html")], REQUEST,
     b"10 a  20 text/html\r\n"),
    ("404 Not\rFound", [], REQUEST, b"51 Not Found\r\n"),
]


@pytest.mark.parametrize(("status", "headers", "environ", "head"), MAPPING,
                         ids=[f"{row[0]}-{index}" for index, row in enumerate(MAPPING)])
def test_response_heads(status, headers, environ, head):
    mapped = gemini.response_head(status, headers, environ)
    assert mapped.encode() == head
    assert mapped.has_body is head.startswith(b"20 ")


def test_meta_is_cut_to_1024_bytes_on_a_character_boundary():
    meta = "\xe9" * 600  # 1200 bytes of UTF-8
    head = gemini.encode_head(10, meta)
    assert head.endswith(b"\r\n") and head.count(b"\r\n") == 1
    raw = head[3:-2]
    assert len(raw) == 1024 and raw.decode("utf-8") == "\xe9" * 512


@pytest.mark.parametrize("code", [0, 9, 70, 100, 200])
def test_encode_head_refuses_what_is_not_a_gemini_status(code):
    with pytest.raises(ValueError):
        gemini.encode_head(code, "x")


@pytest.mark.parametrize(("hint", "heads"), [
    (400, [b"59 Bad Request\r\n"]), (431, [b"59 Request Header Fields Too Large\r\n"]),
    # The meta is Python's reason phrase: 3.13 took RFC 9110's name for 413.
    (413, [b"50 Request Entity Too Large\r\n", b"50 Content Too Large\r\n"]),
    (500, [b"42 Internal Server Error\r\n"]), (503, [b"41 Service Unavailable\r\n"]),
])
def test_server_refusals_in_gemini_form(hint, heads):
    assert gemini.error_head(hint) in heads


# --- the Django-side API -------------------------------------------------------------------


def gemini_request(path="/capsule/whoami/", query="", cert=""):
    """A WSGIRequest from the environ the server would build for Xitzin."""
    pairs = dict(XITZIN_PORT_ROOT)
    pairs.update(GEMINI_URL=f"gemini://localhost{path}" + (f"?{query}" if query else ""),
                 PATH_INFO=path, QUERY_STRING=query)
    if cert:
        pairs.update(TLS_CLIENT_HASH=cert, TLS_CLIENT_AUTHORISED="1")
    environ = build_environ(pairs, io.BytesIO(), {"wsgi.errors": io.StringIO()})
    return RequestFactory().generic("GET", path, **{k: v for k, v in environ.items()
                                                      if k not in ("PATH_INFO",)})


def test_capsule_reads_input_and_certificate():
    request = gemini_request(query="hello%20world", cert=f"sha256:{CERT_HEX}")
    assert capsule.is_gemini(request)
    assert capsule.gemini_input(request) == "hello world"
    assert capsule.client_certificate(request) == CERT_HEX
    plain = RequestFactory().get("/x?caf%C3%A9")
    assert not capsule.is_gemini(plain)
    assert capsule.gemini_input(plain) == "caf\xe9"
    assert capsule.client_certificate(plain) is None
    assert capsule.gemini_input(RequestFactory().get("/x")) is None


@pytest.mark.parametrize(("response", "head", "http_status"), [
    (lambda: capsule.request_input("Name?"), b"10 Name?\r\n", 200),
    (lambda: capsule.request_input("Mot de passe\xa0?", sensitive=True),
     "11 Mot de passe\xa0?\r\n".encode(), 200),
    (lambda: capsule.certificate_required(), b"60 Client certificate required\r\n", 401),
    (lambda: capsule.certificate_not_authorised("Not you"), b"61 Not you\r\n", 403),
    (lambda: capsule.certificate_not_valid(), b"62 Certificate not valid\r\n", 403),
    (lambda: capsule.slow_down(7), b"44 7\r\n", 429),
    (lambda: capsule.GeminiResponse(53, "No proxying"), b"53 No proxying\r\n", 400),
    (lambda: capsule.GemtextResponse("# Hi\n"), b"20 text/gemini\r\n", 200),
])
def test_capsule_answers(response, head, http_status):
    made = response()
    assert made.status_code == http_status
    assert gemini.response_head(f"{made.status_code} {made.reason_phrase}",
                                list(made.items()), REQUEST).encode() == head


def test_gemini_response_refuses_a_status_outside_gemini():
    with pytest.raises(ValueError):
        capsule.GeminiResponse(70, "no")


def test_decorators_ask_until_the_request_carries_it():
    view = capsule.requires_input("Name?")(lambda request: capsule.GemtextResponse("ok"))
    assert view(gemini_request()).status_code == 200
    assert view(gemini_request())["X-Gemini-Status"] == "10"
    assert "X-Gemini-Status" not in view(gemini_request(query="Ann"))
    gated = capsule.requires_certificate()(lambda request: capsule.GemtextResponse("ok"))
    assert gated(gemini_request())["X-Gemini-Status"] == "60"
    assert "X-Gemini-Status" not in gated(gemini_request(cert=CERT_HEX))


def test_middleware_gives_gemini_absolute_uris_and_keeps_requests_secure():
    seen = {}

    def view(request):
        seen.update(scheme=request.scheme, secure=request.is_secure(),
                    uri=request.build_absolute_uri("/capsule/"))
        return capsule.GemtextResponse("ok")

    middleware = capsule.GeminiMiddleware(view)
    request = gemini_request()
    assert request.is_secure() and request.scheme == "https"  # without the middleware
    middleware(request)
    assert seen == {"scheme": "gemini", "secure": True, "uri": "gemini://localhost/capsule/"}
    plain = RequestFactory().get("/x")
    middleware(plain)
    assert seen["scheme"] == "http" and seen["uri"] == "http://testserver/capsule/"


def test_the_certificate_fingerprint_is_the_sha256_of_the_der_certificate():
    # What both front-ends hash, so one stored value recognises a user behind either.
    der = b"\x30\x03\x02\x01\x00"
    assert gemini.client_cert_sha256({"TLS_CLIENT_HASH": hashlib.sha256(der).hexdigest()}) == \
        hashlib.sha256(der).hexdigest()


# --- the docs show what the tests run -----------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["molly-brown.conf", "xitzin_capsule.py"])
def test_gemini_docs_contain_each_deploy_file_verbatim(name):
    docs = (REPO / "docs" / "gemini.rst").read_text()
    text = (REPO / "deploy" / name).read_text()
    assert textwrap.indent(text, "    ") in docs, (
        f"docs/gemini.rst must show deploy/{name} verbatim (indented 4 spaces)")
