"""The access log and the start-up/shutdown lines, as a log shipper sees them.

Real ``runscgi`` processes; every access line is matched with the regular expression
that docs/production.rst documents (read from the page, so the two cannot drift).
"""

from __future__ import annotations

import calendar
import datetime
import json
import logging
import re
import signal
import socket
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import REPO, exchange
from hypothesis import given, settings
from hypothesis import strategies as st

from django_scgi import client
from django_scgi.logtext import DEFAULT_SECRET_WORDS
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


# --- Django's default configuration: formatted here, written in batches -------------------
#
# With Django's own LOGGING for django.server, runscgi formats the line itself and writes
# lines in batches (django_scgi/server/accesslog.py). These tests hold that output to what
# Django's handler writes for the LogRecords of any other configuration, byte for byte, and
# that no line is lost or reordered on the ways a process ends.

# A module on the servers' PYTHONPATH: a handler that is Django's but for its class (so
# runscgi hands it LogRecords), a JSON formatter, and a view that ends the process.
LOGGING_HELPERS = '''
import json
import logging

from django.urls import path

from testproject.urls import urlpatterns as demo_urls


class RecordHandler(logging.StreamHandler):
    """logging.StreamHandler under another name: not Django's default, so LogRecords."""


class JsonFormatter(logging.Formatter):
    FIELDS = ("status_code", "remote_addr", "request_method", "request_uri",
              "server_protocol", "response_bytes", "duration")

    def format(self, record):
        fields = {name: getattr(record, name, "MISSING") for name in self.FIELDS}
        return "json " + json.dumps({
            "logger": record.name, "level": record.levelname, "msg": record.msg,
            "args": list(record.args), "message": record.getMessage(), **fields})


def crash(request):
    raise SystemExit(3)


def json_logging(request):
    """Configure logging anew while serving: django.server's lines become JSON."""
    import logging.config

    from django.http import HttpResponse

    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "logging_helpers.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {"django.server": {"handlers": ["json"], "level": "INFO",
                                      "propagate": False}},
    })
    return HttpResponse("reconfigured")


urlpatterns = [*demo_urls, path("crash/", crash), path("json-logging/", json_logging)]
'''

# Django's DEFAULT_LOGGING entries for django.server, but for the handler's class.
RECORD_SETTINGS = '''
from testproject.settings import *  # noqa: F401,F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"django.server": {"()": "django.utils.log.ServerFormatter",
                                     "format": "[{server_time}] {message}", "style": "{"}},
    "handlers": {"django.server": {"level": "INFO", "class": "logging_helpers.RecordHandler",
                                   "formatter": "django.server"}},
    "loggers": {"django.server": {"handlers": ["django.server"], "level": "INFO",
                                  "propagate": False}},
}
'''

JSON_SETTINGS = '''
from testproject.settings import *  # noqa: F401,F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "logging_helpers.JsonFormatter"}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {"django.server": {"handlers": ["json"], "level": "INFO", "propagate": False}},
}
'''

CRASH_SETTINGS = '''
from testproject.settings import *  # noqa: F401,F403

ROOT_URLCONF = "logging_helpers"
'''

STAMPED = re.compile(r"^\[(\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d),(\d{3})\] (.*)$")


@pytest.fixture
def helper_env(tmp_path):
    """PYTHONPATH with the helper module and the settings modules above."""
    (tmp_path / "logging_helpers.py").write_text(LOGGING_HELPERS)
    (tmp_path / "record_settings.py").write_text(RECORD_SETTINGS)
    (tmp_path / "json_settings.py").write_text(JSON_SETTINGS)
    (tmp_path / "crash_settings.py").write_text(CRASH_SETTINGS)
    return {"PYTHONPATH": f"{tmp_path}:{REPO}"}


def varied_requests() -> list[tuple[dict[str, str], bytes]]:
    """Requests whose lines take every branch of the formatting: statuses, escapes, a
    rebuilt URI (no REQUEST_URI), no REMOTE_ADDR, a body, HEAD, non-ASCII, a secret."""
    def env(path: str, method: str = "GET", **extra: str) -> dict[str, str]:
        return {**client.build_environ(path, method), "REMOTE_ADDR": "203.0.113.9", **extra}

    no_uri = env("/no/such/", QUERY_STRING="a=1 2", SCRIPT_NAME="/app", PATH_INFO="/x y/é")
    del no_uri["REQUEST_URI"]
    no_remote = env("/")
    del no_remote["REMOTE_ADDR"]
    post = {**env("/echo/", "POST"), "CONTENT_LENGTH": "5", "CONTENT_TYPE": "text/plain"}
    return [
        (env("/"), b""), (env("/?q=1&r=two"), b""), (env("/no/such/page/"), b""),
        (env("/error/"), b""), (env("/redirect/"), b""), (env("/", "HEAD"), b""),
        (post, b"hello"), (no_uri, b""), (no_remote, b""),
        (env('/a b"c\n[01/Jan/2026 00:00:00] forged'), b""),
        (env("/caf\xe9/\x7f"), b""), (env("/", REMOTE_ADDR='evil "addr"'), b""),
        (env("/", SERVER_PROTOCOL=""), b""), (env("/?token=s3cret&a=1"), b""),
    ]


def stamped_lines(server, start: int = 0) -> list[str]:
    return [line for line in server.lines[start:] if STAMPED.match(line)]


def wait_for_stamped(server, start: int, count: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = stamped_lines(server, start)
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"expected {count} access lines:\n" + "\n".join(server.lines[start:]))


def without_time(line: str) -> str:
    """The line with the two fields that differ between two runs (time, duration) masked."""
    match = STAMPED.match(line)
    assert match, line
    return "[T] " + re.sub(r" \d+\.\d{3}$", " D", match[3])


def test_default_output_is_djangos_handler_output_byte_for_byte(start_server, helper_env):
    """The same requests to a server with Django's default django.server logging (the
    fast output) and to one whose handler differs only by class (LogRecords through
    Django's ServerFormatter): the same lines in the same order, but for time and
    duration; and each fast line, time included, is what ServerFormatter writes for the
    record it stands for."""
    from django.utils.log import ServerFormatter

    fast = start_server("127.0.0.1:0", env=helper_env)
    reference = start_server("127.0.0.1:0", "--settings", "record_settings", env=helper_env)
    requests = varied_requests()
    outputs = []
    for server in (fast, reference):
        start = len(server.lines)
        for environ, body in requests:
            exchange(server.address, encode_request(environ, body), 10)
        outputs.append(wait_for_stamped(server, start, len(requests)))
    assert len(outputs[0]) == len(outputs[1]) == len(requests)
    assert [without_time(line) for line in outputs[0]] == [without_time(x) for x in outputs[1]]

    formatter = ServerFormatter("[{server_time}] {message}", style="{")
    formatter.converter = time.gmtime  # the demo project's TIME_ZONE is UTC
    for line in outputs[0]:
        stamp, msecs, message = STAMPED.match(line).groups()
        fields = ACCESS_LINE.match(message)
        request = f'"{fields["method"]} {fields["uri"]} {fields["protocol"]}"'
        record = logging.LogRecord(
            "django.server", logging.INFO, __file__, 0, "%s %s %d %d %.3f",
            (fields["remote_addr"], request, int(fields["status"]), int(fields["bytes"]),
             float(fields["seconds"])), None)
        record.created = calendar.timegm(time.strptime(stamp, "%d/%b/%Y %H:%M:%S"))
        record.msecs = int(msecs)
        record.status_code = int(fields["status"])
        assert formatter.format(record) == line


def test_a_json_formatter_gets_the_records_with_their_fields(start_server, helper_env):
    server = start_server("127.0.0.1:0", "--settings", "json_settings", env=helper_env)
    start = len(server.lines)
    environ = {**client.build_environ("/no/such/?x=1"), "REMOTE_ADDR": "198.51.100.4"}
    size = len(exchange(server.address, encode_request(environ), 10))
    deadline = time.monotonic() + 10
    while not (found := [x for x in server.lines[start:] if x.startswith("json ")]):
        assert time.monotonic() < deadline, server.output
        time.sleep(0.05)
    (line,) = found
    record = json.loads(line[len("json "):])
    assert record["logger"] == "django.server" and record["level"] == "INFO"
    assert record["msg"] == "%s %s %d %d %.3f"
    assert record["args"][:4] == ["198.51.100.4", '"GET /no/such/?x=1 HTTP/1.1"', 404, size]
    assert record["message"].startswith('198.51.100.4 "GET /no/such/?x=1 HTTP/1.1" 404 ')
    assert record["status_code"] == 404
    assert record["remote_addr"] == "198.51.100.4"
    assert record["request_method"] == "GET"
    assert record["request_uri"] == "/no/such/?x=1"
    assert record["server_protocol"] == "HTTP/1.1"
    assert record["response_bytes"] == size
    assert record["duration"] == record["args"][4] >= 0


def numbered_uris(server, start: int = 0) -> list[int]:
    """The n of each /?n=N access line, in output order."""
    return [int(match["uri"].split("=")[1]) for match in access_lines(server, start)
            if match["uri"].startswith("/?n=")]


def send_numbered(address: str, numbers: range) -> None:
    for n in numbers:
        assert client.request(address, f"/?n={n}").status == 200


def test_no_line_lost_on_sigterm(start_server):
    server = start_server("127.0.0.1:0")
    send_numbered(server.address, range(40))  # most of them wait in a batch
    server.signal(signal.SIGTERM)
    assert server.wait(15) == 0
    assert numbered_uris(server) == list(range(40))


def test_no_line_lost_on_a_second_sigterm(start_server):
    server = start_server("127.0.0.1:0", "--graceful-timeout", "30")
    sleeper = threading.Thread(target=lambda: exchange(
        server.address, encode_request(client.build_environ("/sleep/?s=20")), 30), daemon=True)
    sleeper.start()
    send_numbered(server.address, range(25))
    server.signal(signal.SIGTERM)
    assert server.wait_for_output("SIGTERM received")
    server.signal(signal.SIGTERM)  # the sleeping request holds the stop: exit at once
    assert server.wait(15) == 1
    assert numbered_uris(server) == list(range(25))


def test_no_line_lost_when_the_application_ends_the_process(start_server, helper_env):
    server = start_server("127.0.0.1:0", "--settings", "crash_settings", env=helper_env)
    send_numbered(server.address, range(20))
    with pytest.raises(client.ClientError):  # SystemExit in the view: no answer, it ends
        client.request(server.address, "/crash/")
    assert server.wait(15) == 3
    assert numbered_uris(server) == list(range(20))


def test_no_line_lost_when_workers_are_replaced_or_stopped(start_server):
    server = start_server("127.0.0.1:0", "--workers", "2")
    send_numbered(server.address, range(30))
    server.signal(signal.SIGHUP)  # each worker stops after its successor is ready
    assert server.wait_for_output("Reload finished", 60)
    send_numbered(server.address, range(30, 60))
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0
    # Two processes write: each one's lines in order, none missing, none twice.
    assert sorted(numbered_uris(server)) == list(range(60))


def test_lines_keep_the_order_requests_finished_in_under_concurrency(start_server):
    server = start_server("127.0.0.1:0")
    start = len(server.lines)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda n: client.request(server.address, f"/?n={n}"), range(160)))
    lines = wait_for_stamped(server, start, 160)
    assert sorted(numbered_uris(server, start)) == list(range(160))
    # Each line's time is taken when its request finished: written in that order, the
    # times never go back.
    stamps = [datetime.datetime.strptime(STAMPED.match(line)[1] + "." + STAMPED.match(line)[2],
                                         "%d/%b/%Y %H:%M:%S.%f") for line in lines]
    assert stamps == sorted(stamps)


# --- the formatting itself, in-process --------------------------------------------------


TYPICAL_ENVIRON = {
    "REMOTE_ADDR": "192.0.2.10", "REQUEST_METHOD": "GET", "REQUEST_URI": "/app/page/?q=1",
    "SERVER_PROTOCOL": "HTTP/1.1", "SCRIPT_NAME": "", "PATH_INFO": "/app/page/",
    "QUERY_STRING": "q=1",
}


@pytest.mark.parametrize("now", [1765056000.0, 1765056000.0004, 1765056000.9996,
                                 1765056059.5, 1234567890.123456, 4102444799.999])
@pytest.mark.parametrize("status, environ", [
    ("200 OK", TYPICAL_ENVIRON),
    ("404 Not Found", {**TYPICAL_ENVIRON, "REQUEST_URI": '/a b"c\n'}),
    (None, {}),
    ("500 Internal Server Error", {"SCRIPT_NAME": "/x", "PATH_INFO": "/é y"}),
])
def test_default_line_is_what_djangos_formatter_writes(monkeypatch, now, status, environ):
    from django.utils.log import ServerFormatter

    from django_scgi.server import accesslog

    formatter = ServerFormatter("[{server_time}] {message}", style="{")
    for duration, sent in ((0.0123456, 191), (12.0005, 0), (1e-9, 10**12)):
        args = (accesslog._remote(environ), accesslog.request_line(environ),
                accesslog.status_code(status), sent, duration)
        monkeypatch.setattr(time, "time", lambda: now)  # LogRecord's own clock
        monkeypatch.setattr(time, "time_ns", lambda: round(now * 1e9))
        record = logging.LogRecord("django.server", logging.INFO, __file__, 0,
                                   accesslog.MESSAGE, args, None)
        monkeypatch.undo()
        record.status_code = args[2]
        stamp = time.strftime(accesslog.DJANGO_TIME_FORMAT, time.localtime(now))
        line = accesslog.default_line(stamp, now, environ, status, sent, duration)
        assert line == formatter.format(record) + "\n"


try:
    from django_scgi._speedups import access_line as c_access_line
except ImportError:
    c_access_line = None

needs_c = pytest.mark.skipif(c_access_line is None, reason="_speedups is not built here")

FIELD_VALUES = st.one_of(
    st.none(), st.integers(), st.text(max_size=12),
    st.sampled_from(["", "-", "127.0.0.1", "::1", "GET", "HTTP/1.1", "/", "/a?b=c", "é",
                     "a b", 'a"b', "\x7f", "\x00", "/\u20ac", "/p?token=t0p", "x=1",
                     "/p?a=1&My-Sig=s;Pass=p", "/p?otp", "/k=v?x=1", "/p?apikey=1&b=2",
                     "/p?q=secretive", "/p?extra_word=1", "/p?Session=1&a=2"]))
# Secret words as environ's masking uses them: the defaults, or more (SCGI_MASK_WORDS).
WORD_LISTS = st.sampled_from([(), ("EXTRA",), ("extra", "q")])
NAMES = ["REMOTE_ADDR", "REQUEST_METHOD", "REQUEST_URI", "SERVER_PROTOCOL", "SCRIPT_NAME",
         "PATH_INFO", "QUERY_STRING"]


@needs_c
@settings(deadline=None)  # no time limit per example: the machine may be busy
@given(
    environ=st.dictionaries(st.sampled_from(NAMES), FIELD_VALUES),
    status=st.one_of(st.none(), st.text(max_size=6),
                     st.sampled_from(["200 OK", "404 Not Found", "099 x", "2xx", "20"])),
    sent=st.one_of(st.integers(min_value=-5, max_value=2**70), st.booleans()),
    duration=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.floats(min_value=0, max_value=1e6),
                       st.integers(0, 2 * 10**9).map(lambda n: n / 2000)),  # near ties
    now=st.floats(min_value=0, max_value=1e10),
    stamp=st.one_of(st.just("06/Dec/2026 21:37:11"), st.text(max_size=20)),
    extra_words=WORD_LISTS,
)
def test_c_line_agrees_with_python(environ, status, sent, duration, now, stamp, extra_words):
    """What the C side writes is default_line()'s line, masking of secrets included."""
    from django_scgi import logtext as environ_module
    from django_scgi.server import accesslog

    environ_module.set_secret_words(extra_words)
    try:
        found = c_access_line(stamp, now, environ, status, sent, duration,
                              environ_module._secret_words)
        if found is not None:
            assert found == accesslog.default_line(stamp, now, environ, status, sent, duration)
    finally:
        environ_module.set_secret_words(())


@needs_c
def test_c_line_leaves_secrets_to_the_python_mask():
    from django_scgi import logtext as environ_module
    from django_scgi.server import accesslog

    words = environ_module._secret_words
    for uri in ("/p?token=t0p", "/p?a=1&X-Auth=1", "/login?PassWord=x"):
        environ = {**TYPICAL_ENVIRON, "REQUEST_URI": uri}
        args = ("06/Dec/2026 21:37:11", 0.5, environ, "200 OK", 1, 0.001)
        assert c_access_line(*args, words) is None
        assert "********" in accesslog.default_line(*args)
    environ = {**TYPICAL_ENVIRON, "REQUEST_URI": "/p?a=1&b=2"}
    assert c_access_line("06/Dec/2026 21:37:11", 0.5, environ, "200 OK", 1, 0.001,
                         words) is not None


@needs_c
def test_c_line_takes_the_usual_requests():
    from django_scgi.server import accesslog

    for environ in (TYPICAL_ENVIRON, {**TYPICAL_ENVIRON, "REMOTE_ADDR": "::ffff:10.0.0.1"},
                    {k: v for k, v in TYPICAL_ENVIRON.items() if k != "REMOTE_ADDR"}):
        args = ("06/Dec/2026 21:37:11", 1765056000.25, environ, "302 Found", 1234, 0.0125)
        line = c_access_line(*args, DEFAULT_SECRET_WORDS)
        assert line is not None
        assert line == accesslog.default_line(*args)


@needs_c
def test_c_seconds_are_pythons_near_every_tie():
    """The C side writes most durations itself: the thousandths right at and around
    x.xxx5, where rounding is decided, are Python's "%.3f" too."""
    environ = TYPICAL_ENVIRON
    for n in range(0, 4_000_000, 997):
        for duration in (n / 2000, n / 2000 + 1e-12, n / 2000 - 1e-12, n / 1e4, n * 0.25):
            line = c_access_line("06/Dec/2026 21:37:11", 0.5, environ, "200 OK", 1, duration,
                                 DEFAULT_SECRET_WORDS)
            assert line.rsplit(" ", 1)[1] == f"{duration:.3f}\n", duration


def test_logging_configured_anew_while_serving_is_followed(start_server, helper_env):
    """The default output checks after each batch that it still applies: once a batch
    after the change is written, the lines are records for the new configuration."""
    server = start_server("127.0.0.1:0", "--settings", "crash_settings", env=helper_env)
    assert client.request(server.address, "/json-logging/").status == 200
    # Its own line was formatted before the check: the default output's.
    (line,) = wait_for_stamped(server, 0, 1)
    assert '"GET /json-logging/ HTTP/1.1" 200' in line
    client.request(server.address, "/?n=1")
    deadline = time.monotonic() + 10
    while not (found := [x for x in server.lines if x.startswith("json ")]):
        assert time.monotonic() < deadline, server.output
        time.sleep(0.05)
    assert json.loads(found[0][len("json "):])["request_uri"] == "/?n=1"
    assert len(stamped_lines(server)) == 1


@pytest.mark.parametrize("status", ["200 OK", "101 Switching", "304 Not Modified", "302 Found",
                                    "404 Not Found", "403 Forbidden", "500 Error", None])
def test_coloured_line_is_what_djangos_formatter_writes_on_a_terminal(status):
    """On a terminal Django's formatter colours the message by status; so does the
    default output (it takes the formatter's own style)."""
    from django.core.management.color import color_style, no_style
    from django.utils.log import ServerFormatter

    from django_scgi.server import accesslog

    formatter = ServerFormatter("[{server_time}] {message}", style="{")
    formatter.style = color_style(force_color=True)
    assert not accesslog._plain(formatter.style) and accesslog._plain(no_style())
    now, environ = 1765056000.25, TYPICAL_ENVIRON
    args = (accesslog._remote(environ), accesslog.request_line(environ),
            accesslog.status_code(status), 191, 0.0125)
    record = logging.LogRecord("django.server", logging.INFO, __file__, 0,
                               accesslog.MESSAGE, args, None)
    # Set the record's time directly: Python 3.13's LogRecord reads time.time_ns(), so
    # patching time.time() no longer reaches it.
    record.created, record.msecs = now, (now - int(now)) * 1000
    record.status_code = args[2]
    stamp = time.strftime(accesslog.DJANGO_TIME_FORMAT, time.localtime(now))
    line = accesslog.coloured_line(formatter.style, stamp, now, environ, status, 191, 0.0125)
    assert line == formatter.format(record) + "\n"
    assert ("\x1b[" in line) == bool(args[2])
