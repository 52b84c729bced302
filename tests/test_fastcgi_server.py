"""``runscgi --protocol fastcgi`` as a real process, driven by django_scgi.fastcgi_client.

What a front-end relies on (responses, bodies, streaming, KEEP_CONN, GET_VALUES, the
protocol's refusals) and what a hostile or broken peer must not be able to do (wedge
a slot, grow memory, stop the server from serving others), plus shutdown with idle
and busy kept-alive connections. Every wait is bounded; no timing is asserted beyond
generous bounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
from conftest import REPO

from django_scgi import fastcgi
from django_scgi.client import build_environ
from django_scgi.fastcgi_client import ClientError, Connection, request

pytestmark = pytest.mark.timeout(120)


def fcgi_server(start_server, *args: str):
    return start_server("--protocol", "fastcgi", *args)


@pytest.fixture
def server(start_server):
    return fcgi_server(start_server, "127.0.0.1:0")


def environ(path: str, method: str = "GET", body: bytes = b"") -> dict[str, str]:
    cgi = build_environ(path, method)
    cgi["CONTENT_LENGTH"] = str(len(body))
    return cgi


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def served(address: str) -> bool:
    """The server still answers a fresh connection."""
    return request(address, "/").body == b"Hello from django-scgi\n"


# --- what front-ends rely on ------------------------------------------------------------


def test_get_post_head_and_errors(server):
    with Connection(server.address) as conn:
        hello = conn.request("/")
        assert (hello.status, hello.body) == (200, b"Hello from django-scgi\n")
        assert hello.header("Content-Type") == "text/plain"
        echo = conn.request("/echo/", method="POST", body=b"hello world",
                            headers={"Content-Type": "text/plain"})
        assert echo.body == b"hello world"
        head = conn.request("/", method="HEAD")
        assert (head.status, head.body) == (200, b"")
        assert conn.request("/error/").status == 500
        assert conn.request("/nowhere/").status == 404
    assert "Serving FastCGI on" in server.output


def test_file_response_goes_out_in_stdout_records(server):
    sample = (REPO / "testproject" / "files" / "sample.txt").read_bytes()
    with Connection(server.address) as conn:
        reply = conn.request("/file/")
        assert (reply.status, reply.body) == (200, sample)
        assert conn.request("/").status == 200  # still in step after the file


def test_keep_conn_serves_many_requests_on_one_connection_and_closes_without_it(server):
    with Connection(server.address) as conn:
        for index in range(20):
            reply = conn.request(f"/info/{index}")
            assert json.loads(reply.body)["path"] == f"/info/{index}"
        assert not conn.closed_by_server
        conn.request("/", keep_conn=False)
        assert read_until_closed(conn.sock) == b""  # closed after END_REQUEST


def test_large_upload_is_read_lazily_and_whole(server):
    body = os.urandom(3 * 1024 * 1024 + 17)
    with Connection(server.address, timeout=60) as conn:
        reply = conn.request("/upload/", method="POST", body=body)
        assert json.loads(reply.body) == {"bytes": len(body),
                                          "sha256": hashlib.sha256(body).hexdigest()}
        assert conn.request("/").status == 200  # the connection is still in step


def test_request_body_of_megabytes_in_one_read(server):
    # Django's request.body reads it all at once (one buffer, filled as records come).
    body = os.urandom(2 * 1024 * 1024 + 5)
    with Connection(server.address, timeout=60) as conn:
        reply = conn.request("/echo/", method="POST", body=body,
                             headers={"Content-Type": "application/octet-stream"})
    assert reply.body == body


def test_body_without_content_length_is_what_stdin_carries(server):
    cgi = environ("/upload/", "POST")
    del cgi["CONTENT_LENGTH"]
    with Connection(server.address) as conn:
        conn.begin(1, cgi)
        conn.send_body(1, b"a" * 1000)
        conn.send_body(1, b"b" * 500, end=True)
        exchange = conn.read_exchange(1)
    assert json.loads(exchange.stdout.split(b"\r\n\r\n", 1)[1])["bytes"] == 1500


@pytest.mark.parametrize("measured", [True, False], ids=["content-length", "unmeasured"])
def test_a_late_body_on_a_kept_connection_is_read_whole(server, measured):
    # The kept connection's read watcher runs from the wait for a request on; the
    # request's own reads of a body that comes late (measured by the server ahead of
    # the view, or read by the view) wait on the same socket and must get every byte.
    with Connection(server.address) as conn:
        assert conn.request("/").status == 200
        cgi = environ("/upload/", "POST", b"x" * 1500)
        if not measured:
            del cgi["CONTENT_LENGTH"]
        conn.begin(1, cgi)
        for part in (b"a" * 1000, b"b" * 500):
            time.sleep(0.2)  # the server waits for the body meanwhile
            conn.send_body(1, part)
        conn.send_body(1, b"", end=True)
        exchange = conn.read_exchange(1)
        assert json.loads(exchange.stdout.split(b"\r\n\r\n", 1)[1])["bytes"] == 1500
        assert conn.request("/").status == 200  # still in step
        assert not conn.closed_by_server


def test_large_response_in_records_of_at_most_65535_bytes(server):
    with Connection(server.address, timeout=60) as conn:
        conn.begin(1, environ("/big/?mb=2"))
        conn.send_body(1, b"", end=True)
        sizes = []
        while True:
            event = conn._wait_for(lambda e: getattr(e, "request_id", None) == 1)
            if isinstance(event, fastcgi.EndRequest):
                break
            sizes.append(len(event.data))
    assert max(sizes) <= 65535
    assert sum(sizes) > 2 * 1024 * 1024


def test_streaming_chunks_arrive_as_produced(server):
    with Connection(server.address) as conn:
        conn.begin(1, environ("/stream/?n=2&delay=3"))
        conn.send_body(1, b"", end=True)
        first = conn.read_first_stdout(1)
        received_at = time.time()
        assert b"Status: 200" in first and b"chunk 0 at" in first
        made_at = float(first.rsplit(b" at ", 1)[1])
        # The first chunk came before the view slept 3 s for the second one.
        assert received_at - made_at < 2.5
        rest = conn.read_exchange(1)
    assert b"chunk 1 at" in rest.stdout


def test_wsgi_errors_go_to_stderr_records_and_the_log(server):
    reply = request(server.address, "/wsgi-errors/")
    assert reply.body == b"logged\n"
    assert reply.stderr == b"testproject: a line for wsgi.errors\n"
    assert server.wait_for_output("a line for wsgi.errors")


def test_get_values_and_unknown_management_records(server):
    with Connection(server.address) as conn:
        assert conn.get_values(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS",
                                "NOT_A_VALUE"]) == {
            "FCGI_MAX_CONNS": "1000", "FCGI_MAX_REQS": "1000", "FCGI_MPXS_CONNS": "0"}
        conn.send(fastcgi.encode_record(42, 0, b"x"))
        event = conn._wait_for(lambda e: isinstance(e, fastcgi.UnknownTypeReply))
        assert event == fastcgi.UnknownTypeReply(42)
        assert conn.request("/").status == 200


def test_unknown_role_is_refused_and_the_connection_closed(server):
    with Connection(server.address) as conn:
        conn.begin(1, environ("/"), keep_conn=False, role=fastcgi.Role.FILTER)
        exchange = conn.read_exchange(1)
        assert exchange.end.protocol_status == fastcgi.ProtocolStatus.UNKNOWN_ROLE
        assert read_until_closed(conn.sock) == b""


def test_authorizer_role_reaches_the_view(server):
    with Connection(server.address) as conn:
        reply = conn.request("/info/", role=fastcgi.Role.AUTHORIZER)
    assert reply.status == 200


def test_second_request_at_once_gets_cant_mpx_conn_and_the_first_completes(server):
    with Connection(server.address) as conn:
        conn.begin(1, environ("/sleep/?s=2"))
        conn.send_body(1, b"", end=True)
        time.sleep(0.5)  # the view runs
        conn.begin(2, environ("/"))
        conn.send_body(2, b"", end=True)
        second = conn.read_exchange(2)
        assert second.end.protocol_status == fastcgi.ProtocolStatus.CANT_MPX_CONN
        first = conn.read_exchange(1)
        assert first.end.protocol_status == fastcgi.ProtocolStatus.REQUEST_COMPLETE
        assert first.stdout.endswith(b"slept\n")


def test_body_over_the_limit_is_413_and_the_connection_stays_usable(start_server):
    server = fcgi_server(start_server, "127.0.0.1:0", "--max-body-size", "1000")
    with Connection(server.address) as conn:
        assert conn.request("/upload/", method="POST", body=b"x" * 5000).status == 413
        assert conn.request("/upload/", method="POST", body=b"x" * 10).status == 200


def test_unix_socket(start_server, short_tmp):
    server = fcgi_server(start_server, f"unix:{short_tmp}/fcgi.sock")
    with Connection(server.address) as conn:
        assert conn.request("/").status == 200
        assert conn.request("/").status == 200


def test_runfcgi_is_runscgi_with_fastcgi(start_server):
    server = start_server("127.0.0.1:0", command=[sys.executable, "manage.py", "runfcgi"])
    assert "Serving FastCGI on" in server.output
    assert served(server.address)


def test_worker_processes_serve_fastcgi(start_server):
    server = fcgi_server(start_server, "127.0.0.1:0", "--workers", "2")
    pids = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        with Connection(server.address) as conn:  # a new connection may reach either
            for _ in range(3):
                pids.add(json.loads(conn.request("/db/?sleep=0").body)["pid"])
    assert len(pids) == 2


def test_max_requests_counts_requests_not_kept_alive_connections(start_server):
    # One kept connection carries every request: counted per connection, the worker
    # would never reach 5 and never be replaced.
    server = fcgi_server(start_server, "127.0.0.1:0", "--workers", "2", "--max-requests", "5")
    conn = Connection(server.address)
    first_pid = json.loads(conn.request("/db/?sleep=0").body)["pid"]
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline:
            try:
                conn.request("/db/?sleep=0")
            except ClientError:  # the replaced worker closed our kept connection
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker serving the kept connection was never replaced")
    finally:
        conn.close()
    assert server.wait_for_output("requests: asking for a successor.")
    assert server.wait_for_output(f"(pid {first_pid}) stopping", timeout=20)


def test_listening_socket_on_fd_0_is_used(server_env):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runfcgi"], cwd=REPO, env=server_env,
            stdin=listener.fileno(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while "Serving FastCGI on" not in (line := proc.stdout.readline()):
            assert line and time.monotonic() < deadline, "no banner"
        assert line.strip() == "Serving FastCGI on fd:0"
        assert served(f"127.0.0.1:{port}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


# --- aborts and peers that go away free the slot ------------------------------------------


def stats(address: str) -> dict:
    return json.loads(request(address, "/stats/").body)


def test_abort_request_interrupts_the_view_and_keeps_the_connection(start_server):
    server = fcgi_server(start_server, "127.0.0.1:0")
    before = stats(server.address)
    with Connection(server.address) as conn:
        conn.begin(1, environ("/sleep/?s=60"))
        conn.send_body(1, b"", end=True)
        time.sleep(0.5)  # the view is sleeping
        started = time.monotonic()
        conn.abort(1)
        exchange = conn.read_exchange(1)
        assert time.monotonic() - started < 10  # not the 60 s of the view
        assert exchange.end.protocol_status == fastcgi.ProtocolStatus.REQUEST_COMPLETE
        assert conn.request("/").status == 200  # KEEP_CONN: the same connection serves on
    after = stats(server.address)
    # The aborted request's close() ran (request_finished) and the stats request counts
    # itself as started only.
    assert after["request_finished"] - before["request_finished"] >= 2


def test_abort_is_seen_while_a_view_that_reads_no_body_runs(server):
    # The head comes first and the view starts; the rest of the body and the abort come
    # while it sleeps without reading them: the watch takes the body and sees the abort.
    with Connection(server.address) as conn:
        conn.begin(1, {**environ("/sleep/?s=60", "POST"), "CONTENT_LENGTH": "100"})
        time.sleep(0.5)  # the view is sleeping
        conn.send_body(1, b"x" * 100, end=True)
        conn.abort(1)
        started = time.monotonic()
        exchange = conn.read_exchange(1)
        assert time.monotonic() - started < 10  # not the 60 s of the view
        assert exchange.end is not None
        assert conn.request("/").status == 200


@pytest.mark.parametrize("how", ["close", "abort-without-keep-conn"])
def test_the_slot_of_an_abandoned_request_is_freed_at_once(start_server, how):
    server = fcgi_server(start_server, "127.0.0.1:0", "--max-connections", "1")
    conn = Connection(server.address)
    conn.begin(1, environ("/sleep/?s=60"), keep_conn=False)
    conn.send_body(1, b"", end=True)
    time.sleep(0.5)
    if how == "close":
        conn.close()
    else:
        conn.abort(1)
    # With one slot, this is served only once the sleeping request has let go of it.
    assert request(server.address, "/", timeout=15).status == 200
    conn.close()


def test_idle_kept_connections_give_their_slots_to_new_ones(start_server):
    # Two slots, both held by kept connections waiting for a next request: a third
    # connection is served once they have waited a while, not after keepalive_timeout.
    server = fcgi_server(start_server, "127.0.0.1:0", "--max-connections", "2")
    kept = [Connection(server.address) for _ in range(2)]
    try:
        for conn in kept:
            assert conn.request("/").status == 200
        started = time.monotonic()
        assert request(server.address, "/", timeout=30).status == 200
        assert time.monotonic() - started < 20  # keepalive_timeout is 120 s
    finally:
        for conn in kept:
            conn.close()


# --- hostile input ------------------------------------------------------------------------

BEGIN = fastcgi.encode_begin_request(1)
HOSTILE = {
    "bad-version": b"\x02" + BEGIN[1:],
    # Fixed bytes, not os.urandom(): a random first byte of 1 (FastCGI's version) made
    # a plausible record header that waits for its content, 1 run in a few hundred.
    "garbage": b"\x7f" + bytes(range(3, 66)) + b"\xff" * 8,
    "truncated-record": BEGIN + fastcgi.encode_params(1, {"A": "b"})[:11],
    "2gib-name": BEGIN + fastcgi.encode_record(
        fastcgi.RecordType.PARAMS, 1, struct.pack("!I", 0xFFFFFFFF) + b"\x01abc"),
    "2gib-value": BEGIN + fastcgi.encode_record(
        fastcgi.RecordType.PARAMS, 1, b"\x01" + struct.pack("!I", 0xFFFFFFFF) + b"a"),
    "too-many-params": BEGIN + fastcgi.encode_params(1, [(f"N{i}", "") for i in range(1200)]),
    "scgi": b"70:CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00,",
    "stdout-from-peer": BEGIN + fastcgi.encode_record(fastcgi.RecordType.STDOUT, 1, b"x"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_closes_that_connection_and_the_server_serves_on(server, name):
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(HOSTILE[name])
        if name == "truncated-record":
            sock.shutdown(socket.SHUT_WR)
        assert b"Status:" not in read_until_closed(sock)
    assert served(server.address)


def test_http_on_the_port_gets_an_http_answer_that_says_why(server):
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert b"An HTTP request arrived on the FastCGI port" in answer
    assert server.wait_for_output("An HTTP request arrived on the FastCGI port")
    assert served(server.address)


def test_slowloris_and_idle_keep_alive_connections_are_closed(start_server):
    server = fcgi_server(start_server, "127.0.0.1:0", "--header-timeout", "1",
                         "--keepalive-timeout", "1")
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as slow:
        started = time.monotonic()
        data = BEGIN + fastcgi.encode_params(1, environ("/"))
        try:
            for byte in data:  # one byte every 0.3 s: never a whole head within 1 s
                slow.sendall(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            pass
        assert read_until_closed(slow) == b""
        assert time.monotonic() - started < 10
    with Connection(server.address) as conn:
        assert conn.request("/").status == 200
        assert read_until_closed(conn.sock, timeout=15) == b""  # idle for over 1 s
    assert served(server.address)


def test_hostile_connections_do_not_grow_memory(server):
    psutil = pytest.importorskip("psutil")
    host, port = server.address.rsplit(":", 1)
    process = psutil.Process(server.pid)

    def assault(rounds: int) -> None:
        for index in range(rounds):
            payload = list(HOSTILE.values())[index % len(HOSTILE)]
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                try:
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)
                    read_until_closed(sock)
                except OSError:
                    pass

    assault(100)  # warm up caches and allocators
    before = process.memory_info().rss
    assault(400)
    grown = process.memory_info().rss - before
    assert grown < 8 * 1024 * 1024, f"RSS grew by {grown} bytes"
    assert served(server.address)


# --- shutdown -------------------------------------------------------------------------------


def test_sigterm_closes_idle_keep_alive_connections_at_once(start_server):
    server = fcgi_server(start_server, "127.0.0.1:0", "--graceful-timeout", "30")
    connections = [Connection(server.address) for _ in range(3)]
    for conn in connections:
        assert conn.request("/").status == 200  # now idle, kept alive
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0
    assert time.monotonic() - started < 10  # not the 30 s graceful timeout
    for conn in connections:
        assert read_until_closed(conn.sock) == b""
        conn.close()


def test_sigterm_finishes_a_request_in_flight_then_closes_its_connection(start_server):
    server = fcgi_server(start_server, "127.0.0.1:0")
    with Connection(server.address, timeout=30) as conn:
        conn.begin(1, environ("/sleep/?s=2"))
        conn.send_body(1, b"", end=True)
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        exchange = conn.read_exchange(1)
        assert exchange.end is not None and exchange.stdout.endswith(b"slept\n")
        assert read_until_closed(conn.sock) == b""  # KEEP_CONN, but the server stops
    assert server.wait(20) == 0


# --- python -m django_scgi.fastcgi_client -------------------------------------------------


def run_client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "django_scgi.fastcgi_client", *args],
                          cwd=REPO, capture_output=True, timeout=60, check=False)


def test_client_command_exit_codes(server):
    ok = run_client(server.address, "/")
    assert ok.returncode == 0 and ok.stdout.startswith(b"Status: 200 OK\n")
    assert ok.stdout.endswith(b"\nHello from django-scgi\n")
    posted = run_client(server.address, "/echo/", "-d", "a=1")
    assert posted.returncode == 0 and posted.stdout.endswith(b"\na=1")
    assert run_client(server.address, "/error/", "-q").returncode == 1
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    unreachable = run_client(f"127.0.0.1:{port}", "/", "--timeout", "5")
    assert unreachable.returncode == 2 and b"error:" in unreachable.stderr


@pytest.mark.parametrize("sent", ["", None])
def test_a_get_without_a_measured_body_says_content_length_0(server, sent):
    # nginx sends CONTENT_LENGTH "" on a GET and Apache none; the server has the whole
    # (empty) STDIN stream by then, so it says "0", as SCGI always does, and Django's
    # int() of it raises nothing.
    cgi = environ("/info/")
    if sent is None:
        del cgi["CONTENT_LENGTH"]
    else:
        cgi["CONTENT_LENGTH"] = sent
    with Connection(server.address) as conn:
        conn.begin(1, cgi)
        conn.send_body(1, b"", end=True)
        exchange = conn.read_exchange(1)
    assert json.loads(exchange.stdout.split(b"\r\n\r\n", 1)[1])["content_length"] == "0"


def test_fastcgi_body_sets_every_slot_of_the_body_it_extends():
    # FastCGIBody sets BodyInput's slots itself (its __init__ is on the hot path): a slot
    # added to BodyInput must be set there too, or reading it raises AttributeError.
    from django_scgi.conf import resolve
    from django_scgi.server.body import BodyInput
    from django_scgi.server.fcgi_body import FastCGIBody
    from django_scgi.server.fcgi_channel import Channel

    channel = Channel(None, resolve({}, settings=None), "test")  # no I/O: a socket unused
    body = FastCGIBody(channel, 5.0, 0)
    for cls in BodyInput.__mro__:
        for name in getattr(cls, "__slots__", ()):
            getattr(body, name)  # raises when unset


def test_fastcgi_exchange_sets_every_slot_of_the_exchange_it_extends():
    # FastCGIExchange sets Exchange's slots itself (its __init__ is on the hot path): a
    # slot added to Exchange must be set there too, or reading it raises AttributeError.
    import types

    from django_scgi.conf import resolve
    from django_scgi.environ import make_base_environ
    from django_scgi.server.exchange import Exchange
    from django_scgi.server.fcgi_channel import Channel
    from django_scgi.server.fcgi_exchange import FastCGIExchange

    config = resolve({}, settings=None)
    conn = fastcgi.ServerConnection()
    conn.receive_data(fastcgi.encode_begin_request(1, fastcgi.Role.RESPONDER, True)
                      + fastcgi.encode_params(1, environ("/"))
                      + fastcgi.encode_record(fastcgi.RecordType.STDIN, 1))
    head = conn.next_event()
    assert isinstance(head, fastcgi.RequestHead)
    channel = Channel(None, config, "test")  # no I/O: the body came whole with the head
    server = types.SimpleNamespace(config=config, idle_sockets=set(),
                                   base_environ=make_base_environ(errors=sys.stderr))
    exchange = FastCGIExchange(channel, head, None, server)
    for cls in Exchange.__mro__:
        for name in getattr(cls, "__slots__", ()):
            getattr(exchange, name)  # raises when unset
