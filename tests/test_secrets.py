"""Secrets stay out of the logs: the error log's environ masks cookies, credentials, tokens.

When an error reaches the server (``_application_failed``) before the head went out, it
logs the request's environ for diagnosis -- through ``mask_environ``. A request carrying
a session cookie, an ``Authorization`` header and the like must leave no trace of those
values anywhere in the server's output (error, access and warning lines alike), while
the log shows that the environ was there, masked. The error after the head is checked
the same way.
"""

from __future__ import annotations

import time

import pytest

from django_scgi import client

pytestmark = pytest.mark.timeout(60)

SECRETS = {
    "Cookie": "sessionid=SECRETCOOKIE; csrftoken=SECRETCSRF",
    "Authorization": "Bearer SECRETTOKEN",
    "Proxy-Authorization": "Basic SECRETPROXY",
    "X-Api-Key": "SECRETAPIKEY",
    "X-Auth-Token": "SECRETAUTHTOKEN",
    # By the rule, not a list (issue 20, item 6): names holding AUTH, OTP, SIG, ...
    "X-Auth": "SECRETXAUTH",
    "X-OTP": "SECRETOTP",
    "X-Signature": "SECRETSIGNATURE",
}
# Apache copies every variable as REDIRECT_<name> on an internal redirect.
REDIRECTED = {"REDIRECT_HTTP_AUTHORIZATION": "Bearer SECRETREDIRECT"}
MARKER_AGENT = "secrets-test-agent/1.0"  # not secret: must be in the log as sent
MASK = "********"


@pytest.fixture(scope="module")
def srv(start_module_server):
    return start_module_server("127.0.0.1:0")


def send(address: str, path: str) -> bytes:
    environ = client.build_environ(path, headers={**SECRETS, "User-Agent": MARKER_AGENT},
                                   extra=REDIRECTED)
    try:
        response = client.request(address, environ=environ, timeout=10)
    except client.ClientError:
        return b""
    return response.body


def lines_after(server, path: str, start: int, timeout: float = 5.0) -> str:
    """The output since ``start`` once the request's access line (written last) is in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.startswith("[") and f'"GET {path} ' in line for line in server.lines[start:]):
            break
        time.sleep(0.05)
    return "\n".join(server.lines[start:])


def assert_no_secret(text: str) -> None:
    assert "SECRET" not in text, text


def test_error_log_masks_secrets(srv):
    mark = len(srv.lines)
    body = send(srv.address, "/stream-error-early/")
    assert body == b"Internal Server Error"
    output = lines_after(srv, "/stream-error-early/", mark)
    assert "ERROR" in output and "Environ:" in output, output  # the environ was logged...
    assert MARKER_AGENT in output
    for name in ("HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION",
                 "HTTP_X_API_KEY", "HTTP_X_AUTH_TOKEN", "REDIRECT_HTTP_AUTHORIZATION",
                 "HTTP_X_AUTH", "HTTP_X_OTP", "HTTP_X_SIGNATURE"):
        assert f"'{name}': '{MASK}'" in output, name  # ...with these masked
    assert_no_secret(output)


def test_error_after_the_head_logs_no_secret(srv):
    mark = len(srv.lines)
    send(srv.address, "/stream-error/")
    output = lines_after(srv, "/stream-error/", mark)
    assert "ERROR" in output and '"GET /stream-error/ HTTP/1.1"' in output, output
    assert_no_secret(output)


def test_whole_output_holds_no_secret(srv):
    # Every line the server wrote over the module's requests (access lines included).
    send(srv.address, "/")
    send(srv.address, "/no-such-page/")
    lines_after(srv, "/no-such-page/", 0)
    assert_no_secret(srv.output)


def test_query_string_tokens_are_masked_in_every_line(srv):
    # The access line and the error log both show the request line: parameters whose
    # name holds a secret word lose their value there, the others stay.
    mark = len(srv.lines)
    path = "/stream-error-early/?access_token=SECRETQ1&page=2&sig=SECRETQ2&otp=SECRETQ3"
    send(srv.address, path)
    output = lines_after(srv, "/stream-error-early/", mark)
    assert "page=2" in output and f"access_token={MASK}" in output, output
    assert f"'QUERY_STRING': 'access_token={MASK}&page=2&sig={MASK}&otp={MASK}'" in output
    assert_no_secret(output)


def test_mask_words_extend_the_rule(start_server):
    server = start_server("127.0.0.1:0", "--mask-words", "pin,badge")
    environ = client.build_environ("/stream-error-early/?badge=SECRETBADGE",
                                   headers={"X-Pin": "SECRETPIN", "User-Agent": MARKER_AGENT})
    client.request(server.address, environ=environ, timeout=10)
    output = lines_after(server, "/stream-error-early/", 0)
    assert f"'HTTP_X_PIN': '{MASK}'" in output and MARKER_AGENT in output, output
    assert_no_secret(output)
