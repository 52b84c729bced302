"""FastCGI PARAMS -> WSGI environ: the front-ends' quirks (environ.build_environ(fastcgi=True)).

The fixtures are what nginx 1.22.1 (stock ``fastcgi_params``), Apache 2.4.71
``mod_proxy_fcgi``, lighttpd 1.4.69 ``mod_fastcgi`` and Caddy 2.6.2 ``transport
fastcgi`` sent for ``/app/caf%C3%A9/x?q=1`` and a POST, captured in the lab from a
FastCGI listener and kept in their order (repeated names already merged as
``fastcgi.params_environ`` does). Every row names the front-end and the mount point.
The SCGI rules are held by test_environ.py; the last test shows the FastCGI rule
differs from the SCGI one exactly where nginx's stock params need it.
"""

from __future__ import annotations

import io

import pytest

from django_scgi import fastcgi
from django_scgi.environ import build_environ, make_base_environ

CAFE = "/caf\xc3\xa9/x"

DUMPS: dict[str, list[tuple[str, str]]] = {
    "nginx/get": [
        ("QUERY_STRING", "q=1"), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""), ("SCRIPT_NAME", "/app/caf\xc3\xa9/x"),
        ("REQUEST_URI", "/app/caf%C3%A9/x?q=1"), ("DOCUMENT_URI", "/app/caf\xc3\xa9/x"),
        ("DOCUMENT_ROOT", "/tmp/fcap/ng/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"), ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "35694"), ("REMOTE_USER", ""), ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "19101"), ("SERVER_NAME", ""), ("REDIRECT_STATUS", "200"),
        ("HTTP_HOST", "127.0.0.1"), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"), ("HTTP_COOKIE", "a=1; b=2"), ("HTTP_X_DUP", "one, two"),
    ],
    "nginx/post": [
        ("QUERY_STRING", ""), ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"), ("CONTENT_LENGTH", "7"),
        ("SCRIPT_NAME", "/app/post"), ("REQUEST_URI", "/app/post"),
        ("DOCUMENT_URI", "/app/post"), ("DOCUMENT_ROOT", "/tmp/fcap/ng/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "35704"), ("REMOTE_USER", ""),
        ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "19101"), ("SERVER_NAME", ""),
        ("REDIRECT_STATUS", "200"), ("HTTP_HOST", "127.0.0.1"),
        ("HTTP_USER_AGENT", "curl/7.88.1"), ("HTTP_ACCEPT", "*/*"),
        ("HTTP_CONTENT_LENGTH", "7"),
        ("HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded"),
    ],
    "nginx/script-name-param": [
        ("QUERY_STRING", ""), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""), ("SCRIPT_NAME", "/split"), ("REQUEST_URI", "/split/x"),
        ("DOCUMENT_URI", "/split/x"), ("DOCUMENT_ROOT", "/tmp/fcap/ng/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "35716"), ("REMOTE_USER", ""),
        ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "19101"), ("SERVER_NAME", ""),
        ("REDIRECT_STATUS", "200"), ("HTTP_HOST", "127.0.0.1"),
        ("HTTP_USER_AGENT", "curl/7.88.1"), ("HTTP_ACCEPT", "*/*"),
    ],
    "apache/get": [
        ("HTTP_HOST", "127.0.0.1:19102"), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"), ("HTTP_COOKIE", "a=1, b=2"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"), ("SERVER_SIGNATURE", ""),
        ("SERVER_SOFTWARE", "Apache/2.4.71 (Debian)"), ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "19102"),
        ("REMOTE_ADDR", "127.0.0.1"), ("DOCUMENT_ROOT", "/var/www/html"),
        ("REQUEST_SCHEME", "http"), ("CONTEXT_PREFIX", ""),
        ("CONTEXT_DOCUMENT_ROOT", "/var/www/html"), ("SERVER_ADMIN", "[no address given]"),
        ("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:19001/caf%C3%A9/x"),
        ("REMOTE_PORT", "46254"), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_METHOD", "GET"), ("QUERY_STRING", "q=1"),
        ("REQUEST_URI", "/app/caf%C3%A9/x?q=1"), ("SCRIPT_NAME", "/app/caf\xc3\xa9/x"),
    ],
    "apache/post": [
        ("HTTP_HOST", "127.0.0.1:19102"), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"), ("CONTENT_LENGTH", "7"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"), ("SERVER_SIGNATURE", ""),
        ("SERVER_SOFTWARE", "Apache/2.4.71 (Debian)"), ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "19102"),
        ("REMOTE_ADDR", "127.0.0.1"), ("DOCUMENT_ROOT", "/var/www/html"),
        ("REQUEST_SCHEME", "http"), ("CONTEXT_PREFIX", ""),
        ("CONTEXT_DOCUMENT_ROOT", "/var/www/html"), ("SERVER_ADMIN", "[no address given]"),
        ("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:19001/post"), ("REMOTE_PORT", "46262"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "POST"), ("QUERY_STRING", ""), ("REQUEST_URI", "/app/post"),
        ("SCRIPT_NAME", "/app/post"),
    ],
    "apache/mount-slash": [
        ("HTTP_HOST", "127.0.0.1:19102"), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"), ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("SERVER_SIGNATURE", ""), ("SERVER_SOFTWARE", "Apache/2.4.71 (Debian)"),
        ("SERVER_NAME", "127.0.0.1"), ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "19102"), ("REMOTE_ADDR", "127.0.0.1"),
        ("DOCUMENT_ROOT", "/var/www/html"), ("REQUEST_SCHEME", "http"),
        ("CONTEXT_PREFIX", ""), ("CONTEXT_DOCUMENT_ROOT", "/var/www/html"),
        ("SERVER_ADMIN", "[no address given]"),
        ("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:19001/"), ("REMOTE_PORT", "46276"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"), ("QUERY_STRING", ""), ("REQUEST_URI", "/app/"),
        ("SCRIPT_NAME", "/app/"),
    ],
    "lighttpd/get": [
        ("CONTENT_LENGTH", "0"), ("QUERY_STRING", "q=1"),
        ("REQUEST_URI", "/app/caf%C3%A9/x?q=1"), ("REDIRECT_STATUS", "200"),
        ("SCRIPT_NAME", "/app"), ("PATH_INFO", "/caf\xc3\xa9/x"),
        ("PATH_TRANSLATED", "/tmp/fcap/lt/htdocs/caf\xc3\xa9/x"),
        ("SCRIPT_FILENAME", "/tmp/fcap/lt/htdocs/app"),
        ("DOCUMENT_ROOT", "/tmp/fcap/lt/htdocs"), ("REQUEST_METHOD", "GET"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("SERVER_SOFTWARE", "lighttpd/1.4.69"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("REQUEST_SCHEME", "http"),
        ("SERVER_PORT", "19103"), ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "127.0.0.1"), ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "44272"), ("HTTP_HOST", "127.0.0.1:19103"),
        ("HTTP_USER_AGENT", "curl/7.88.1"), ("HTTP_ACCEPT", "*/*"),
    ],
    "lighttpd/mount": [
        ("CONTENT_LENGTH", "0"), ("QUERY_STRING", ""), ("REQUEST_URI", "/app"),
        ("REDIRECT_STATUS", "200"), ("SCRIPT_NAME", "/app"),
        ("SCRIPT_FILENAME", "/tmp/fcap/lt/htdocs/app"),
        ("DOCUMENT_ROOT", "/tmp/fcap/lt/htdocs"), ("REQUEST_METHOD", "GET"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("SERVER_SOFTWARE", "lighttpd/1.4.69"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("REQUEST_SCHEME", "http"),
        ("SERVER_PORT", "19103"), ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "127.0.0.1"), ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "44300"), ("HTTP_HOST", "127.0.0.1:19103"),
        ("HTTP_USER_AGENT", "curl/7.88.1"), ("HTTP_ACCEPT", "*/*"),
    ],
    "caddy/get": [
        ("REMOTE_PORT", "56812"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_HOST", "127.0.0.1:19104"), ("SERVER_PORT", "19104"), ("CONTENT_LENGTH", "0"),
        ("REQUEST_METHOD", "GET"), ("SERVER_SOFTWARE", "Caddy/2.6.2"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("DOCUMENT_ROOT", "/tmp/fcap/cd"),
        ("HTTP_ACCEPT", "*/*"), ("AUTH_TYPE", ""), ("REQUEST_SCHEME", "http"),
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"), ("REMOTE_IDENT", ""),
        ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_USER", ""), ("SERVER_NAME", "127.0.0.1"),
        ("SCRIPT_FILENAME", "/tmp/fcap/cd"), ("HTTP_X_FORWARDED_HOST", "127.0.0.1:19104"),
        ("CONTENT_TYPE", ""), ("REMOTE_HOST", "127.0.0.1"), ("DOCUMENT_URI", ""),
        ("SCRIPT_NAME", ""), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("PATH_INFO", "/app/caf\xc3\xa9/x"),
        ("PATH_TRANSLATED", "/tmp/fcap/cd/app/caf\xc3\xa9/x"), ("QUERY_STRING", "q=1"),
        ("REQUEST_URI", "/app/caf%C3%A9/x?q=1"), ("HTTP_X_FORWARDED_PROTO", "http"),
    ],
    "caddy/post": [
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("DOCUMENT_ROOT", "/tmp/fcap/cd"),
        ("HTTP_HOST", "127.0.0.1:19104"), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("QUERY_STRING", ""), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_NAME", "127.0.0.1"),
        ("HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"), ("REMOTE_IDENT", ""),
        ("REMOTE_HOST", "127.0.0.1"), ("HTTP_ACCEPT", "*/*"),
        ("HTTP_X_FORWARDED_HOST", "127.0.0.1:19104"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"), ("REMOTE_PORT", "56824"),
        ("REQUEST_METHOD", "POST"), ("REQUEST_SCHEME", "http"),
        ("SERVER_SOFTWARE", "Caddy/2.6.2"), ("SCRIPT_FILENAME", "/tmp/fcap/cd"),
        ("HTTP_CONTENT_LENGTH", "7"), ("AUTH_TYPE", ""), ("PATH_INFO", "/app/post"),
        ("REQUEST_URI", "/app/post"), ("DOCUMENT_URI", ""),
        ("PATH_TRANSLATED", "/tmp/fcap/cd/app/post"), ("SERVER_PORT", "19104"),
        ("CONTENT_LENGTH", "7"), ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_USER", ""),
        ("SCRIPT_NAME", ""), ("HTTP_X_FORWARDED_PROTO", "http"),
    ],
    # Apache mod_authnz_fcgi asking about /protected-files/r.txt (FCGI_ROLE=AUTHORIZER is
    # the record's role, added by the server): no SCRIPT_NAME, no PATH_INFO.
    "apache/authorizer": [
        ("HTTP_HOST", "127.0.0.1:19105"), ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"), ("SERVER_SOFTWARE", "Apache/2.4.71 (Debian)"),
        ("SERVER_NAME", "127.0.0.1"), ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "19105"),
        ("REMOTE_ADDR", "127.0.0.1"), ("DOCUMENT_ROOT", "/var/www/html"),
        ("REQUEST_SCHEME", "http"), ("CONTEXT_PREFIX", "/protected-files/"),
        ("CONTEXT_DOCUMENT_ROOT", "/tmp/fcap/az/files/"),
        ("SCRIPT_FILENAME", "/tmp/fcap/az/files/r.txt"), ("REMOTE_PORT", "56694"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"), ("QUERY_STRING", ""),
        ("REQUEST_URI", "/protected-files/r.txt"), ("FCGI_ROLE", "AUTHORIZER"),
        ("FCGI_APACHE_ROLE", "AUTHENTICATOR"), ("HTTP_CONNECTION", "close"),
    ],
}


def environ_for(case: str, mount: str | None = None, fastcgi_: bool = True, **extra: str):
    cgi = {**fastcgi.params_environ(DUMPS[case]), **extra}
    base = make_base_environ(errors=io.StringIO())
    return build_environ(cgi, io.BytesIO(), base, mount_prefix=mount, fastcgi=fastcgi_)


PATHS = [
    # nginx's fastcgi_params: SCRIPT_NAME = DOCUMENT_URI = the whole path: no split.
    ("nginx/get", None, "", "/app" + CAFE),
    ("nginx/get", "/app", "/app", CAFE),
    ("nginx/post", None, "", "/app/post"),
    # `fastcgi_param SCRIPT_NAME /split;` after the include: a later copy that wins.
    ("nginx/script-name-param", None, "/split", "/x"),
    ("nginx/script-name-param", "/split", "/split", "/x"),
    # Apache: the whole path in SCRIPT_NAME, the part below the mount in SCRIPT_FILENAME.
    ("apache/get", None, "/app", CAFE),
    ("apache/get", "/app", "/app", CAFE),
    ("apache/post", None, "/app", "/post"),
    ("apache/mount-slash", None, "/app", "/"),
    # lighttpd splits by itself, as with mod_scgi.
    ("lighttpd/get", None, "/app", CAFE),
    ("lighttpd/mount", None, "/app", ""),
    # Caddy: SCRIPT_NAME "" and the whole path in PATH_INFO; FORCE_SCRIPT_NAME mounts it.
    ("caddy/get", None, "", "/app" + CAFE),
    ("caddy/get", "/app", "/app", CAFE),
    ("caddy/post", "/app", "/app", "/post"),
    # An Authorizer request is about the resource Apache guards: its path, never a split.
    ("apache/authorizer", None, "", "/protected-files/r.txt"),
    ("apache/authorizer", "/app", "", "/protected-files/r.txt"),
]


@pytest.mark.parametrize(("case", "mount", "script_name", "path_info"), PATHS)
def test_paths_from_real_front_ends(case, mount, script_name, path_info):
    environ = environ_for(case, mount)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize("case", DUMPS)
def test_body_length_and_framing_leftovers(case):
    environ = environ_for(case)
    # nginx sends CONTENT_LENGTH "" and Apache none on a GET; Django reads both as 0.
    assert environ.get("CONTENT_LENGTH", "") in ("", "0", "7")
    assert "HTTP_CONTENT_LENGTH" not in environ and "HTTP_CONTENT_TYPE" not in environ


def test_nginx_repeated_headers_and_apache_joined_cookies():
    assert environ_for("nginx/get")["HTTP_COOKIE"] == "a=1; b=2"
    assert environ_for("apache/get")["HTTP_COOKIE"] == "a=1; b=2"  # Apache's ", " undone


@pytest.mark.parametrize("case", DUMPS)
def test_query_scheme_and_server(case):
    environ = environ_for(case)
    assert environ["QUERY_STRING"] in ("q=1", "")
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["SERVER_PORT"].isdigit()


def test_the_fastcgi_rule_is_what_separates_nginx_fastcgi_from_scgi():
    # Without fastcgi=True the same variables read as SCGI would: nginx's SCRIPT_NAME
    # taken as the mount, the whole path in SCRIPT_NAME and nothing in PATH_INFO.
    scgi = environ_for("nginx/get", fastcgi_=False)
    assert (scgi["SCRIPT_NAME"], scgi["PATH_INFO"]) == ("/app" + CAFE, "")
    for case in ("apache/get", "lighttpd/get", "caddy/get", "nginx/script-name-param"):
        fcgi, plain = environ_for(case), environ_for(case, fastcgi_=False)
        assert (fcgi["SCRIPT_NAME"], fcgi["PATH_INFO"]) == (
            plain["SCRIPT_NAME"], plain["PATH_INFO"])


def test_an_authorizer_scripts_name_is_the_resource_not_a_mount():
    # Were SCRIPT_NAME sent for the guarded file, it is still the file's path: without
    # the Authorizer rule it would read as a mount with an empty PATH_INFO.
    environ = environ_for("apache/authorizer", SCRIPT_NAME="/protected-files/r.txt")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/protected-files/r.txt")
    plain = environ_for("apache/authorizer", SCRIPT_NAME="/protected-files/r.txt",
                        FCGI_ROLE="RESPONDER")
    assert (plain["SCRIPT_NAME"], plain["PATH_INFO"]) == ("/protected-files/r.txt", "")


@pytest.mark.parametrize("mount", [None, "/app"])
@pytest.mark.parametrize("case", DUMPS)
@pytest.mark.parametrize("extra", [{}, {"SCRIPT_NAME": ""}, {"DOCUMENT_URI": "/app/x"},
                                   {"PATH_INFO": "/a%2Fb", "REQUEST_URI": "/a%2Fb"}])
def test_fastcgi_rules_change_nothing_for_a_responder_without_script_name(case, mount, extra):
    # FastCGIExchange asks for FastCGI's path rules only with a SCRIPT_NAME or for an
    # Authorizer, so that the usual request takes build_environ's quick paths.
    params = {name: value for name, value in fastcgi.params_environ(DUMPS[case]).items()
              if name != "SCRIPT_NAME"}
    if params.get("FCGI_ROLE") == "AUTHORIZER":
        return
    variables = {**params, **extra}
    with_rules = build_environ(dict(variables), io.BytesIO(), make_base_environ(
        errors=io.StringIO()), mount, None, True)
    without = build_environ(dict(variables), io.BytesIO(), make_base_environ(
        errors=io.StringIO()), mount, None, False)
    for environ in (with_rules, without):
        del environ["wsgi.input"], environ["wsgi.errors"]
    assert with_rules == without
