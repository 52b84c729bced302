"""Follow-up accepts: under load a worker takes the next waiting connection itself.

A worker greenlet that has finished a connection accepts the next one from the same
listener without going back to the event loop (``Acceptor.follow_up``), which spares a
loop pass and two greenlet switches per request. Four properties, on a real server
process (``follow_up_server.py``) whose app reports the loop pass that served it:

- a full backlog is served in a few loop passes, not one pass per connection;
- slow requests are not chained: the loop (here, a due timer) runs between them;
- nor are any while another connection is in progress: it may be waiting for the loop;
- one connection at a time, a failed accept() is not paid on every request.

And while it takes follow-ups, it may hold the connections it has finished open, to
close several together (``Workers.close``): the front-end wakes once for all of them.
The server records each batch it closes (``/log``); the tests check that it holds:

- with a deep backlog of quick requests, in batches of at most ``close_batch``;
- never slow requests, nor with a shallow backlog, nor with ``close_batch`` 1;
- never while the worker waits: a held connection is closed when the loop runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@pytest.fixture
def follow_up_server(request):
    """(address, go): the server has its listener open; ``go()`` lets it start serving.

    Parametrized indirectly, the parameter is the server's ``close_batch``.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    extra = [str(request.param)] if hasattr(request, "param") else []
    proc = subprocess.Popen([sys.executable, str(HERE / "follow_up_server.py"), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("ADDRESS "), line

        def go() -> None:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()

        yield line.split()[1], go
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def queue(address: str, path: str, count: int) -> list:
    """``count`` connections, each with a whole request sent: they wait in the backlog."""
    socks = []
    for _ in range(count):
        sock = client.connect(address, 10)
        sock.sendall(encode_request(client.build_environ(path)))
        socks.append(sock)
    return socks


def body_of(sock) -> bytes:
    chunks = []
    with sock:
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = client.parse_response(b"".join(chunks))
    assert response.status == 200
    return response.body


def server_log(address: str) -> dict:
    return json.loads(client.request(address, "/log", timeout=10).body)


def test_a_full_backlog_is_served_in_a_few_loop_passes(follow_up_server):
    address, go = follow_up_server
    socks = queue(address, "/pass", 24)
    go()
    passes = [int(body_of(sock)) for sock in socks]
    # One pass per connection without follow-ups; about one with them (the 2 ms budget
    # leaves room for a slow machine).
    assert len(set(passes)) <= 8, passes


def test_slow_requests_let_the_loop_run_between_them(follow_up_server):
    address, go = follow_up_server
    socks = queue(address, "/burn", 5)  # 30 ms of CPU each, far over the budget
    go()  # also starts a timer that is due 1 ms later
    for sock in socks:
        body_of(sock)
    served = server_log(address)["served"]
    assert served.count("/burn") == 5
    # Chained, the five would run before the loop could fire the timer.
    assert served.index("timer") <= 2, served


def test_no_follow_up_while_another_connection_is_in_progress(follow_up_server):
    address, go = follow_up_server
    waiting = queue(address, "/wait", 1)[0]  # asleep in its worker until the loop wakes it
    socks = queue(address, "/pass", 12)
    go()
    passes = [int(body_of(sock)) for sock in socks]
    assert len(set(passes)) == 12, passes  # one loop pass each, as without follow-ups
    body_of(waiting)


def accepts_one_at_a_time(follow_up_server, count: int) -> int:
    """accept() calls the server made for ``count`` sequential /pass requests and the
    second /log (``count + 1`` connections, plus one per failed follow-up attempt)."""
    address, go = follow_up_server
    go()
    before = server_log(address)["accepts"]
    for _ in range(count):
        assert client.request(address, "/pass", timeout=10).status == 200
    return server_log(address)["accepts"] - before


def test_one_at_a_time_a_failed_accept_is_not_paid_per_request(follow_up_server):
    accepts = accepts_one_at_a_time(follow_up_server, 16)
    # 17 connections; each failed attempt to follow up (found the backlog empty) is
    # followed by a cool-down of 7 connections.
    assert 17 <= accepts <= 17 + 3, accepts


def test_a_server_gone_quiet_soon_stops_trying_to_follow_up(follow_up_server):
    accepts = accepts_one_at_a_time(follow_up_server, 200)
    # 201 connections; the cool-down after each failed attempt grows fourfold (7, 31,
    # 127, ...): four failures in 200, where doubling it would pay five or more.
    assert 201 <= accepts <= 201 + 4, accepts


# --- closing finished connections together ---------------------------------------------


def closed_in_batches(follow_up_server, path: str, count: int) -> list[int]:
    """Queue ``count`` requests for ``path``, let the server serve them, read each
    response whole; the sizes of the batches of held connections the server closed."""
    address, go = follow_up_server
    socks = queue(address, path, count)
    go()
    for sock in socks:
        body_of(sock)  # each response whole, its status 200
    return server_log(address)["flushed"]


def test_a_deep_backlog_of_quick_requests_is_closed_in_batches(follow_up_server):
    flushed = closed_in_batches(follow_up_server, "/pass", 40)
    # Without holding, each connection is closed on its own and nothing is recorded.
    # Held, up to 7 wait for the 8th (the default close_batch), which is closed with
    # them; a slow machine may stretch a request past the 1 ms limit and close early.
    assert flushed and max(flushed) >= 2, flushed
    assert max(flushed) <= 7, flushed


def test_slow_requests_are_not_held(follow_up_server):
    # 30 ms of CPU each, far over the 1 ms limit: held, a response would wait for the
    # next request's 30 ms as well.
    assert closed_in_batches(follow_up_server, "/burn", 5) == []


def test_a_shallow_backlog_is_not_held(follow_up_server):
    # Holding the first while the second is served would leave the front-end with no
    # request in flight behind them: at two at a time they would be served in turns.
    assert closed_in_batches(follow_up_server, "/pass", 2) == []


@pytest.mark.parametrize("follow_up_server", [1], indirect=True)
def test_close_batch_1_closes_each_connection_at_once(follow_up_server):
    assert closed_in_batches(follow_up_server, "/pass", 40) == []


def test_a_held_connection_is_closed_when_the_worker_waits(follow_up_server):
    address, go = follow_up_server
    first, napping = queue(address, "/pass", 1) + queue(address, "/nap", 1)
    behind = queue(address, "/pass", 10)  # a deep backlog: the first may be held
    go()
    started = time.monotonic()
    body_of(first)
    took = time.monotonic() - started
    # Held until the worker's next request ended, it would take the 2 s of the nap.
    assert took < 1.0, f"the first response took {took:.2f} s"
    for sock in [napping, *behind]:
        body_of(sock)
    assert server_log(address)["flushed"][:1] == [1]
