"""Tests for django_scgi.environ: SCGI variables -> WSGI environ, response heads, logs.

No Django, no sockets. The request fixtures are the verbatim SCGI header dumps that
Apache 2.4.71, nginx 1.22.1 and lighttpd 1.4.69 sent in the lab (the measurements behind
docs/frontend-variables.rst), kept as text at the bottom of this file ("\\xNN" = one raw byte) and
turned into the latin-1 dict the parser hands over. Every table row names the rule
it checks; removing that rule from environ.py makes the row fail.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from frontend_dumps import DUMPS, cgi_from_dump
from helpers import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from django_scgi import environ as environ_module
from django_scgi.environ import (
    build_environ,
    make_base_environ,
    mask_environ,
    request_line,
    response_head,
)
from django_scgi.gemini import GEMINI, is_gemini

CAFE = "/caf\xc3\xa9/\xe2\x82\xac x/sp ace+plus?"  # decoded %C3%A9 / %E2%82%AC%20x / …%3F
ROOT_CAFE = "/caf\xc3\xa9/\xe2\x82\xac x/y"
DROPPED = ("HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING")
REQUIRED = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
    "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme", "wsgi.input",
)


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
    # `scgi_param SCRIPT_NAME /app;` next to DOCUMENT_URI (docs/frontend-variables.rst §7)
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
    # would fall back to SCRIPT_NAME="" (docs/frontend-variables.rst: apache / nonascii-encoded).
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
    headers = [("Connection", "close"), ("Content-Type", "text/event-stream")]
    assert response_head("404", headers, streaming=True) == (
        b"Status: 404 Not Found\r\nContent-Type: text/event-stream\r\n"
        b"X-Accel-Buffering: no\r\n\r\n")
    assert headers == [("Connection", "close"), ("Content-Type", "text/event-stream")]


# Only server-sent events are unbuffered by default: downloads and exports stay
# buffered by nginx, so a slow client cannot pin a backend slot (issue 20, item 3).
STREAMING = [
    (False, [("Content-Type", "text/plain")],
     b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
    (True, [("Content-Type", "text/plain")],
     b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
    (True, [("Content-Type", "application/octet-stream")],
     b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"),
    (True, [("Content-Type", "Text/Event-Stream; charset=utf-8")],
     b"Status: 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\n"
     b"X-Accel-Buffering: no\r\n\r\n"),
    (False, [("Content-Type", "text/event-stream")],
     b"Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"),
    (True, [("X-Accel-Buffering", "yes"), ("Content-Type", "text/event-stream")],
     b"Status: 200 OK\r\nX-Accel-Buffering: yes\r\nContent-Type: text/event-stream\r\n\r\n"),
    (True, [("x-accel-buffering", "no")], b"Status: 200 OK\r\nx-accel-buffering: no\r\n\r\n"),
]


@pytest.mark.parametrize("name", ["Status", "status", "STATUS"])
def test_response_head_drops_an_application_status_header(name):
    # Apache and lighttpd would answer with it instead of the status returned.
    head = response_head("200 OK", [(name, "302 Found"), ("Location", "/x")])
    assert head == b"Status: 200 OK\r\nLocation: /x\r\n\r\n"


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
    "HTTP_X_AUTH", "HTTP_X_OTP", "HTTP_X_SIGNATURE", "HTTP_X_HUB_SIGNATURE_256",
    "HTTP_X_CREDENTIALS", "HTTP_X_PASSCODE",
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


QUERIES = [
    ("a=1&b=2", "a=1&b=2"),
    ("access_token=abc&page=2", "access_token=********&page=2"),
    ("page=2&Signature=x%2By&X-Amz-Credential=k",
     "page=2&Signature=********&X-Amz-Credential=********"),
    ("sig=1;otp=2;q=3", "sig=********;otp=********;q=3"),
    ("token", "token"),  # no value: nothing to hide
    ("password=&q=1", "password=********&q=1"),
]


@pytest.mark.parametrize(("query", "masked"), QUERIES)
def test_query_parameters_named_like_secrets_are_masked(query, masked):
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": f"/p?{query}", "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/1.1"}
    assert mask_environ(environ)["QUERY_STRING"] == masked
    assert mask_environ(environ)["REQUEST_URI"] == f"/p?{masked}"
    assert request_line(environ) == f'"GET /p?{masked} HTTP/1.1"'
    del environ["REQUEST_URI"]
    environ.update(SCRIPT_NAME="", PATH_INFO="/p")
    assert request_line(environ) == f'"GET /p?{masked} HTTP/1.1"'


def test_secret_words_are_extensible():
    from django_scgi.environ import set_secret_words

    assert mask_environ({"HTTP_X_PIN": "1234"}) == {"HTTP_X_PIN": "1234"}
    try:
        set_secret_words(["pin"])
        assert mask_environ({"HTTP_X_PIN": "1234", "QUERY_STRING": "pin=1"}) == {
            "HTTP_X_PIN": "********", "QUERY_STRING": "pin=********"}
        assert mask_environ({"HTTP_X_OTP": "1"}) == {"HTTP_X_OTP": "********"}  # still
    finally:
        set_secret_words([])


# --- nginx's doubled HTTP_HOST (deploy/nginx.conf's recipe for a non-default port) --------


def test_doubled_http_host_reaches_django_as_the_later_copy():
    """scgi_params' HTTP_HOST $host, then the recipe's $host:$server_port: Django's Host
    (for ALLOWED_HOSTS and the CSRF origin check) is host:port, never both joined."""
    from django.core.handlers.wsgi import WSGIRequest

    from django_scgi import protocol

    head = protocol.encode_request([
        ("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/app/admin/login/"),
        ("DOCUMENT_URI", "/app/admin/login/"), ("SCRIPT_NAME", "/app/"),
        ("SERVER_NAME", "localhost"), ("SERVER_PORT", "8090"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("HTTP_HOST", "127.0.0.1"),
        ("HTTP_HOST", "127.0.0.1:8090"), ("HTTP_ORIGIN", "http://127.0.0.1:8090"),
    ])
    cgi, _, _ = protocol.parse_head(head)
    environ = environ_for(cgi)
    assert environ["HTTP_HOST"] == "127.0.0.1:8090"
    request = WSGIRequest(environ)
    assert request.get_host() == "127.0.0.1:8090"
    assert f"{request.scheme}://{request.get_host()}" == environ["HTTP_ORIGIN"]


# --- the usual request's shortcuts agree with the general rules ----------------------------

_PATHS = st.sampled_from(["", "/", "/x", "/app/x", "/caf\xc3\xa9", "/a%2Fb", "/a b/"])


@settings(max_examples=300, deadline=None)
@given(
    path_info=st.none() | _PATHS,
    document_uri=st.none() | _PATHS,
    script_name=st.none() | st.sampled_from(["", "/app", "/"]),
    server_protocol=st.none() | st.sampled_from(["HTTP/1.1", "HTTP/2.0", "GEMINI", "gemini"]),
    https=st.none() | st.sampled_from(["", "on", "off", "1"]),
    scheme=st.none() | st.sampled_from(["http", "https", "HTTP", ""]),
)
def test_shortcuts_give_what_the_rules_give(path_info, document_uri, script_name,
                                             server_protocol, https, scheme):
    """build_environ() skips _split_path() and _url_scheme() for the usual request
    (no mount anywhere, an HTTP SERVER_PROTOCOL, REQUEST_SCHEME http): same answers."""
    sent = {"PATH_INFO": path_info, "DOCUMENT_URI": document_uri, "SCRIPT_NAME": script_name,
            "SERVER_PROTOCOL": server_protocol, "HTTPS": https, "REQUEST_SCHEME": scheme}
    cgi = {name: value for name, value in sent.items() if value is not None}
    cgi.update(REQUEST_METHOD="GET", SERVER_NAME="h", SERVER_PORT="80", REQUEST_URI="/u")
    environ = environ_for(cgi)
    if is_gemini(cgi):
        expected_split = environ_module._split_gemini_path(cgi, None)
    else:
        expected_split = environ_module._split_path(cgi, None)
    assert split(environ) == expected_split
    # From the environ: a Gemini request is made secure (HTTPS=on) before its scheme.
    assert environ["wsgi.url_scheme"] == environ_module._url_scheme(environ)
    assert (environ.get(GEMINI) is True) == is_gemini(cgi)


# --- the C accelerator of the usual request (_speedups.usual_environ) ---------------------

_VALUES = st.sampled_from(["", "/", "/x", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "GEMINI", "http",
                           "https", "on", "GET", "a=1, b=2", "a=1; b=2", "h", "80", "1.2.3.4"])
_NAMES = st.sampled_from([
    "SERVER_PROTOCOL", "REQUEST_SCHEME", "HTTPS", "REQUEST_METHOD", "QUERY_STRING",
    "SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "SCRIPT_NAME", "PATH_INFO", "DOCUMENT_URI",
    "HTTP_COOKIE", "HTTP_PROXY", "HTTP_CONTENT_LENGTH", "SCRIPT_FILENAME", "REQUEST_URI",
    "HTTP_HOST", "wsgi.errors",
])
USUAL = {"SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "http", "REQUEST_METHOD": "GET",
         "QUERY_STRING": "", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
         "REMOTE_ADDR": "127.0.0.1", "SCRIPT_NAME": "", "PATH_INFO": "/", "HTTP_HOST": "h"}


def python_environ(cgi, base, body, peer=None):
    saved, environ_module._c_usual_environ = environ_module._c_usual_environ, None
    try:
        return build_environ(dict(cgi), body, base, None, peer)
    finally:
        environ_module._c_usual_environ = saved


@pytest.mark.skipif(environ_module._c_usual_environ is None, reason="_speedups not built")
@settings(max_examples=500, deadline=None)
@given(changes=st.dictionaries(_NAMES, st.none() | _VALUES, max_size=6))
def test_c_usual_environ_agrees_with_python_wherever_it_answers(changes):
    cgi = {**USUAL, **{name: value for name, value in changes.items() if value is not None}}
    for name in [name for name, value in changes.items() if value is None]:
        cgi.pop(name, None)
    base = make_base_environ(errors=io.StringIO())
    body = io.BytesIO()
    made = dict(cgi)
    if environ_module._c_usual_environ(made, base, body):
        expected = python_environ(cgi, base, body, peer=("10.0.0.1", 5))
        assert list(made.items()) == list(expected.items())  # the same, in the same order
    else:
        assert made == cgi  # nothing changed


@pytest.mark.skipif(environ_module._c_usual_environ is None, reason="_speedups not built")
def test_the_usual_requests_take_the_c_path():
    base = make_base_environ(errors=io.StringIO())
    nginx = {**USUAL, "DOCUMENT_URI": "/x"}
    del nginx["PATH_INFO"], nginx["SCRIPT_NAME"]
    for cgi in (dict(USUAL), nginx):
        assert environ_module._c_usual_environ(cgi, base, io.BytesIO()) is True
    # A front-end's mount, or a base with other names, is left to Python.
    assert environ_module._c_usual_environ({**USUAL, "SCRIPT_NAME": "/app"}, base, None) is False
    assert environ_module._c_usual_environ(dict(USUAL), {"X": 1}, None) is False
