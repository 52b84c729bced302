"""``runscgi --workers N``: a supervisor and its worker processes, for real.

Every test drives a real ``manage.py runscgi --workers 2`` of the demo project (or of a
throw-away copy that the test edits) and looks at its processes with psutil. Load loops
are plain threads with blocking sockets, bounded in time and in count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time

import psutil
import pytest
from helpers import copy_project, set_version

from django_scgi import client, workers

pytestmark = pytest.mark.timeout(60)


# --- helpers -----------------------------------------------------------------------------------


def live_children(pid: int) -> set[int]:
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return set()
    return {child.pid for child in children if _alive(child)}


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def pid_alive(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def wait_for(condition, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{message} not met within {timeout}s")


def workers_of(server, count: int = 2, timeout: float = 20.0) -> set[int]:
    """The supervisor's ``count`` live worker PIDs, once every one of them listens."""
    def ready():
        pids = live_children(server.pid)
        listening = {int(line.rsplit("(pid ", 1)[1].rstrip(").")) for line in server.lines
                     if "Listening on" in line and line.endswith(").")}
        return pids if len(pids) == count and pids <= listening else None

    return wait_for(ready, timeout, f"{count} listening workers")


def version_of(address: str) -> tuple[str, int]:
    """``("v1", pid)`` from the copy's ``/version/`` view."""
    response = client.request(address, "/version/", timeout=10)
    assert response.status == 200, response.body
    version, pid = response.body.decode().split()
    return version, int(pid)


class Load:
    """``threads`` threads sending requests back to back until ``stop()``.

    Bounded: each thread stops after ``max_seconds`` or ``max_requests`` requests.
    Records every outcome with the time it finished.
    """

    def __init__(self, address: str, path: str = "/version/", threads: int = 3,
                 max_seconds: float = 40.0, max_requests: int = 20000) -> None:
        self.address, self.path = address, path
        self.results: list[tuple[float, str | None, str]] = []  # (time, body, error)
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._max = max_requests
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        for _ in range(self._max):
            if self._stop.is_set() or time.monotonic() > self._deadline:
                return
            try:
                response = client.request(self.address, self.path, timeout=15)
                if response.status == 200:
                    self.results.append((time.monotonic(), response.body.decode(), ""))
                else:
                    self.results.append((time.monotonic(), None, f"status {response.status}"))
            except Exception as error:
                self.results.append((time.monotonic(), None, repr(error)))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)

    @property
    def failures(self) -> list[str]:
        return [error for _, body, error in self.results if body is None]

    def bodies_after(self, moment: float) -> list[str]:
        return [body for when, body, _ in self.results if when > moment and body]


# --- pure parts -------------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped():
    delays = [workers.backoff_delay(n) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == workers.BACKOFF_MAX
    assert delays == sorted(delays)


def test_backoff_stays_capped_after_any_number_of_deaths():
    # 2 ** 1024 seconds overflowed a float: the slot's restart greenlet died with it.
    assert workers.backoff_delay(1025) == workers.BACKOFF_MAX
    assert workers.backoff_delay(10**6) == workers.BACKOFF_MAX


def test_requests_limit_adds_jitter():
    rng = random.Random(7)
    limits = {workers.requests_limit(100, 10, rng) for _ in range(200)}
    assert limits <= set(range(100, 111)) and len(limits) > 5
    assert workers.requests_limit(0, 10) == 0
    assert workers.requests_limit(50, 0) == 50


def test_handoff_round_trip_and_removal_from_environ():
    handoff = workers.Handoff(1, 7, (3, 4))
    environ = {workers.WORKER_ENV: handoff.encode(), "OTHER": "x"}
    assert workers.handoff_from_environ(environ) == handoff
    assert environ == {"OTHER": "x"}
    assert workers.handoff_from_environ(environ) is None


def test_describe_exit():
    assert workers.describe_exit(0) == "exited with status 0"
    assert workers.describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"


# --- serving ---------------------------------------------------------------------------------


def test_workers_share_the_listeners_and_are_patched_early(start_server, short_tmp, tmp_path):
    path = short_tmp / "s.sock"
    server = start_server("127.0.0.1:0", f"unix:{path}", "--workers", "2")
    tcp, unix = server.addresses
    assert server.wait_for_output("2 worker processes; SIGHUP replaces them one at a time.")
    pids = workers_of(server)
    assert server.pid not in pids

    reports = []
    for address in (tcp, unix) * 10:
        response = client.request(address, "/db/?sleep=0")
        assert response.status == 200, response.body
        reports.append(json.loads(response.body))
    assert {report["pid"] for report in reports} <= pids
    # Each worker is a fresh interpreter that went through the launcher: gevent's
    # local holds Django's connections, one per greenlet.
    assert all(report["local_class"].startswith("gevent") for report in reports)
    # The supervisor never opened the database: nothing to leak into a worker.
    db_path = str(tmp_path / "db.sqlite3")
    supervisor_files = {f.path for f in psutil.Process(server.pid).open_files()}
    assert db_path not in supervisor_files


def test_sigterm_drains_every_worker_and_leaves_no_orphans(start_server, short_tmp):
    path = short_tmp / "s.sock"
    server = start_server("127.0.0.1:0", f"unix:{path}", "--workers", "2")
    tcp, unix = server.addresses
    pids = workers_of(server)

    results: list[client.Response | Exception] = []

    def slow(address: str) -> None:
        try:
            results.append(client.request(address, "/sleep/?s=1.5", timeout=15))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=slow, args=(address,)) for address in (tcp, unix) * 3]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all six are inside the view now
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)

    # New connections are refused soon: the unix file goes at once, TCP once every
    # worker has closed its copy of the listener.
    wait_for(lambda: not path.exists(), 2, "unix socket file removed")

    host, port = tcp.rsplit(":", 1)

    def refused() -> bool:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, 3, "TCP refused")
    for thread in threads:
        thread.join(15)
    assert [getattr(r, "status", r) for r in results] == [200] * 6
    assert server.wait(15) == 0, server.output
    assert time.monotonic() - signalled < 6
    assert "Stopped." in server.lines
    assert "Traceback" not in server.output
    for pid in pids:
        wait_for(lambda pid=pid: not pid_alive(pid), 5, f"worker {pid} gone")


def test_dead_worker_is_replaced_with_backoff(start_server):
    server = start_server("127.0.0.1:0", "--workers", "2")
    first = workers_of(server)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), 5, "killed worker gone")
    second = workers_of(server)
    assert victim not in second and len(second - first) == 1
    assert f"(pid {victim}) was killed by SIGKILL; starting a new one in 0.5s." in server.output
    assert client.request(server.address, "/").status == 200

    # The same slot dies again at once: the delay doubles.
    (replacement,) = second - first
    os.kill(replacement, signal.SIGKILL)
    wait_for(lambda: not pid_alive(replacement), 5, "killed worker gone")
    third = workers_of(server)
    assert replacement not in third
    expected = f"(pid {replacement}) was killed by SIGKILL; starting a new one in 1.0s."
    assert expected in server.output
    assert client.request(server.address, "/").status == 200


def test_workers_stop_when_the_supervisor_is_killed(start_server):
    server = start_server("127.0.0.1:0", "--workers", "2")
    pids = workers_of(server)
    os.kill(server.pid, signal.SIGKILL)
    for pid in pids:
        wait_for(lambda pid=pid: not pid_alive(pid), 10, f"worker {pid} gone")
    assert server.wait_for_output("the supervisor is gone; stopping.")


def test_a_worker_that_cannot_start_stops_the_supervisor(project_copy, run_manage):
    # Only workers import the WSGI application: the supervisor starts, its checks pass,
    # and the first worker fails.
    wsgi = project_copy / "testproject" / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + '\nraise RuntimeError("broken on purpose")\n')
    result = run_manage("127.0.0.1:0", "--workers", "2", cwd=project_copy, timeout=40)
    assert result.returncode == 1, result.stdout
    assert "RuntimeError: broken on purpose" in result.stdout
    last = [line for line in result.stdout.splitlines() if line.strip()][-1]
    assert last.startswith("CommandError: Worker "), last
    assert "exited with status 1 before it was ready; its output above says why." in last


# --- reloading and recycling -------------------------------------------------------------------


def test_sighup_reloads_fresh_code_without_a_failed_request(project_copy, start_server):
    server = start_server("127.0.0.1:0", "--workers", "2", cwd=project_copy)
    old = workers_of(server)
    assert version_of(server.address)[0] == "v1"

    load = Load(server.address, threads=3)
    try:
        time.sleep(0.5)
        set_version(project_copy, "v2")
        server.signal(signal.SIGHUP)
        wait_for(lambda: "Reload finished" in server.output, 40, "reload finished")
        finished = time.monotonic()
        time.sleep(0.5)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert len(load.results) > 50
    new = workers_of(server)
    assert not new & old
    after = load.bodies_after(finished + 0.1)
    assert after and all(body.startswith("v2 ") for body in after), after[:5]
    assert {int(body.split()[1]) for body in after} <= new
    bodies = [body for _, body, _ in load.results]
    assert any(body.startswith("v1 ") for body in bodies)  # the load ran across the reload


def test_reload_with_broken_code_keeps_the_old_workers(project_copy, start_server):
    server = start_server("127.0.0.1:0", "--workers", "2", cwd=project_copy)
    old = workers_of(server)
    views = project_copy / "testproject" / "views.py"
    views.write_text(views.read_text() + "\ndef broken(:\n")
    server.signal(signal.SIGHUP)
    wait_for(lambda: "Reload abandoned" in server.output, 40, "reload abandoned")
    assert "keeps serving" in server.output
    assert live_children(server.pid) == old
    for _ in range(6):
        version, pid = version_of(server.address)
        assert version == "v1" and pid in old


def test_reload_follows_a_switched_release_symlink(tmp_path, start_server):
    """The usual deploy: releases/N, a ``current`` symlink switched, then SIGHUP."""
    first = copy_project(tmp_path / "releases" / "1")
    second = copy_project(tmp_path / "releases" / "2")
    set_version(second, "v2")
    current = tmp_path / "current"
    current.symlink_to(first)
    server = start_server("127.0.0.1:0", "--workers", "2", cwd=current,
                          env={"PWD": str(current)})
    old = workers_of(server)
    assert version_of(server.address)[0] == "v1"

    switch = tmp_path / "current.new"
    switch.symlink_to(second)
    switch.replace(current)  # rename(2): atomic, as deploy tools do it
    server.signal(signal.SIGHUP)
    wait_for(lambda: "Reload finished" in server.output, 40, "reload finished")
    # "Reload finished" comes once the last old worker is told to stop: until it has
    # read that, it may still accept a connection from the shared listener.
    wait_for(lambda: not live_children(server.pid) & old, 40, "the old workers' exit")
    assert {version_of(server.address)[0] for _ in range(6)} == {"v2"}


def test_max_requests_recycles_workers_without_a_failed_request(start_server):
    server = start_server("127.0.0.1:0", "--workers", "2", "--max-requests", "15",
                          "--max-requests-jitter", "5")
    first = workers_of(server)
    seen, failures = set(), []
    deadline = time.monotonic() + 30
    # Paced so the successors (about a second to start) come up while requests go on.
    for _ in range(400):
        if time.monotonic() > deadline or len(seen - first) >= 2:
            break
        try:
            response = client.request(server.address, "/db/?sleep=0", timeout=10)
            assert response.status == 200
            seen.add(json.loads(response.body)["pid"])
        except Exception as error:
            failures.append(repr(error))
        time.sleep(0.02)
    assert failures == []
    assert len(seen - first) >= 2, server.output
    assert "requests: asking for a successor." in server.output
    # Recycled workers were told to stop, not killed.
    assert "was killed" not in server.output
    assert len(workers_of(server)) == 2
