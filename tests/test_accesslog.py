"""The access log and the start-up/shutdown lines, as a log shipper sees them.

Real ``runscgi`` processes; every access line is matched with the regular expression
that docs/production.rst documents (read from the page, so the two cannot drift).
"""

from __future__ import annotations

import re
import signal
import socket
import textwrap
import time

import pytest
from helpers import REPO, exchange

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

PRODUCTION = REPO / "docs" / "production.rst"
# Django's default django.server handler: "[{server_time}] {message}".
DJANGO_PREFIX = re.compile(r"^\[[^\]]+\] ")


def documented_regex() -> re.Pattern[str]:
    lines = [line.strip() for line in PRODUCTION.read_text().splitlines()
             if line.strip().startswith("^(?P<remote_addr>")]
    assert len(lines) == 1, "docs/production.rst documents the access line regex once"
    return re.compile(lines[0])


ACCESS_LINE = documented_regex()


def access_lines(server, start: int = 0) -> list[re.Match[str]]:
    """Every access line printed after ``server.lines[start]``, parsed."""
    found = []
    for line in server.lines[start:]:
        if DJANGO_PREFIX.match(line):
            message = DJANGO_PREFIX.sub("", line, count=1)
            match = ACCESS_LINE.match(message)
            assert match, f"access line does not match the documented format: {message!r}"
            found.append(match)
    return found


def wait_for_lines(server, start: int, count: int, timeout: float = 10.0) -> list[re.Match[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = access_lines(server, start)
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"expected {count} access lines:\n" + "\n".join(server.lines[start:]))


def test_each_request_gives_one_parseable_line_with_every_field(start_server):
    server = start_server("127.0.0.1:0")
    start = len(server.lines)
    cases = [
        (client.build_environ("/"), b"", "GET", "/", 200),
        (client.build_environ("/echo/", "POST", body_length=5), b"hello", "POST", "/echo/", 200),
        (client.build_environ("/no/such/page/"), b"", "GET", "/no/such/page/", 404),
        (client.build_environ("/error/"), b"", "GET", "/error/", 500),
        (client.build_environ("/?q=1&r=two"), b"", "GET", "/?q=1&r=two", 200),
        (client.build_environ("/", "HEAD"), b"", "HEAD", "/", 200),
    ]
    sizes = []
    for environ, body, *_ in cases:
        environ = {**environ, "REMOTE_ADDR": "203.0.113.9"}
        if body:
            environ["CONTENT_TYPE"] = "text/plain"
        sizes.append(len(exchange(server.address, encode_request(environ, body), 10)))
    lines = wait_for_lines(server, start, len(cases))
    assert len(lines) == len(cases)
    for line, (_, _, method, uri, status), size in zip(lines, cases, sizes):
        assert line["remote_addr"] == "203.0.113.9"
        assert (line["method"], line["uri"], line["protocol"]) == (method, uri, "HTTP/1.1")
        assert int(line["status"]) == status
        assert int(line["bytes"]) == size  # head and body, as the front-end received them
        assert 0 <= float(line["seconds"]) < 5


def test_duration_is_measured(start_server):
    server = start_server("127.0.0.1:0")
    start = len(server.lines)
    client.request(server.address, "/sleep/?s=0.3")
    (line,) = wait_for_lines(server, start, 1)
    assert 0.3 <= float(line["seconds"]) < 2


def test_hostile_values_cannot_break_or_forge_a_line(start_server):
    server = start_server("127.0.0.1:0")
    start = len(server.lines)
    environ = client.build_environ("/")
    environ["REQUEST_URI"] = '/a b"c\n[01/Jan/2026 00:00:00] 1.2.3.4 "GET / HTTP/1.1" 200 1 0.001'
    environ["REMOTE_ADDR"] = 'evil "addr"'
    exchange(server.address, encode_request(environ), 10)
    (line,) = wait_for_lines(server, start, 1)
    assert line["remote_addr"] == "evil%20%22addr%22"
    assert line["uri"].startswith("/a%20b%22c%0A[01/Jan/2026%2000:00:00]%201.2.3.4%20%22GET")
    assert line["status"] == "404"  # no such path, but one honest line


def test_peer_that_goes_away_is_logged_with_0_bytes(start_server):
    server = start_server("127.0.0.1:0")
    start = len(server.lines)
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(encode_request(client.build_environ("/sleep/?s=0.5"), b""))
        time.sleep(0.1)
    # The view still runs to its end (the reset is seen when the answer is sent).
    (line,) = wait_for_lines(server, start, 1)
    assert line["uri"] == "/sleep/?s=0.5"
    assert (line["status"], line["bytes"]) == ("200", "0")


def test_no_access_log(start_server):
    server = start_server("127.0.0.1:0", "--no-access-log")
    start = len(server.lines)
    for _ in range(3):
        assert client.request(server.address, "/").status == 200
    time.sleep(0.3)
    assert access_lines(server, start) == []


def test_start_up_and_shutdown_lines_at_info(start_server):
    server = start_server("127.0.0.1:0")
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert re.search(rf"INFO django_scgi\.server: Listening on {re.escape(server.address)} "
                     rf"\(pid {server.pid}\)\.", server.output)
    assert "INFO django_scgi.server: SIGTERM received" in server.output
    assert re.search(rf"INFO django_scgi\.server: Stopped \(pid {server.pid}\)\.", server.output)
    # The banner stays printed, not logged.
    assert f"Serving SCGI on {server.address}" in server.lines


@pytest.fixture
def key_value_logging(tmp_path):
    """A settings module with the documented key=value access formatter."""
    text = PRODUCTION.read_text()
    block = text[text.index("    LOGGING = {"):]
    block = block[: block.index("\n    }\n") + 7]
    (tmp_path / "kv_settings.py").write_text(
        "from testproject.settings import *  # noqa: F401,F403\n\n" + textwrap.dedent(block)
    )
    return {"PYTHONPATH": f"{tmp_path}:{REPO}"}


def test_documented_structured_fields(start_server, key_value_logging):
    server = start_server("127.0.0.1:0", "--settings", "kv_settings", env=key_value_logging)
    start = len(server.lines)
    environ = {**client.build_environ("/no/such/?x=1"), "REMOTE_ADDR": "198.51.100.4"}
    size = len(exchange(server.address, encode_request(environ), 10))
    deadline = time.monotonic() + 10
    while not any(line.startswith("access ") for line in server.lines[start:]):
        assert time.monotonic() < deadline, server.output
        time.sleep(0.05)
    (line,) = [line for line in server.lines[start:] if line.startswith("access ")]
    fields = dict(item.split("=", 1) for item in line.split()[1:])
    assert fields["remote"] == "198.51.100.4"
    assert fields["method"] == "GET"
    assert fields["uri"] == "/no/such/?x=1"
    assert fields["status"] == "404"
    assert int(fields["bytes"]) == size
    assert 0 <= float(fields["seconds"]) < 5
    assert "INFO django_scgi.server: Listening on" in server.output
