"""Tests for django_scgi.environ: SCGI variables -> WSGI environ, response heads, logs.

No Django, no sockets. The request fixtures are the verbatim SCGI header dumps that
Apache 2.4.71, nginx 1.22.1 and lighttpd 1.4.69 sent in the lab (frontends.md,
Appendix A), kept as text at the bottom of this file ("\\xNN" = one raw byte) and
turned into the latin-1 dict the parser hands over. Every table row names the rule
it checks; removing that rule from environ.py makes the row fail.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from django_scgi.environ import (
    build_environ,
    make_base_environ,
    mask_environ,
    request_line,
    response_head,
)

REPO = Path(__file__).resolve().parent.parent

CAFE = "/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?"  # decoded %C3%A9 / %E2%82%AC%20x / …%3F
ROOT_CAFE = "/caf\xc3\xa9/\xe2\x82\xac x/y"
DROPPED = ("HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING")
REQUIRED = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
    "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme", "wsgi.input",
)


def cgi_from_dump(text: str) -> dict[str, str]:
    """NAME=value lines -> the dict protocol.RequestParser produces (latin-1 str)."""
    grouped: dict[str, list[str]] = {}
    for line in text.strip("\n").splitlines():
        name, _, value = line.partition("=")
        value = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), value)
        grouped.setdefault(name, []).append(value)
    # nginx 1.22 repeats keys; the parser joins them ("; " for cookies).
    return {n: ("; " if n == "HTTP_COOKIE" else ", ").join(v) for n, v in grouped.items()}


def cgi_for(case: str, **extra: str) -> dict[str, str]:
    return {**cgi_from_dump(DUMPS[case]), **extra}


def environ_for(cgi: dict[str, str], mount: str | None = None, peer=None, base=None):
    # A copy: build_environ takes the dict over, and tests compare with what was sent.
    base = make_base_environ(errors=io.StringIO()) if base is None else base
    return build_environ(dict(cgi), io.BytesIO(), base, mount_prefix=mount, peer=peer)


def split(environ) -> tuple[str, str]:
    return environ["SCRIPT_NAME"], environ["PATH_INFO"]


# --- fixtures parse as the front-ends sent them --------------------------------------------


def test_dump_parser_decodes_raw_bytes_and_joins_duplicates():
    assert cgi_for("apache/nonascii-encoded")["SCRIPT_NAME"] == "/app" + CAFE
    assert cgi_for("nginx/dup-headers")["HTTP_COOKIE"] == "a=1; b=2"
    assert cgi_for("nginx/dup-headers")["HTTP_X_DUP"] == "one, two"


# --- paths: every verbatim front-end dump, with and without a mount prefix ---------------

PATHS = [
    # Apache: SCRIPT_NAME is the whole decoded path; the mount is SCRIPT_NAME minus the
    # decoded tail of SCRIPT_FILENAME=proxy:scgi://host:port/<tail>.
    ("apache/get", None, "/app", "/some/path"),
    ("apache/get", "/app", "/app", "/some/path"),
    ("apache/post", None, "/app", "/form"),
    ("apache/get-mount-root", None, "/app", "/"),
    ("apache/get-mount-root", "/app", "/app", "/"),
    ("apache/nonascii-encoded", None, "/app", CAFE),  # SCRIPT_FILENAME tail percent-encoded
    ("apache/nonascii-encoded", "/app", "/app", CAFE),
    ("apache/nonascii-raw", None, "/app", "/caf\xc3\xa9/raw"),
    ("apache/dot-segments", None, "/app", "/b/c/e"),
    ("apache/https", None, "/app", "/tls"),
    ("apache/absolute-form", None, "/app", "/abs"),  # REQUEST_URI absolute: not used
    ("apache/absolute-form", "/app", "/app", "/abs"),
    ("apache/unix", None, "/unix", "/some/path"),  # proxy:scgi://localhost/…
    ("apache/unix", "/unix", "/unix", "/some/path"),
    ("apache/unix", "/app", "", "/unix/some/path"),  # outside the configured mount
    ("apache/root-mount", None, "", "/some/path"),
    ("apache/root-mount", "", "", "/some/path"),
    ("apache/root-mount", "/app", "", "/some/path"),
    ("apache/root-mount-encoded", None, "", ROOT_CAFE),
    ("apache/resp-location-local", None, "/app", "/target"),  # REQUEST_URI is stale
    ("apache/resp-location-local", "/app", "/app", "/target"),
    ("apache/a-pathinfo-setenv", None, "/pi-setenv", "/some/path"),
    ("apache/a-pathinfo-setenvif", None, "/pi-setenvif", "/some/path"),
    # proxy-scgi-pathinfo broken: decoded SCRIPT_NAME=whole path, PATH_INFO encoded
    ("apache/a-pathinfo-setenvif-encoded", None, "/pi-setenvif", CAFE),
    ("apache/a-pathinfo-setenvif-encoded", "/pi-setenvif", "/pi-setenvif", CAFE),
    ("apache/a-pathinfo-root", None, "", "/some/path"),
    ("apache/a-pathinfo-root-encoded", None, "", "/caf\xc3\xa9/\xe2\x82\xac x"),
    # nginx stock scgi_params: only DOCUMENT_URI; the mount comes from configuration.
    ("nginx/get", None, "", "/app/some/path"),
    ("nginx/get", "/app", "/app", "/some/path"),
    ("nginx/post", "/app", "/app", "/form"),
    ("nginx/get-mount-root", None, "", "/app/"),
    ("nginx/get-mount-root", "/app", "/app", "/"),
    ("nginx/nonascii-encoded", None, "", "/app" + CAFE),
    ("nginx/nonascii-encoded", "/app", "/app", CAFE),
    ("nginx/nonascii-raw", "/app", "/app", "/caf\xc3\xa9/raw"),
    ("nginx/encoded-slash", "/app", "/app", "/a/b/c"),
    ("nginx/dot-segments", "/app", "/app", "/b/c/e"),
    ("nginx/absolute-form", "/app", "/app", "/abs"),
    ("nginx/unix", "/unix", "/unix", "/some/path"),
    ("nginx/root-mount", None, "", "/some/path"),
    ("nginx/root-mount", "/app", "", "/some/path"),
    ("nginx/root-mount-encoded", None, "", ROOT_CAFE),
    # nginx regex location sending SCRIPT_NAME + PATH_INFO itself
    ("nginx/n-rec-pathinfo", None, "/rec", "/some/path"),
    ("nginx/n-rec-pathinfo-encoded", None, "/rec", CAFE),
    ("nginx/n-rec-bare", None, "/rec", ""),
    ("nginx/n-rec-bare", "/rec", "/rec", ""),
    # lighttpd splits itself (SCRIPT_NAME=/app, PATH_INFO=/rest)
    ("lighttpd/get", None, "/app", "/some/path"),
    ("lighttpd/get", "/app", "/app", "/some/path"),
    ("lighttpd/get-mount-root", None, "/app", "/"),
    ("lighttpd/get-mount-noslash", None, "/app", ""),  # no PATH_INFO key at all
    ("lighttpd/get-mount-noslash", "/app", "/app", ""),
    ("lighttpd/get-prefix-collision", None, "/application", "/x"),  # lighttpd's own split
    ("lighttpd/get-prefix-collision", "/app", "", "/application/x"),  # not under /app
    ("lighttpd/nonascii-encoded", None, "/app", CAFE),
    ("lighttpd/nonascii-raw", None, "/app", "/caf\xc3\xa9/raw"),
    ("lighttpd/encoded-slash", None, "/app", "/a/b/c"),
    ("lighttpd/dot-segments", None, "/app", "/b/c/e"),
    ("lighttpd/https", "/app", "/app", "/tls"),
    ("lighttpd/unix", None, "/unix", "/some/path"),
    ("lighttpd/root-mount", None, "", "/some/path"),  # fix-root-scriptname
    ("lighttpd/root-mount", "/app", "", "/some/path"),
    ("lighttpd/root-mount-encoded", None, "", ROOT_CAFE),
    ("lighttpd/l-root-fix-encoded", None, "", CAFE),
    # misconfigured lighttpd: the wrong split is kept unless a mount is configured
    ("lighttpd/l-trailing-slash-prefix", None, "/slash/some", "/path"),
    ("lighttpd/l-trailing-slash-prefix", "/slash", "/slash", "/some/path"),
    ("lighttpd/l-root-plain", None, "/some", "/path"),
    ("lighttpd/l-root-plain", "/app", "", "/some/path"),
]


@pytest.mark.parametrize(("case", "mount", "script_name", "path_info"), PATHS)
def test_paths_from_real_front_ends(case, mount, script_name, path_info):
    assert split(environ_for(cgi_for(case), mount)) == (script_name, path_info)



def pytest_generate_tests(metafunc):
    # Runs after the module is imported, so DUMPS (at the bottom) exists by then.
    if "dump_case" in metafunc.fixturenames:
        metafunc.parametrize("dump_case", sorted(DUMPS))


@pytest.mark.parametrize("mount", [None, "/app", "/unix"])
def test_split_never_changes_the_full_path(dump_case, mount):
    # Whatever the mount, SCRIPT_NAME + PATH_INFO is the same request path, the cut is
    # on a segment boundary, SCRIPT_NAME never ends with "/" and PATH_INFO is "" only
    # for exactly-the-prefix requests.
    cgi = cgi_for(dump_case)
    script_name, path_info = split(environ_for(cgi, mount))
    assert script_name + path_info == "".join(split(environ_for(cgi)))
    assert script_name == "" or (script_name[0] == "/" and script_name[-1] != "/")
    assert path_info.startswith("/") or (path_info == "" and script_name != "")


def test_every_value_from_the_front_end_is_a_latin1_str(dump_case):
    environ = environ_for(cgi_for(dump_case))
    for name, value in environ.items():
        if not name.startswith("wsgi."):
            assert isinstance(value, str), name
            value.encode("latin-1")


def test_everything_else_the_front_end_sent_is_kept(dump_case):
    cgi = cgi_for(dump_case)
    environ = environ_for(cgi)
    rewritten = {"SCRIPT_NAME", "PATH_INFO", *DROPPED}
    if cgi.get("SCRIPT_FILENAME", "").startswith("proxy:"):
        rewritten.add("HTTP_COOKIE")  # Apache's ", " join is split again (tested apart)
    for name, value in cgi.items():
        if name not in rewritten and value:
            assert environ[name] == value, name


def test_cgi_dict_becomes_the_environ(dump_case):
    # Taken over, not copied: a second dict per request would cost as much as the parse.
    cgi = cgi_for(dump_case)
    environ = build_environ(cgi, io.BytesIO(), make_base_environ(errors=io.StringIO()))
    assert environ is cgi


# --- paths: variants of the dumps and the rules they exercise ------------------------------

NGINX_HINT = [
    # `scgi_param SCRIPT_NAME /app;` next to DOCUMENT_URI (frontends.md §7)
    ("nginx/get", {"SCRIPT_NAME": "/app"}, None, "/app", "/some/path"),
    ("nginx/get", {"SCRIPT_NAME": "/app/"}, None, "/app", "/some/path"),
    ("nginx/get-mount-root", {"SCRIPT_NAME": "/app"}, None, "/app", "/"),
    ("nginx/nonascii-encoded", {"SCRIPT_NAME": "/app"}, None, "/app", CAFE),
    ("nginx/get", {"SCRIPT_NAME": "/application"}, None, "", "/app/some/path"),
    ("nginx/get", {"SCRIPT_NAME": "/ap"}, None, "", "/app/some/path"),
    ("nginx/get", {"SCRIPT_NAME": ""}, None, "", "/app/some/path"),
    # a configured mount wins over the hint
    ("nginx/get", {"SCRIPT_NAME": "/app/some"}, "/app", "/app", "/some/path"),
]


@pytest.mark.parametrize(("case", "extra", "mount", "script_name", "path_info"), NGINX_HINT)
def test_nginx_script_name_hint(case, extra, mount, script_name, path_info):
    assert split(environ_for(cgi_for(case, **extra), mount)) == (script_name, path_info)


APACHE_SCRIPT_FILENAME = [
    # derivation works for any authority, and collapses ProxyPass /app → …/ doubling
    ("proxy:scgi://[::1]:14000/some/path", "/app", "/some/path"),
    ("proxy:scgi://localhost/some/path", "/app", "/some/path"),
    ("proxy:scgi://127.0.0.1:14000//some/path", "/app", "/some/path"),
    ("proxy:scgi://127.0.0.1:14000/app/some/path", "", "/app/some/path"),
    # not a tail of the path: no derivation, never an exception
    ("proxy:scgi://127.0.0.1:14000/backend/some/path", "", "/app/some/path"),
    ("proxy:scgi://127.0.0.1:14000/other", "", "/app/some/path"),
    ("proxy:scgi://127.0.0.1:14000", "", "/app/some/path"),
    ("proxy:", "", "/app/some/path"),
    ("proxy:scgi://h/%zz", "", "/app/some/path"),
]


@pytest.mark.parametrize(("script_filename", "script_name", "path_info"), APACHE_SCRIPT_FILENAME)
def test_apache_mount_derived_from_script_filename(script_filename, script_name, path_info):
    cgi = cgi_for("apache/get", SCRIPT_FILENAME=script_filename)
    assert split(environ_for(cgi)) == (script_name, path_info)


def test_apache_script_filename_tail_is_percent_decoded_to_latin1():
    # The tail must be decoded exactly like SCRIPT_NAME was, or the non-ASCII case
    # would fall back to SCRIPT_NAME="" (frontends.md: apache / nonascii-encoded).
    cgi = cgi_for("apache/nonascii-encoded")
    assert cgi["SCRIPT_FILENAME"].endswith("/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F")
    assert split(environ_for(cgi)) == ("/app", CAFE)


@pytest.mark.parametrize(("sent", "seen"), [
    ("a=1, b=2", "a=1; b=2"),                      # two Cookie headers joined by Apache
    ("a=1, b=2, c=3", "a=1; b=2; c=3"),
    ("a=1; x=2, b=3", "a=1; x=2; b=3"),            # a header that already held two
    ("a=1, 2", "a=1, 2"),                          # not followed by name=: left alone
    ("a=1", "a=1"),
])
def test_apache_repeated_cookie_headers_are_split_again(sent, seen):
    cgi = cgi_for("apache/get", HTTP_COOKIE=sent)
    assert environ_for(cgi)["HTTP_COOKIE"] == seen


def test_cookie_commas_from_other_front_ends_are_kept():
    # Only Apache joins with ", "; lighttpd already joins with "; ".
    cgi = cgi_for("lighttpd/get", HTTP_COOKIE="a=1, b=2")
    assert environ_for(cgi)["HTTP_COOKIE"] == "a=1, b=2"


def test_script_name_without_path_info_is_the_mount_unless_apache():
    # CGI: a missing PATH_INFO is an empty one (lighttpd GET /app). Only Apache, known
    # by SCRIPT_FILENAME=proxy:…, puts the whole path in SCRIPT_NAME.
    assert split(environ_for({"SCRIPT_NAME": "/app/x"})) == ("/app/x", "")
    cgi = {"SCRIPT_NAME": "/app/x", "SCRIPT_FILENAME": "proxy:scgi://h:1/x"}
    assert split(environ_for(cgi)) == ("/app", "/x")


def test_path_info_that_is_not_apaches_encoded_copy_is_taken_as_sent():
    # A literal "%" in a decoded PATH_INFO (from %25) is data, not Apache's bug.
    cgi = cgi_for("lighttpd/get", PATH_INFO="/100%25")
    assert split(environ_for(cgi)) == ("/app", "/100%25")
    cgi = cgi_for("apache/a-pathinfo-setenvif", PATH_INFO="/a%20b")  # no such tail
    assert split(environ_for(cgi)) == ("/pi-setenvif", "/a%20b")


MOUNTS = [
    ("/app", "/app/x", "/app", "/x"),
    ("/app", "/app", "/app", ""),
    ("/app", "/app/", "/app", "/"),
    ("/app", "/application/x", "", "/application/x"),
    ("/app", "/ap", "", "/ap"),
    ("/app", "/", "", "/"),
    ("/app/", "/app/x", "/app", "/x"),  # trailing slash in the setting ignored
    ("/", "/app/x", "", "/app/x"),  # root mount
    ("/a/b", "/a/b/c", "/a/b", "/c"),
    ("/a/b", "/a/bc", "", "/a/bc"),
    # FORCE_SCRIPT_NAME is text; the environ holds UTF-8 bytes as latin-1
    ("/café", "/caf\xc3\xa9/x", "/caf\xc3\xa9", "/x"),
    ("/caf\xc3\xa9", "/caf\xc3\xa9/x", "", "/caf\xc3\xa9/x"),
]


@pytest.mark.parametrize(("mount", "document_uri", "script_name", "path_info"), MOUNTS)
def test_configured_mount_prefix(mount, document_uri, script_name, path_info):
    cgi = cgi_for("nginx/get", DOCUMENT_URI=document_uri)
    assert split(environ_for(cgi, mount)) == (script_name, path_info)


def test_configured_mount_wins_over_the_front_ends_split():
    cgi = cgi_for("lighttpd/get", SCRIPT_NAME="/app/some", PATH_INFO="/path")
    assert split(environ_for(cgi, "/app")) == ("/app", "/some/path")


BARE = [
    # (cgi, mount, SCRIPT_NAME, PATH_INFO, QUERY_STRING)
    ({}, None, "", "/", ""),
    ({"REQUEST_URI": "/app/x?y=1"}, None, "", "/app/x", "y=1"),
    ({"REQUEST_URI": "/app/x?y=1"}, "/app", "/app", "/x", "y=1"),
    ({"REQUEST_URI": "/app/caf%C3%A9/x%20y+z?q=%C3%A9"}, "/app", "/app",
     "/caf\xc3\xa9/x y+z", "q=%C3%A9"),
    ({"REQUEST_URI": "/caf\xc3\xa9/raw?x=\xc3\xa9"}, None, "", "/caf\xc3\xa9/raw", "x=\xc3\xa9"),
    ({"REQUEST_URI": "/caf\xc3\xa9/a%20b"}, None, "", "/caf\xc3\xa9/a b", ""),  # no double-encoding
    ({"REQUEST_URI": "/a%2Fb"}, None, "", "/a/b", ""),
    ({"REQUEST_URI": "http://abs.example:8888/app/abs?x=1"}, "/app", "/app", "/abs", "x=1"),
    ({"REQUEST_URI": "https://abs.example"}, None, "", "/", ""),
    ({"REQUEST_URI": "https://abs.example?x=1"}, None, "", "/", "x=1"),
    ({"REQUEST_URI": ""}, None, "", "/", ""),
    ({"REQUEST_URI": "/x?a=1", "QUERY_STRING": ""}, None, "", "/x", ""),  # as sent
    ({"REQUEST_URI": "/x?a=1", "QUERY_STRING": "b=2"}, None, "", "/x", "b=2"),
    ({"REQUEST_URI": "/x?a=1", "PATH_INFO": "/y"}, None, "", "/y", "a=1"),  # decoded wins
]


@pytest.mark.parametrize(("cgi", "mount", "script_name", "path_info", "query"), BARE)
def test_bare_client_paths(cgi, mount, script_name, path_info, query):
    environ = environ_for({"CONTENT_LENGTH": "0", "SCGI": "1", **cgi}, mount)
    assert split(environ) == (script_name, path_info)
    assert environ["QUERY_STRING"] == query


# --- required keys, scheme, host ------------------------------------------------------------


@pytest.mark.parametrize("base", ["server", "empty"])
def test_minimal_request_gets_every_required_key(base):
    # build_environ must not rely on the base for them: the server could pass any base.
    base_environ = make_base_environ(errors=io.StringIO()) if base == "server" else {}
    body = io.BytesIO(b"")
    environ = build_environ({"CONTENT_LENGTH": "0", "SCGI": "1"}, body, base_environ)
    assert {name: environ[name] for name in REQUIRED} == {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.0",
        "wsgi.url_scheme": "http", "wsgi.input": body,
    }
    assert environ["CONTENT_LENGTH"] == "0"
    assert "CONTENT_TYPE" not in environ


def test_empty_method_and_protocol_get_defaults():
    environ = environ_for({"REQUEST_METHOD": "", "SERVER_PROTOCOL": ""}, base={})
    assert (environ["REQUEST_METHOD"], environ["SERVER_PROTOCOL"]) == ("GET", "HTTP/1.0")


def test_content_type_and_length_as_sent():
    assert "CONTENT_TYPE" not in environ_for(cgi_for("apache/get"))
    assert environ_for(cgi_for("nginx/get"))["CONTENT_TYPE"] == ""
    environ = environ_for(cgi_for("nginx/post"))
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == (
        "application/x-www-form-urlencoded", "12")


FRONT_END_FIELDS = [
    # case, QUERY_STRING, wsgi.url_scheme, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL
    ("apache/get", "x=1", "http", "127.0.0.1", "18080", "HTTP/1.1"),
    ("apache/https", "x=1", "https", "127.0.0.1", "18443", "HTTP/1.1"),
    ("apache/host-port", "", "http", "www.example.com", "8443", "HTTP/1.1"),
    ("apache/absolute-form", "x=1", "http", "abs.example", "8888", "HTTP/1.1"),
    ("apache/http10-nohost", "", "http", "localhost", "80", "HTTP/1.0"),
    ("apache/nonascii-encoded", "q=%C3%A9&r=a%2Bb", "http", "127.0.0.1", "18080", "HTTP/1.1"),
    ("apache/nonascii-raw", "x=\xc3\xa9", "http", "127.0.0.1", "18080", "HTTP/1.1"),
    ("apache/resp-location-local", "from=local-redirect", "http", "127.0.0.1", "18080",
     "HTTP/1.1"),
    ("apache/root-mount", "x=1", "http", "127.0.0.1", "18090", "HTTP/1.1"),
    ("nginx/get", "x=1", "http", "localhost", "18081", "HTTP/1.1"),
    ("nginx/https", "x=1", "https", "localhost", "18444", "HTTP/1.1"),
    ("nginx/host-port", "", "http", "localhost", "18081", "HTTP/1.1"),
    ("nginx/http10-nohost", "", "http", "localhost", "18081", "HTTP/1.0"),
    ("nginx/nonascii-encoded", "q=%C3%A9&r=a%2Bb", "http", "localhost", "18081", "HTTP/1.1"),
    ("nginx/root-mount", "x=1", "http", "localhost", "18093", "HTTP/1.1"),
    ("lighttpd/get", "x=1", "http", "127.0.0.1", "18082", "HTTP/1.1"),
    ("lighttpd/https", "x=1", "https", "127.0.0.1", "18445", "HTTP/1.1"),
    ("lighttpd/host-port", "", "http", "www.example.com", "18082", "HTTP/1.1"),
    ("lighttpd/http10-nohost", "", "http", "localhost", "18082", "HTTP/1.0"),  # sent ""
    ("lighttpd/nonascii-raw", "x=%C3%A9", "http", "127.0.0.1", "18082", "HTTP/1.1"),
    ("lighttpd/root-mount", "x=1", "http", "127.0.0.1", "18094", "HTTP/1.1"),
]


@pytest.mark.parametrize(("case", "query", "scheme", "name", "port", "proto"),
                         FRONT_END_FIELDS)
def test_query_scheme_and_server_from_real_front_ends(case, query, scheme, name, port, proto):
    environ = environ_for(cgi_for(case))
    assert (environ["QUERY_STRING"], environ["wsgi.url_scheme"], environ["SERVER_NAME"],
            environ["SERVER_PORT"], environ["SERVER_PROTOCOL"]) == (
        query, scheme, name, port, proto)


SCHEMES = [
    ({"HTTPS": "on"}, "https"),
    ({"HTTPS": "ON"}, "https"),
    ({"HTTPS": "1"}, "https"),
    ({"HTTPS": "yes"}, "https"),
    ({"HTTPS": "True"}, "https"),
    ({"HTTPS": "off"}, "http"),
    ({"HTTPS": "0"}, "http"),
    ({"HTTPS": ""}, "http"),
    ({"REQUEST_SCHEME": "https"}, "https"),
    ({"REQUEST_SCHEME": "HTTPS"}, "https"),
    ({"REQUEST_SCHEME": "http"}, "http"),
    ({"HTTPS": "off", "REQUEST_SCHEME": "https"}, "https"),
    ({"HTTP_X_FORWARDED_PROTO": "https"}, "http"),  # Django's SECURE_PROXY_SSL_HEADER
    ({}, "http"),
]


@pytest.mark.parametrize(("cgi", "scheme"), SCHEMES)
def test_url_scheme(cgi, scheme):
    assert environ_for(cgi)["wsgi.url_scheme"] == scheme


HOSTS = [
    # (extra cgi, SERVER_NAME, SERVER_PORT) for a client that sent no SERVER_NAME/PORT
    ({"HTTP_HOST": "www.example.com:8443"}, "www.example.com", "8443"),
    ({"HTTP_HOST": "www.example.com"}, "www.example.com", "80"),
    ({"HTTP_HOST": "www.example.com", "HTTPS": "on"}, "www.example.com", "443"),
    ({"HTTP_HOST": "www.example.com:8080", "HTTPS": "on"}, "www.example.com", "8080"),
    ({"REQUEST_SCHEME": "https"}, "localhost", "443"),
    ({"HTTP_HOST": "[::1]:8080"}, "[::1]", "8080"),
    ({"HTTP_HOST": "[::1]"}, "[::1]", "80"),
    ({"HTTP_HOST": "example.com:"}, "example.com", "80"),
    ({"HTTP_HOST": "example.com:\xb2"}, "example.com:\xb2", "80"),  # not an ASCII digit
    ({"HTTP_HOST": ""}, "localhost", "80"),
    # what was sent is kept; only the missing half is filled in
    ({"HTTP_HOST": "h:1", "SERVER_NAME": "n"}, "n", "1"),
    ({"HTTP_HOST": "h:1", "SERVER_PORT": "2"}, "h", "2"),
    ({"HTTP_HOST": "h:1", "SERVER_NAME": "n", "SERVER_PORT": "2"}, "n", "2"),
]


@pytest.mark.parametrize(("cgi", "name", "port"), HOSTS)
def test_server_name_and_port(cgi, name, port):
    environ = environ_for(cgi)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == (name, port)


# --- sanitising -----------------------------------------------------------------------------


def test_httpoxy_and_duplicate_framing_headers_are_dropped():
    environ = environ_for(cgi_for("nginx/odd-headers"))
    assert "HTTP_PROXY" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_AUTHORIZATION"] == "Basic dTpw"
    assert environ["HTTP_X_EMPTY"] == ""
    assert environ["HTTP_X_UTF8"] == "caf\xc3\xa9"


def test_nginx_chunked_leftovers_are_dropped():
    environ = environ_for(cgi_for("nginx/chunked"))
    assert "HTTP_TRANSFER_ENCODING" not in environ
    assert "HTTP_CONTENT_TYPE" not in environ
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("text/plain", "11")


def test_nginx_unbuffered_body_keeps_only_content_length():
    environ = environ_for(cgi_for("nginx/n-upload-slow-nobufreq"))
    assert environ["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_LENGTH" not in environ


def test_front_end_variables_never_reach_os_environ(monkeypatch):
    monkeypatch.setenv("PATH", "/only/mine")
    environ = environ_for(cgi_for("apache/get", HTTP_PROXY="http://evil.example"))
    assert environ["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert os.environ["PATH"] == "/only/mine"
    assert "HTTP_PROXY" not in os.environ


def test_cgi_names_cannot_replace_the_servers_wsgi_objects():
    errors = io.StringIO()
    wrapper = object()
    base = make_base_environ(errors=errors, file_wrapper=wrapper)
    cgi = {"wsgi.errors": "x", "wsgi.file_wrapper": "x", "wsgi.version": "x",
           "wsgi.input_terminated": "1", "wsgi.url_scheme": "https", "wsgi.input": "x"}
    body = io.BytesIO()
    environ = build_environ(cgi, body, base)
    assert environ["wsgi.errors"] is errors
    assert environ["wsgi.file_wrapper"] is wrapper
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.input"] is body
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input_terminated"] is True


def test_wsgi_names_anywhere_among_the_cgi_names_are_caught():
    # The server's entries go in after the front-end's variables, wherever those stand
    # among the others; "wsgi." inside a name is not a wsgi name.
    errors = io.StringIO()
    base = make_base_environ(errors=errors)
    for position in range(3):
        names = ["REQUEST_METHOD", "HTTP_X_WSGI.ERRORS", "HTTP_Xwsgi.errors"]
        names.insert(position, "wsgi.errors")
        cgi = dict.fromkeys(names, "x")
        cgi["wsgi.run_once"] = "1"
        environ = build_environ(cgi, io.BytesIO(), base)
        assert environ["wsgi.errors"] is errors and environ["wsgi.run_once"] is False
        assert environ["HTTP_X_WSGI.ERRORS"] == environ["HTTP_Xwsgi.errors"] == "x"


# --- base environ and peer ------------------------------------------------------------------


def test_make_base_environ():
    errors = io.StringIO()
    base = make_base_environ(errors=errors)
    # Only the server's own entries: the request's defaults are build_environ's to fill
    # in (the base is applied over what the front-end sent).
    assert base == {
        "wsgi.version": (1, 0), "wsgi.errors": errors, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input_terminated": True,
    }

    def wrapper(filelike, block_size=8192):
        return iter(())

    base = make_base_environ(errors=errors, file_wrapper=wrapper, multithread=False,
                             multiprocess=True)
    assert (base["wsgi.file_wrapper"], base["wsgi.multithread"], base["wsgi.multiprocess"]) \
        == (wrapper, False, True)


def test_build_environ_leaves_the_base_alone():
    base = make_base_environ(errors=io.StringIO())
    before = dict(base)
    environ_for(cgi_for("apache/get"), "/app", base=base)
    assert base == before


PEERS = [
    # (cgi, peer, REMOTE_ADDR, REMOTE_PORT) — None: key absent
    ({}, ("192.0.2.7", 51000), "192.0.2.7", "51000"),
    ({}, ("2001:db8::1", 51000, 0, 0), "2001:db8::1", "51000"),
    ({}, "/run/app/scgi.sock", "", None),  # unix socket: no address, no crash
    ({}, "", "", None),
    ({}, None, None, None),
    ({"REMOTE_ADDR": ""}, ("192.0.2.7", 51000), "192.0.2.7", "51000"),
    ({"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "33308"}, ("10.0.0.9", 5555), "127.0.0.1",
     "33308"),
    # never the front-end's address with the peer's port
    ({"REMOTE_ADDR": "203.0.113.9"}, ("10.0.0.9", 5555), "203.0.113.9", None),
]


@pytest.mark.parametrize(("cgi", "peer", "addr", "port"), PEERS)
def test_remote_addr_from_peer_only_when_missing(cgi, peer, addr, port):
    environ = environ_for(cgi, peer=peer)
    assert (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")) == (addr, port)


# --- response head --------------------------------------------------------------------------

HOP_BY_HOP = ["Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE",
              "Trailer", "Upgrade", "transfer-encoding", "CONNECTION"]


def test_response_head_exact_bytes_keeps_repeated_headers():
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Set-Cookie", "a=1; Path=/"),
               ("Set-Cookie", "b=2; Path=/"), ("X-Multi", "one"), ("X-Multi", "two")]
    assert response_head("200 OK", headers) == (
        b"Status: 200 OK\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Set-Cookie: a=1; Path=/\r\n"
        b"Set-Cookie: b=2; Path=/\r\n"
        b"X-Multi: one\r\n"
        b"X-Multi: two\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("name", HOP_BY_HOP)
def test_response_head_drops_hop_by_hop(name):
    headers = [("X-A", "1"), (name, "chunked"), ("X-B", "2")]
    assert response_head("200 OK", headers) == b"Status: 200 OK\r\nX-A: 1\r\nX-B: 2\r\n\r\n"


def test_response_head_drops_hop_by_hop_names_that_only_lower_case_to_one():
    # str.lower() decides, as before: the Kelvin sign lower-cases to "k".
    headers = [("\u212aeep-Alive", "timeout=5"), ("X-A", "1"), ("Keep-Alive2", "x")]
    assert response_head("200 OK", headers) == b"Status: 200 OK\r\nX-A: 1\r\nKeep-Alive2: x\r\n\r\n"


def test_response_head_fills_reason_and_does_not_touch_the_input():
    headers = [("Connection", "close")]
    assert response_head("404", headers, streaming=True) == (
        b"Status: 404 Not Found\r\nX-Accel-Buffering: no\r\n\r\n")
    assert headers == [("Connection", "close")]


STREAMING = [
    (False, [("Content-Type", "text/plain")],
     b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
    (True, [("Content-Type", "text/plain")],
     b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Accel-Buffering: no\r\n\r\n"),
    (True, [("X-Accel-Buffering", "yes")], b"Status: 200 OK\r\nX-Accel-Buffering: yes\r\n\r\n"),
    (True, [("x-accel-buffering", "no")], b"Status: 200 OK\r\nx-accel-buffering: no\r\n\r\n"),
]


@pytest.mark.parametrize(("streaming", "headers", "head"), STREAMING)
def test_response_head_x_accel_buffering(streaming, headers, head):
    assert response_head("200 OK", headers, streaming=streaming) == head


def test_response_head_latin1_value_and_generator_input():
    head = response_head("201 Created", (h for h in [("X-Utf8", "caf\xc3\xa9")]))
    assert head == b"Status: 201 Created\r\nX-Utf8: caf\xc3\xa9\r\n\r\n"


@pytest.mark.parametrize(("status", "headers"), [
    ("200 OK", [("X-Bad", "a\r\nInjected: 1")]),
    ("200 OK", [("X Bad", "1")]),
    ("OK", []),
])
def test_response_head_refuses_what_the_front_ends_reject(status, headers):
    with pytest.raises(ValueError):
        response_head(status, headers)


# --- logs -------------------------------------------------------------------------------------

SECRET = [
    "HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_X_API_KEY",
    "HTTP_X_CSRFTOKEN", "HTTP_X_AUTH_TOKEN", "HTTP_X_CLIENT_SECRET", "HTTP_X_PASSWORD",
    "HTTP_X_SESSION_ID", "HTTP_X_SIGNING_KEY", "http_x_token", "Http_X_Secret",
    "REDIRECT_HTTP_COOKIE", "REDIRECT_REDIRECT_HTTP_AUTHORIZATION",  # Apache redirects
]
NOT_SECRET = ["HTTP_HOST", "HTTP_USER_AGENT", "QUERY_STRING", "PATH_INFO", "SSL_SESSION_ID",
              "SECRET_KEY_NAME", "REDIRECT_URL"]


@pytest.mark.parametrize("name", SECRET)
def test_mask_environ_hides_secrets(name):
    assert mask_environ({name: "s3cr3t"}) == {name: "********"}


@pytest.mark.parametrize("name", NOT_SECRET)
def test_mask_environ_keeps_the_rest(name):
    assert mask_environ({name: "visible"}) == {name: "visible"}


def test_mask_environ_on_a_real_environ():
    environ = environ_for(cgi_for("apache/dup-headers"))
    masked = mask_environ(environ)
    assert masked["HTTP_COOKIE"] == "********"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"  # the original is untouched
    assert masked["HTTP_X_DUP"] == "one, two"
    assert masked["SCRIPT_NAME"] == "/app"
    assert masked["wsgi.input"] == "<BytesIO>"
    assert masked["wsgi.errors"] == "<StringIO>"
    assert masked["wsgi.version"] == (1, 0)
    assert masked["wsgi.multithread"] is True
    assert masked.keys() == environ.keys()


def test_mask_environ_shows_objects_by_type_name():
    class Wrapper:
        def __repr__(self):
            raise AssertionError("repr must not be called")

    masked = mask_environ({"wsgi.file_wrapper": Wrapper(), "x": b"bytes", "y": (1, object())})
    assert masked == {"wsgi.file_wrapper": "<Wrapper>", "x": "<bytes>", "y": "<tuple>"}


@pytest.mark.parametrize(("case", "line"), [
    ("apache/get", '"GET /app/some/path?x=1 HTTP/1.1"'),
    ("apache/absolute-form", '"GET http://abs.example:8888/app/abs?x=1 HTTP/1.1"'),  # raw
    ("nginx/nonascii-encoded",
     '"GET /app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb HTTP/1.1"'),
    ("apache/nonascii-raw", '"GET /app/caf%C3%A9/raw?x=%C3%A9 HTTP/1.1"'),  # raw bytes escaped
    ("apache/head", '"HEAD /app/head HTTP/1.1"'),
])
def test_request_line_from_real_front_ends(case, line):
    assert request_line(environ_for(cgi_for(case))) == line


@pytest.mark.parametrize(("environ", "line"), [
    ({"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9/a b?#%",
      "QUERY_STRING": "q=1", "SERVER_PROTOCOL": "HTTP/1.1"},
     '"GET /app/caf%C3%A9/a%20b%3F%23%25?q=1 HTTP/1.1"'),
    ({"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/x", "QUERY_STRING": "",
      "SERVER_PROTOCOL": "HTTP/1.0"}, '"POST /x HTTP/1.0"'),
    ({}, '"- - -"'),
    ({"REQUEST_METHOD": None, "PATH_INFO": 5, "SERVER_PROTOCOL": b"x"}, "\"- 5 b'x'\""),
    ({"PATH_INFO": "/\u20ac"}, '"- /%3F -"'),  # not latin-1: replaced, no exception
    ({"REQUEST_URI": '/a"b\r\n\x00 \xc3\xa9', "REQUEST_METHOD": "G\"T"},
     '"G%22T /a%22b%0D%0A%00%20%C3%A9 -"'),  # one printable token: no forged log lines
])
def test_request_line_never_raises_and_escapes(environ, line):
    assert request_line(environ) == line


def test_request_line_of_a_minimal_request():
    environ = environ_for({"CONTENT_LENGTH": "0", "SCGI": "1"})
    assert request_line(environ) == '"GET / HTTP/1.0"'


# --- boundary ---------------------------------------------------------------------------------


def test_module_imports_neither_django_nor_gevent():
    code = ("import django_scgi.environ, sys; "
            "assert 'django' not in sys.modules and 'gevent' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# --- verbatim front-end dumps (frontends.md, Appendix A) ------------------------------------
# Each: the request the client sent, then every NAME=value pair exactly as the front-end
# sent it (\xNN = one raw byte). "$LAB" stands for the lab directory.

DUMPS = {
    # `hclient.py 18080 'GET /app/some/path?x=1'`
    "apache/get": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/some/path
REMOTE_PORT=33308
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/app/some/path?x=1
SCRIPT_NAME=/app/some/path
""",
    # `hclient.py 18080 'POST /app/form?x=1' -d a=1&b=%C3%A9 -H 'Content-Type:
    #   application/x-www-form-urlencoded'`
    "apache/post": r"""
CONTENT_LENGTH=12
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
CONTENT_TYPE=application/x-www-form-urlencoded
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/form
REMOTE_PORT=33352
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=POST
QUERY_STRING=x=1
REQUEST_URI=/app/form?x=1
SCRIPT_NAME=/app/form
""",
    # `hclient.py 18080 'GET /app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb'`
    "apache/nonascii-encoded": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F
REMOTE_PORT=33378
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=q=%C3%A9&r=a%2Bb
REQUEST_URI=/app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb
SCRIPT_NAME=/app/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
""",
    # `hclient.py 18080 'GET /app/caf\\xc3\\xa9/raw?x=\\xc3\\xa9'`
    "apache/nonascii-raw": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/caf%C3%A9/raw
REMOTE_PORT=52624
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=\xc3\xa9
REQUEST_URI=/app/caf\xc3\xa9/raw?x=\xc3\xa9
SCRIPT_NAME=/app/caf\xc3\xa9/raw
""",
    # `hclient.py 18080 'GET /app/a/../b/./c//d/%2e%2e/e?x=1'`
    "apache/dot-segments": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/b/c/e
REMOTE_PORT=52630
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/app/a/../b/./c//d/%2e%2e/e?x=1
SCRIPT_NAME=/app/b/c/e
""",
    # `hclient.py 18443 --tls 'GET /app/tls?x=1'`
    "apache/https": r"""
CONTENT_LENGTH=0
SCGI=1
HTTPS=on
SSL_TLS_SNI=localhost
HTTP_HOST=127.0.0.1:18443
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18443
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=/var/www/html
REQUEST_SCHEME=https
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=/var/www/html
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/tls
REMOTE_PORT=35944
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/app/tls?x=1
SCRIPT_NAME=/app/tls
""",
    # `hclient.py 18080 'GET /app/dup' -H 'X-Dup: one' -H 'X-Dup: two' -H 'Cookie: a=1' -H
    #   'Cookie: b=2' -H 'Accept: text/html' -H 'Accept: text/plain'`
    "apache/dup-headers": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_DUP=one, two
HTTP_COOKIE=a=1, b=2
HTTP_ACCEPT=text/html, text/plain
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/dup
REMOTE_PORT=52662
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=
REQUEST_URI=/app/dup
SCRIPT_NAME=/app/dup
""",
    # `hclient.py 18080 'GET /app/odd' -H 'X_Under: underscore' -H X-Empty: -H 'Proxy:
    #   http://evil.example' -H 'X-Utf8: caf\\xc3\\xa9' -H 'Content-Length: 0' -H
    #   'Authorization: Basic dTpw' -H 'X-Forwarded-For: 203.0.113.9'`
    "apache/odd-headers": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_EMPTY=
HTTP_X_UTF8=caf\xc3\xa9
HTTP_X_FORWARDED_FOR=203.0.113.9
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/odd
REMOTE_PORT=52666
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=
REQUEST_URI=/app/odd
SCRIPT_NAME=/app/odd
""",
    # `hclient.py 18080 --http10 --hosthdr - 'GET /app/h10'`
    "apache/http10-nohost": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=localhost
SERVER_ADDR=127.0.0.1
SERVER_PORT=80
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/h10
REMOTE_PORT=52674
SERVER_PROTOCOL=HTTP/1.0
REQUEST_METHOD=GET
QUERY_STRING=
REQUEST_URI=/app/h10
SCRIPT_NAME=/app/h10
""",
    # `hclient.py 18080 --hosthdr www.example.com:8443 'GET /app/host'`
    "apache/host-port": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=www.example.com:8443
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=www.example.com
SERVER_ADDR=127.0.0.1
SERVER_PORT=8443
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/host
REMOTE_PORT=43590
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=
REQUEST_URI=/app/host
SCRIPT_NAME=/app/host
""",
    # `hclient.py 18080 --hosthdr hostheader.example 'GET http://abs.example:8888/app/abs?x=1'`
    "apache/absolute-form": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=abs.example:8888
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=abs.example
SERVER_ADDR=127.0.0.1
SERVER_PORT=8888
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/abs
REMOTE_PORT=43584
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=http://abs.example:8888/app/abs?x=1
SCRIPT_NAME=/app/abs
""",
    # `hclient.py 18080 'GET /unix/some/path?x=1'`
    "apache/unix": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://localhost/some/path
REMOTE_PORT=43626
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/unix/some/path?x=1
SCRIPT_NAME=/unix/some/path
""",
    # `hclient.py 18080 'GET /app/'`
    "apache/get-mount-root": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/
REMOTE_PORT=33324
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=
REQUEST_URI=/app/
SCRIPT_NAME=/app/
""",
    # `hclient.py 18090 'GET /some/path?x=1'`
    "apache/root-mount": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18090
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18090
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=/var/www/html
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=/var/www/html
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/some/path
REMOTE_PORT=51924
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/some/path?x=1
SCRIPT_NAME=/some/path
""",
    # `hclient.py 18090 'GET /caf%C3%A9/%E2%82%AC%20x/y?q=1'`
    "apache/root-mount-encoded": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18090
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18090
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=/var/www/html
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=/var/www/html
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/caf%C3%A9/%E2%82%AC%20x/y
REMOTE_PORT=51952
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=q=1
REQUEST_URI=/caf%C3%A9/%E2%82%AC%20x/y?q=1
SCRIPT_NAME=/caf\xc3\xa9/\xe2\x82\xac x/y
""",
    # `hclient.py 18080 'HEAD /app/head'`
    "apache/head": r"""
CONTENT_LENGTH=0
SCGI=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/head
REMOTE_PORT=43622
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=HEAD
QUERY_STRING=
REQUEST_URI=/app/head
SCRIPT_NAME=/app/head
""",
    # `hclient.py 18080 'GET /pi-setenv/some/path?x=1'`
    "apache/a-pathinfo-setenv": r"""
CONTENT_LENGTH=0
SCGI=1
proxy-scgi-pathinfo=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/some/path
REMOTE_PORT=36692
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/pi-setenv/some/path?x=1
SCRIPT_NAME=/pi-setenv/some/path
""",
    # `hclient.py 18080 'GET /pi-setenvif/some/path?x=1'`
    "apache/a-pathinfo-setenvif": r"""
CONTENT_LENGTH=0
SCGI=1
proxy-scgi-pathinfo=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/some/path
REMOTE_PORT=36696
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/pi-setenvif/some/path?x=1
SCRIPT_NAME=/pi-setenvif
PATH_INFO=/some/path
PATH_TRANSLATED=$LAB/www/some/path
""",
    # `hclient.py 18080 'GET /pi-setenvif/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=1'`
    "apache/a-pathinfo-setenvif-encoded": r"""
CONTENT_LENGTH=0
SCGI=1
proxy-scgi-pathinfo=1
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F
REMOTE_PORT=36702
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=q=1
REQUEST_URI=/pi-setenvif/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=1
SCRIPT_NAME=/pi-setenvif/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
PATH_INFO=/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F
PATH_TRANSLATED=$LAB/www/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F
""",
    # `hclient.py 18091 'GET /some/path?x=1'`
    "apache/a-pathinfo-root": r"""
CONTENT_LENGTH=0
SCGI=1
proxy-scgi-pathinfo=1
HTTP_HOST=127.0.0.1:18091
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18091
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=/var/www/html
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=/var/www/html
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/some/path
REMOTE_PORT=52924
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=x=1
REQUEST_URI=/some/path?x=1
SCRIPT_NAME=
PATH_INFO=/some/path
PATH_TRANSLATED=proxy:scgi://127.0.0.1:14000/some/path/some/path
""",
    # `hclient.py 18091 'GET /caf%C3%A9/%E2%82%AC%20x?q=1'`
    "apache/a-pathinfo-root-encoded": r"""
CONTENT_LENGTH=0
SCGI=1
proxy-scgi-pathinfo=1
HTTP_HOST=127.0.0.1:18091
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18091
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=/var/www/html
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=/var/www/html
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/caf%C3%A9/%E2%82%AC%20x
REMOTE_PORT=52928
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=q=1
REQUEST_URI=/caf%C3%A9/%E2%82%AC%20x?q=1
SCRIPT_NAME=/caf\xc3\xa9/\xe2\x82\xac x
PATH_INFO=/caf%C3%A9/%E2%82%AC%20x
PATH_TRANSLATED=proxy:scgi://127.0.0.1:14000/caf%25C3%25A9/%25E2%2582%25AC%2520x/caf%25C3%25A9/%25E2%2582%25AC%2520x
""",
    # `hclient.py 18080 'GET /app/resp-location-local' -H 'X-Mode: location-local'` (second
    #   SCGI request: after the internal redirect)
    "apache/resp-location-local": r"""
CONTENT_LENGTH=0
SCGI=1
REDIRECT_HTTP_HOST=127.0.0.1:18080
REDIRECT_HTTP_USER_AGENT=hclient
REDIRECT_HTTP_CONNECTION=close
REDIRECT_HTTP_X_MODE=location-local
REDIRECT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
REDIRECT_SERVER_SIGNATURE=
REDIRECT_SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
REDIRECT_SERVER_NAME=127.0.0.1
REDIRECT_SERVER_ADDR=127.0.0.1
REDIRECT_SERVER_PORT=18080
REDIRECT_REMOTE_ADDR=127.0.0.1
REDIRECT_DOCUMENT_ROOT=$LAB/www
REDIRECT_REQUEST_SCHEME=http
REDIRECT_CONTEXT_PREFIX=
REDIRECT_CONTEXT_DOCUMENT_ROOT=$LAB/www
REDIRECT_SERVER_ADMIN=[no address given]
REDIRECT_SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/resp-location-local
REDIRECT_REMOTE_PORT=39218
REDIRECT_GATEWAY_INTERFACE=CGI/1.1
REDIRECT_SERVER_PROTOCOL=HTTP/1.1
REDIRECT_REQUEST_METHOD=GET
REDIRECT_QUERY_STRING=
REDIRECT_REQUEST_URI=/app/resp-location-local
REDIRECT_SCRIPT_NAME=/app/resp-location-local
REDIRECT_STATUS=200
HTTP_HOST=127.0.0.1:18080
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_MODE=location-local
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SERVER_SIGNATURE=
SERVER_SOFTWARE=Apache/2.4.71 (Debian) OpenSSL/3.0.19
SERVER_NAME=127.0.0.1
SERVER_ADDR=127.0.0.1
SERVER_PORT=18080
REMOTE_ADDR=127.0.0.1
DOCUMENT_ROOT=$LAB/www
REQUEST_SCHEME=http
CONTEXT_PREFIX=
CONTEXT_DOCUMENT_ROOT=$LAB/www
SERVER_ADMIN=[no address given]
SCRIPT_FILENAME=proxy:scgi://127.0.0.1:14000/target
REMOTE_PORT=39218
REDIRECT_URL=/app/resp-location-local
SERVER_PROTOCOL=HTTP/1.1
REQUEST_METHOD=GET
QUERY_STRING=from=local-redirect
REQUEST_URI=/app/resp-location-local
SCRIPT_NAME=/app/target
""",
    # `hclient.py 18081 'GET /app/some/path?x=1'`
    "nginx/get": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/some/path?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/app/some/path
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=51610
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'POST /app/form?x=1' -d a=1&b=%C3%A9 -H 'Content-Type:
    #   application/x-www-form-urlencoded'`
    "nginx/post": r"""
CONTENT_LENGTH=12
REQUEST_METHOD=POST
REQUEST_URI=/app/form?x=1
QUERY_STRING=x=1
CONTENT_TYPE=application/x-www-form-urlencoded
DOCUMENT_URI=/app/form
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56756
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_CONTENT_TYPE=application/x-www-form-urlencoded
HTTP_CONTENT_LENGTH=12
""",
    # `hclient.py 18081 'GET /app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb'`
    "nginx/nonascii-encoded": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb
QUERY_STRING=q=%C3%A9&r=a%2Bb
CONTENT_TYPE=
DOCUMENT_URI=/app/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56770
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /app/caf\\xc3\\xa9/raw?x=\\xc3\\xa9'`
    "nginx/nonascii-raw": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/caf\xc3\xa9/raw?x=\xc3\xa9
QUERY_STRING=x=\xc3\xa9
CONTENT_TYPE=
DOCUMENT_URI=/app/caf\xc3\xa9/raw
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56788
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /app/a%2Fb/c?x=1'`
    "nginx/encoded-slash": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/a%2Fb/c?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/app/a/b/c
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56778
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /app/a/../b/./c//d/%2e%2e/e?x=1'`
    "nginx/dot-segments": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/a/../b/./c//d/%2e%2e/e?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/app/b/c/e
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56792
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'POST /app/chunked' --chunked hello,world! -H 'Content-Type: text/plain'`
    "nginx/chunked": r"""
CONTENT_LENGTH=11
REQUEST_METHOD=POST
REQUEST_URI=/app/chunked
QUERY_STRING=
CONTENT_TYPE=text/plain
DOCUMENT_URI=/app/chunked
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56808
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_CONTENT_TYPE=text/plain
HTTP_TRANSFER_ENCODING=chunked
""",
    # `hclient.py 18444 --tls 'GET /app/tls?x=1'`
    "nginx/https": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/tls?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/app/tls
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=https
HTTPS=on
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=44672
SERVER_PORT=18444
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /app/dup' -H 'X-Dup: one' -H 'X-Dup: two' -H 'Cookie: a=1' -H
    #   'Cookie: b=2' -H 'Accept: text/html' -H 'Accept: text/plain'`
    "nginx/dup-headers": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/dup
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/app/dup
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56700
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_DUP=one
HTTP_X_DUP=two
HTTP_COOKIE=a=1
HTTP_COOKIE=b=2
HTTP_ACCEPT=text/html
HTTP_ACCEPT=text/plain
""",
    # `hclient.py 18081 'GET /app/odd' -H 'X_Under: underscore' -H X-Empty: -H 'Proxy:
    #   http://evil.example' -H 'X-Utf8: caf\\xc3\\xa9' -H 'Content-Length: 0' -H
    #   'Authorization: Basic dTpw' -H 'X-Forwarded-For: 203.0.113.9'`
    "nginx/odd-headers": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/odd
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/app/odd
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56714
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_EMPTY=
HTTP_PROXY=http://evil.example
HTTP_X_UTF8=caf\xc3\xa9
HTTP_CONTENT_LENGTH=0
HTTP_AUTHORIZATION=Basic dTpw
HTTP_X_FORWARDED_FOR=203.0.113.9
""",
    # `hclient.py 18081 --http10 --hosthdr - 'GET /app/h10'`
    "nginx/http10-nohost": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/h10
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/app/h10
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.0
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56726
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=localhost
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 --hosthdr www.example.com:8443 'GET /app/host'`
    "nginx/host-port": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/host
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/app/host
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56738
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=www.example.com
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 --hosthdr hostheader.example 'GET http://abs.example:8888/app/abs?x=1'`
    "nginx/absolute-form": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/abs?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/app/abs
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56730
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=abs.example
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /unix/some/path?x=1'`
    "nginx/unix": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/unix/some/path?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/unix/some/path
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=42192
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /app/'`
    "nginx/get-mount-root": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/app/
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/app/
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=51624
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18093 'GET /some/path?x=1'`
    "nginx/root-mount": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/some/path?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/some/path
DOCUMENT_ROOT=$LAB/nginx/html
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=34032
SERVER_PORT=18093
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18093 'GET /caf%C3%A9/%E2%82%AC%20x/y?q=1'`
    "nginx/root-mount-encoded": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/caf%C3%A9/%E2%82%AC%20x/y?q=1
QUERY_STRING=q=1
CONTENT_TYPE=
DOCUMENT_URI=/caf\xc3\xa9/\xe2\x82\xac x/y
DOCUMENT_ROOT=$LAB/nginx/html
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=34052
SERVER_PORT=18093
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /rec/some/path?x=1'`
    "nginx/n-rec-pathinfo": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/rec/some/path?x=1
QUERY_STRING=x=1
CONTENT_TYPE=
DOCUMENT_URI=/rec/some/path
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=42196
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
SCRIPT_NAME=/rec
PATH_INFO=/some/path
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /rec/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=1'`
    "nginx/n-rec-pathinfo-encoded": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/rec/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=1
QUERY_STRING=q=1
CONTENT_TYPE=
DOCUMENT_URI=/rec/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=42206
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
SCRIPT_NAME=/rec
PATH_INFO=/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'GET /rec'`
    "nginx/n-rec-bare": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=GET
REQUEST_URI=/rec
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/rec
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=42208
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
SCRIPT_NAME=/rec
PATH_INFO=
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
""",
    # `hclient.py 18081 'POST /nobufreq/upload-slow' --size 30000 --slow-body 3 --chunk-delay 1`
    "nginx/n-upload-slow-nobufreq": r"""
CONTENT_LENGTH=0
REQUEST_METHOD=POST
REQUEST_URI=/nobufreq/upload-slow
QUERY_STRING=
CONTENT_TYPE=
DOCUMENT_URI=/nobufreq/upload-slow
DOCUMENT_ROOT=$LAB/www
SCGI=1
SERVER_PROTOCOL=HTTP/1.1
REQUEST_SCHEME=http
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=60534
SERVER_PORT=18081
SERVER_NAME=localhost
HTTP_HOST=127.0.0.1
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_CONTENT_LENGTH=30000
""",
    # `hclient.py 18082 'GET /app/some/path?x=1'`
    "lighttpd/get": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/app/some/path?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/some/path
PATH_TRANSLATED=$LAB/www/some/path
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=38438
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'POST /app/form?x=1' -d a=1&b=%C3%A9 -H 'Content-Type:
    #   application/x-www-form-urlencoded'`
    "lighttpd/post": r"""
CONTENT_LENGTH=12
QUERY_STRING=x=1
REQUEST_URI=/app/form?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/form
PATH_TRANSLATED=$LAB/www/form
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=POST
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=38464
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
CONTENT_TYPE=application/x-www-form-urlencoded
HTTP_CONTENT_LENGTH=12
SCGI=1
""",
    # `hclient.py 18082 'GET /app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb'`
    "lighttpd/nonascii-encoded": r"""
CONTENT_LENGTH=0
QUERY_STRING=q=%C3%A9&r=a%2Bb
REQUEST_URI=/app/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=%C3%A9&r=a%2Bb
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
PATH_TRANSLATED=$LAB/www/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=50966
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /app/caf\\xc3\\xa9/raw?x=\\xc3\\xa9'`
    "lighttpd/nonascii-raw": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=%C3%A9
REQUEST_URI=/app/caf\xc3\xa9/raw?x=\xc3\xa9
REDIRECT_URI=/app/caf%C3%A9/raw?x=%C3%A9
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/caf\xc3\xa9/raw
PATH_TRANSLATED=$LAB/www/caf\xc3\xa9/raw
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=50988
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /app/a%2Fb/c?x=1'`
    "lighttpd/encoded-slash": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/app/a%2Fb/c?x=1
REDIRECT_URI=/app/a/b/c?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/a/b/c
PATH_TRANSLATED=$LAB/www/a/b/c
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=50980
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /app/a/../b/./c//d/%2e%2e/e?x=1'`
    "lighttpd/dot-segments": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/app/a/../b/./c//d/%2e%2e/e?x=1
REDIRECT_URI=/app/b/c/e?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/b/c/e
PATH_TRANSLATED=$LAB/www/b/c/e
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=50994
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18445 --tls 'GET /app/tls?x=1'`
    "lighttpd/https": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/app/tls?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/tls
PATH_TRANSLATED=$LAB/www/tls
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=https
HTTPS=on
SERVER_PORT=18445
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=54050
HTTP_HOST=127.0.0.1:18445
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SSL_PROTOCOL=TLSv1.3
SSL_CIPHER=TLS_AES_256_GCM_SHA384
SSL_CIPHER_USEKEYSIZE=256
SSL_CIPHER_ALGKEYSIZE=256
SCGI=1
""",
    # `hclient.py 18082 'GET /app/dup' -H 'X-Dup: one' -H 'X-Dup: two' -H 'Cookie: a=1' -H
    #   'Cookie: b=2' -H 'Accept: text/html' -H 'Accept: text/plain'`
    "lighttpd/dup-headers": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/app/dup
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/dup
PATH_TRANSLATED=$LAB/www/dup
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=41108
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_DUP=one, two
HTTP_COOKIE=a=1; b=2
HTTP_ACCEPT=text/html, text/plain
SCGI=1
""",
    # `hclient.py 18082 'GET /app/odd' -H 'X_Under: underscore' -H X-Empty: -H 'Proxy:
    #   http://evil.example' -H 'X-Utf8: caf\\xc3\\xa9' -H 'Content-Length: 0' -H
    #   'Authorization: Basic dTpw' -H 'X-Forwarded-For: 203.0.113.9'`
    "lighttpd/odd-headers": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/app/odd
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/odd
PATH_TRANSLATED=$LAB/www/odd
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=41124
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
HTTP_X_UNDER=underscore
HTTP_X_UTF8=caf\xc3\xa9
HTTP_CONTENT_LENGTH=0
HTTP_AUTHORIZATION=Basic dTpw
HTTP_X_FORWARDED_FOR=203.0.113.9
SCGI=1
""",
    # `hclient.py 18082 --http10 --hosthdr - 'GET /app/h10'`
    "lighttpd/http10-nohost": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/app/h10
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/h10
PATH_TRANSLATED=$LAB/www/h10
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.0
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=41128
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 --hosthdr www.example.com:8443 'GET /app/host'`
    "lighttpd/host-port": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/app/host
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/host
PATH_TRANSLATED=$LAB/www/host
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=www.example.com
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=41140
HTTP_HOST=www.example.com:8443
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /unix/some/path?x=1'`
    "lighttpd/unix": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/unix/some/path?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/unix
PATH_INFO=/some/path
PATH_TRANSLATED=$LAB/www/some/path
SCRIPT_FILENAME=$LAB/www/unix
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=41166
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /app/'`
    "lighttpd/get-mount-root": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/app/
REDIRECT_STATUS=200
SCRIPT_NAME=/app
PATH_INFO=/
PATH_TRANSLATED=$LAB/www/
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=38450
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /app'`
    "lighttpd/get-mount-noslash": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/app
REDIRECT_STATUS=200
SCRIPT_NAME=/app
SCRIPT_FILENAME=$LAB/www/app
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=38452
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /application/x'`
    "lighttpd/get-prefix-collision": r"""
CONTENT_LENGTH=0
QUERY_STRING=
REQUEST_URI=/application/x
REDIRECT_STATUS=200
SCRIPT_NAME=/application
PATH_INFO=/x
PATH_TRANSLATED=$LAB/www/x
SCRIPT_FILENAME=$LAB/www/application
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=38454
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18094 'GET /some/path?x=1'`
    "lighttpd/root-mount": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/some/path?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=
PATH_INFO=/some/path
PATH_TRANSLATED=$LAB/www/some/path
SCRIPT_FILENAME=$LAB/www/
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18094
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=34440
HTTP_HOST=127.0.0.1:18094
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18094 'GET /caf%C3%A9/%E2%82%AC%20x/y?q=1'`
    "lighttpd/root-mount-encoded": r"""
CONTENT_LENGTH=0
QUERY_STRING=q=1
REQUEST_URI=/caf%C3%A9/%E2%82%AC%20x/y?q=1
REDIRECT_STATUS=200
SCRIPT_NAME=
PATH_INFO=/caf\xc3\xa9/\xe2\x82\xac x/y
PATH_TRANSLATED=$LAB/www/caf\xc3\xa9/\xe2\x82\xac x/y
SCRIPT_FILENAME=$LAB/www/
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18094
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=34464
HTTP_HOST=127.0.0.1:18094
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18082 'GET /slash/some/path?x=1'`
    "lighttpd/l-trailing-slash-prefix": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/slash/some/path?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/slash/some
PATH_INFO=/path
PATH_TRANSLATED=$LAB/www/path
SCRIPT_FILENAME=$LAB/www/slash/some
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18082
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=41498
HTTP_HOST=127.0.0.1:18082
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18095 'GET /some/path?x=1'`
    "lighttpd/l-root-plain": r"""
CONTENT_LENGTH=0
QUERY_STRING=x=1
REQUEST_URI=/some/path?x=1
REDIRECT_STATUS=200
SCRIPT_NAME=/some
PATH_INFO=/path
PATH_TRANSLATED=$LAB/www/path
SCRIPT_FILENAME=$LAB/www/some
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18095
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=56598
HTTP_HOST=127.0.0.1:18095
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
    # `hclient.py 18094 'GET /caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=1'`
    "lighttpd/l-root-fix-encoded": r"""
CONTENT_LENGTH=0
QUERY_STRING=q=1
REQUEST_URI=/caf%C3%A9/%E2%82%AC%20x/sp%20ace+plus%3F?q=1
REDIRECT_STATUS=200
SCRIPT_NAME=
PATH_INFO=/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
PATH_TRANSLATED=$LAB/www/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?
SCRIPT_FILENAME=$LAB/www/
DOCUMENT_ROOT=$LAB/www
REQUEST_METHOD=GET
SERVER_PROTOCOL=HTTP/1.1
SERVER_SOFTWARE=lighttpd/1.4.69
GATEWAY_INTERFACE=CGI/1.1
REQUEST_SCHEME=http
SERVER_PORT=18094
SERVER_ADDR=127.0.0.1
SERVER_NAME=127.0.0.1
REMOTE_ADDR=127.0.0.1
REMOTE_PORT=34478
HTTP_HOST=127.0.0.1:18094
HTTP_USER_AGENT=hclient
HTTP_CONNECTION=close
SCGI=1
""",
}


@pytest.mark.parametrize(("script_name", "seen"), [
    ("/\xff", "/%FF"),                          # not UTF-8: percent-encoded
    ("/caf\xc3\xa9", "/caf\xc3\xa9"),           # UTF-8 (as latin-1 text): kept
    ("/a\xc3", "/a%C3"),                        # a truncated sequence
])
def test_script_name_that_django_cannot_decode_is_percent_encoded(script_name, seen):
    cgi = {"SCRIPT_NAME": script_name, "PATH_INFO": "/path"}
    environ = environ_for(cgi)
    assert environ["SCRIPT_NAME"] == seen
    environ["SCRIPT_NAME"].encode("latin-1").decode("utf-8")  # what Django does
