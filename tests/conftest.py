"""Shared fixtures: real ``runscgi`` processes of the demo project.

Servers bind port 0 (or a unix socket in a temp dir) and the fixture reads the real
addresses from the start-up banner. Every process started here is stopped by PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import BANNER_PREFIX, REPO, ServerProcess, copy_project


@pytest.fixture
def server_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SCGI_BIND", None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DJANGO_DB_PATH": str(tmp_path / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def start_server(server_env, tmp_path):
    """``start_server(*args, env=…, wait=True)`` → a started ``ServerProcess``."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True,
              cwd: Path = REPO, command: list[str] | None = None) -> ServerProcess:
        merged = {**server_env, **(env or {})}
        server = ServerProcess(list(args), merged, cwd, command)
        started.append(server)
        return server.wait_started() if wait else server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server):
    """One runscgi on 127.0.0.1 with an OS-chosen port."""
    return start_server("127.0.0.1:0")


@pytest.fixture
def short_tmp():
    """A short temp dir for unix sockets (sun_path is limited to 107 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="scgi-", dir="/tmp") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory):
    """``start_server`` for a whole test module: each server starts once per module.

    For modules whose tests only send requests (starting runscgi takes about a second);
    tests that look at the output use ``server.lines[mark:]`` from before their request.
    """
    env = dict(os.environ)
    env.pop("SCGI_BIND", None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DJANGO_DB_PATH": str(tmp_path_factory.mktemp("db") / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    })
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(list(args), env, REPO, None)
        started.append(server)
        return server.wait_started()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def module_short_tmp():
    """``short_tmp`` for a whole test module."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="scgi-", dir="/tmp") as path:
        yield Path(path)


@pytest.fixture
def run_manage(server_env):
    """``run_manage(*args, env=…, command=…, timeout=20)`` → a finished ``CompletedProcess``.

    For command lines that end by themselves (errors, ``--help``, ``check``): stdout and
    stderr together in ``.stdout`` as text. A process still running at ``timeout`` is
    killed by PID and the test fails.
    """

    def run(*args: str, env: dict[str, str] | None = None, command: list[str] | None = None,
            cwd: Path = REPO, timeout: float = 20.0,
            **popen: object) -> subprocess.CompletedProcess:
        base = command or [sys.executable, "manage.py", "runscgi"]
        with subprocess.Popen(
            [*base, *args], cwd=cwd, env={**server_env, **(env or {})}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **popen,
        ) as proc:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                pytest.fail(f"{base + list(args)} still running after {timeout}s:\n{out}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, None)

    return run


# --- real front-ends (tests/frontends.py, tests/test_frontends.py) ----------------------

# Start of the skip reason of a test whose front-end (or its tool) is not installed.
FRONT_END_MISSING = "FRONT-END MISSING"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the error logs of the front-ends the test used."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        diagnostics = getattr(value, "frontend_diagnostics", None)
        if callable(diagnostics):
            for title, text in diagnostics():
                report.sections.append((title, text))


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter):
    """A banner no one can miss when a front-end was not tested because it is missing."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = _skip_reason(report)
        if FRONT_END_MISSING in reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    if not reasons:
        return
    terminalreporter.write_sep("!", "FRONT-ENDS NOT TESTED", red=True, bold=True)
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"{reason}  ({count} tests skipped)", red=True, bold=True)
    terminalreporter.write_sep("!", "these front-ends are NOT proven by this run", red=True,
                               bold=True)


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """A throw-away copy of the demo project; start it with ``start_server(cwd=…)``."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def serve_inherited_socket(server_env):
    """``serve_inherited_socket(make_args)``: runscgi given a listening TCP socket it inherits.

    ``make_args(fd)`` returns the runscgi arguments naming the descriptor. Asserts that
    the banner names ``fd:N``, that the socket serves, and that SIGTERM exits 0.
    """
    from django_scgi import client

    def run(make_args) -> None:
        with socket.socket() as inherited:
            inherited.bind(("127.0.0.1", 0))
            inherited.listen(128)
            port, fd = inherited.getsockname()[1], inherited.fileno()
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "runscgi", *make_args(fd)], cwd=REPO,
                env=server_env, pass_fds=[fd], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        try:
            deadline, banner = time.monotonic() + 30, ""
            while not banner.startswith(BANNER_PREFIX):
                assert time.monotonic() < deadline, "no banner"
                banner = proc.stdout.readline()
                assert banner, "runscgi exited before its banner"
            assert banner.strip() == f"{BANNER_PREFIX}fd:{fd}"
            # Our copy is closed: only the server's copy of the socket is left to accept.
            assert client.request(f"127.0.0.1:{port}", "/").status == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            proc.stdout.close()

    return run


# --- a real PostgreSQL (tests/postgres.py, tests/test_database*.py) ---------------------


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster for the whole session (small max_connections), or a skip."""
    from postgres import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.remove()
