"""``python -m django_scgi.client`` and ``client.request()`` against a real ``runscgi``.

The command is what a Docker HEALTHCHECK runs: its exit status is the contract (0 below
500, 1 for a 5xx, 2 when the server cannot be reached, times out or answers nonsense).
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time

import pytest
from helpers import REPO

from django_scgi import client

# Bound on every client run; the client's own --timeout is shorter wherever it matters.
RUN_TIMEOUT = 20.0


@pytest.fixture(scope="module", params=["tcp", "unix"])
def srv(request, start_module_server, module_short_tmp):
    if request.param == "tcp":
        return start_module_server("127.0.0.1:0")
    return start_module_server(f"unix:{module_short_tmp}/c.sock")


def run_client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django_scgi.client", *args], cwd=REPO,
        capture_output=True, timeout=RUN_TIMEOUT, check=False,
    )


def body_of(stdout: bytes) -> bytes:
    return stdout.partition(b"\n\n")[2]


# --- the command ------------------------------------------------------------------------


def test_get_prints_status_headers_and_body(srv):
    result = run_client(srv.address, "/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"Status: 200 OK\n")
    assert b"\nContent-Length: 23\n" in result.stdout
    assert body_of(result.stdout) == b"Hello from django-scgi\n"
    assert result.stderr == b""


def test_path_defaults_to_root(srv):
    result = run_client(srv.address)
    assert result.returncode == 0
    assert body_of(result.stdout) == b"Hello from django-scgi\n"


def test_server_error_exits_1(srv):
    result = run_client(srv.address, "/error/")
    assert result.returncode == 1
    assert result.stdout.startswith(b"Status: 500 Internal Server Error\n")


def test_client_error_status_exits_0(srv):
    result = run_client(srv.address, "/no-such-page/")
    assert result.returncode == 0
    assert result.stdout.startswith(b"Status: 404 Not Found\n")


def test_quiet_prints_nothing(srv):
    result = run_client("-q", srv.address, "/")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_head_method(srv):
    result = run_client("-X", "HEAD", srv.address, "/")
    assert result.returncode == 0
    assert b"\nContent-Length: 23\n" in result.stdout
    assert result.stdout.endswith(b"\n\n") and body_of(result.stdout) == b""


def test_data_is_posted(srv):
    data = "posted by the client \u00e9"
    result = run_client("-d", data, srv.address, "/upload/")
    assert result.returncode == 0, result.stderr
    assert json.loads(body_of(result.stdout)) == {
        "bytes": len(data.encode()), "sha256": hashlib.sha256(data.encode()).hexdigest(),
    }


def test_headers_are_passed(srv):
    result = run_client("-H", "Cookie: a=1; b=2", "-H", "Authorization: Bearer t0k3n",
                        srv.address, "/info/?x=1")
    assert result.returncode == 0, result.stderr
    info = json.loads(body_of(result.stdout))
    assert info["cookies"] == {"a": "1", "b": "2"}
    assert info["authorization"] == "Bearer t0k3n"
    assert info["query"] == {"x": ["1"]}


def test_malformed_header_option_is_a_usage_error(srv):
    result = run_client("-H", "no colon here", srv.address, "/")
    assert result.returncode == 2
    assert b"Name: value" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_timeout_is_a_usage_error(value):
    result = run_client("--timeout", value, "127.0.0.1:9", "/")
    assert result.returncode == 2
    assert b"--timeout" in result.stderr and b"Traceback" not in result.stderr


def test_refused_connection_exits_2(short_tmp):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"unix:{short_tmp}/nobody.sock"):
        result = run_client("--timeout", "5", address, "/")
        assert result.returncode == 2, address
        assert result.stderr.startswith(b"error: cannot connect"), result.stderr
        assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_silent_server_times_out_with_exit_2(family, short_tmp):
    # A listener that accepts (in the kernel's backlog) and never answers.
    if family == "tcp":
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
    else:
        silent = socket.socket(socket.AF_UNIX)
        silent.bind(str(short_tmp / "silent.sock"))
        address = f"unix:{short_tmp}/silent.sock"
    with silent:
        silent.listen(4)
        started = time.monotonic()
        result = run_client("--timeout", "1", address, "/")
        elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert b"timed out" in result.stderr and b"Traceback" not in result.stderr
    assert elapsed < 8  # 1 s of waiting plus interpreter start-up


def test_not_a_cgi_response_exits_2(short_tmp):
    # Something that answers, but not in CGI: an HTTP server's garbage, say.
    path = str(short_tmp / "liar.sock")
    with socket.socket(socket.AF_UNIX) as liar:
        liar.bind(path)
        liar.listen(1)
        proc = subprocess.Popen([sys.executable, "-m", "django_scgi.client", "--timeout", "5",
                                 f"unix:{path}", "/"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            liar.settimeout(RUN_TIMEOUT)
            conn, _ = liar.accept()
            with conn:
                conn.settimeout(RUN_TIMEOUT)
                request = b""
                while not request.endswith(b","):  # the whole request (it has no body)
                    request += conn.recv(4096)
                conn.sendall(b"this is not\na CGI response\n\n")
            _, err = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 2
    assert err.startswith(b"error: not a CGI response") and b"Traceback" not in err


# --- the library ------------------------------------------------------------------------


def test_request_and_response_headers(srv):
    response = client.request(srv.address, "/cookies/", timeout=10)
    assert (response.status, response.reason) == (200, "OK")
    assert response.body == b"cookies set\n"
    assert response.header("content-type") == "text/plain"
    assert response.header("CONTENT-TYPE") == "text/plain"
    assert response.header("X-Nothing") is None
    assert response.header("X-Nothing", "default") == "default"
    assert response.header("Set-Cookie") == "first=1; Path=/"  # the first of them
    assert response.header_list("set-cookie") == [
        "first=1; Path=/", "second=2; Path=/", "third=3; Path=/",
    ]
    assert response.header_list("X-Nothing") == []


def test_request_posts_a_body(srv):
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    response = client.request(srv.address, "/upload/", method="POST", body=body, timeout=10)
    assert response.status == 200
    assert json.loads(response.body)["sha256"] == hashlib.sha256(body).hexdigest()


def test_request_with_a_raw_environ(srv):
    response = client.request(srv.address, environ={"REQUEST_URI": "/info/?a=b"}, timeout=10)
    assert json.loads(response.body)["query"] == {"a": ["b"]}


def test_redirect_status_and_location(srv):
    response = client.request(srv.address, "/redirect/", timeout=10)
    assert (response.status, response.reason) == (302, "Found")
    assert response.header("Location") == "/"


def test_request_errors_are_client_errors(short_tmp):
    with pytest.raises(client.ClientError, match="cannot connect"):
        client.request(f"unix:{short_tmp}/nobody.sock", "/", timeout=2)
    with pytest.raises(client.ClientError, match="not HOST:PORT"):
        client.request("no-port-here", "/", timeout=2)


def test_refusal_before_the_body_is_read(start_server):
    # The server answers 413 at once while the client is still sending the body: the
    # client reports that answer, not the failed send (nor a traceback). Needs the
    # server's lingering close too: a close() over unread bytes resets the connection and
    # the peer's kernel drops the 413.
    limited = start_server("127.0.0.1:0", "--max-body-size", "1000")
    response = client.request(limited.address, "/upload/", method="POST",
                              body=b"z" * (8 * 1024 * 1024), timeout=10)
    assert response.status == 413
    result = run_client("-d", "z" * 100_000, limited.address, "/upload/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"Status: 413 ")


# --- Host and health (issue 22) ---------------------------------------------------------


def run_client_env(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "django_scgi.client", *args], cwd=REPO,
        env={**os.environ, **env}, capture_output=True, timeout=RUN_TIMEOUT, check=False,
    )


def test_host_not_allowed_is_unhealthy(srv):
    """DisallowedHost answers 400: a probe that gets it has proved nothing."""
    result = run_client("--host", "not-allowed.example", srv.address, "/")
    assert result.returncode == client.EXIT_SERVER_ERROR, result.stdout
    assert result.stdout.startswith(b"Status: 400")
    assert b"ALLOWED_HOSTS" in result.stderr


def test_host_option_is_sent(srv):
    result = run_client("--host", "testserver", srv.address, "/info/")
    assert result.returncode == 0, result.stdout
    assert json.loads(body_of(result.stdout))["host"] == "testserver"


def test_default_host_is_the_first_allowed_host(srv):
    # testproject reads ALLOWED_HOSTS from the environment; the server was started with
    # the default list, which holds testserver too.
    result = run_client_env(srv.address, "/info/",
                            env={"DJANGO_SETTINGS_MODULE": "testproject.settings",
                                 "DJANGO_ALLOWED_HOSTS": "testserver,localhost"})
    assert result.returncode == 0, result.stdout
    assert json.loads(body_of(result.stdout))["host"] == "testserver"


def test_default_host_without_settings_is_the_address(srv):
    result = run_client_env(srv.address, "/info/", env={"DJANGO_SETTINGS_MODULE": ""})
    assert result.returncode == 0, result.stdout
    expected = "localhost" if srv.address.startswith("unix:") else "127.0.0.1"
    assert json.loads(body_of(result.stdout))["host"] == expected


@pytest.mark.parametrize(("address", "host"), [
    ("unix:/run/x.sock", "localhost"), ("127.0.0.1:4000", "127.0.0.1"),
    ("0.0.0.0:4000", "localhost"), ("[::1]:4000", "[::1]"), ("[::]:4000", "localhost"),
    ("4000", "127.0.0.1"), ("app.internal:4000", "app.internal"),
])
def test_host_for_address(address, host):
    assert client.host_for_address(address) == host
