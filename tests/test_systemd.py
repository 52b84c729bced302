"""systemd socket activation and sd_notify, with the test playing systemd's part.

The test creates the listening sockets and a NOTIFY_SOCKET datagram socket, and starts a
small stand-in that does what systemd does between fork and exec: move the sockets to
descriptors 3, 4, …, set LISTEN_FDS / LISTEN_PID (its own PID, kept by exec) /
LISTEN_FDNAMES, and exec ``manage.py runscgi``. The units shown in docs/production.rst
are checked with ``systemd-analyze verify`` and their ``ExecStart`` options are the ones
run. Where ``systemd-socket-activate`` is installed, systemd's own tool plays the part too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from helpers import BANNER_PREFIX, REPO

from django_scgi import client, systemd

pytestmark = pytest.mark.timeout(60)

PRODUCTION = REPO / "docs" / "production.rst"

# What systemd does in the child between fork() and exec(): the sockets become
# descriptors 3, 4, … (moved out of the way first, in case one already is 3 or 4) and
# LISTEN_PID is the PID that exec keeps.
STANDIN = """
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for index, fd in enumerate(high):
    os.dup2(fd, 3 + index)
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


# --- the units in the docs --------------------------------------------------------------------


def doc_unit(name: str) -> str:
    """The ini block that follows ``/etc/systemd/system/<name>`` in docs/production.rst."""
    lines = PRODUCTION.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if f"/etc/systemd/system/{name}``" in line)
    start = next(i for i in range(start, len(lines)) if lines[i].startswith(".. code-block:: ini"))
    block = []
    for line in lines[start + 1:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip("\n") + "\n"


def unit_values(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def doc_runscgi_args() -> list[str]:
    (exec_start,) = unit_values(doc_unit("myapp.service"), "ExecStart")
    words = exec_start.split()
    return words[words.index("runscgi") + 1:]


def test_doc_units_say_what_the_docs_promise():
    sock, service = doc_unit("myapp.socket"), doc_unit("myapp.service")
    assert len(unit_values(sock, "ListenStream")) == 2
    assert unit_values(service, "Type") == ["notify"]
    assert unit_values(service, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values(service, "KillMode") == ["mixed"]
    args = doc_runscgi_args()
    assert "--workers" in args
    assert not [arg for arg in args if not arg.startswith("-") and not arg.isdigit()], (
        "the sockets come from the .socket unit: no address in ExecStart"
    )


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_doc_units_pass_systemd_analyze_verify(tmp_path):
    service = doc_unit("myapp.service")
    # verify checks that ExecStart's program exists: point it at this interpreter.
    (exec_start,) = unit_values(service, "ExecStart")
    service = service.replace(exec_start, sys.executable + " " + exec_start.split(" ", 1)[1])
    (tmp_path / "myapp.socket").write_text(doc_unit("myapp.socket"))
    (tmp_path / "myapp.service").write_text(service)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "myapp.socket", "myapp.service"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # not even an unknown key


# --- the library functions ----------------------------------------------------------------------


def test_listen_fds_only_for_this_pid_and_unsets_the_variables(monkeypatch):
    monkeypatch.setenv("LISTEN_FDS", "2")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDNAMES", "web:admin")
    assert systemd.listen_fds() == [(3, "web"), (4, "admin")]
    assert not any(name in os.environ for name in systemd.LISTEN_VARIABLES)

    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))  # meant for another process
    assert systemd.listen_fds() == []
    assert "LISTEN_FDS" not in os.environ

    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    assert systemd.listen_fds() == [(3, "unknown")]  # no names given


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_sends_one_datagram(monkeypatch, short_tmp, abstract):
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"scgi-test-{uuid.uuid4().hex}"
        receiver.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    else:
        path = str(short_tmp / "notify")
        receiver.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
    receiver.settimeout(5)
    with receiver:
        assert systemd.ready("Serving")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=Serving"
        assert systemd.stopping()
        assert receiver.recv(4096) == b"STOPPING=1"


def test_notify_without_notify_socket_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_notify_never_raises_when_nobody_listens(monkeypatch, short_tmp):
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_tmp / "nobody"))
    assert systemd.notify("READY=1") is False


# --- playing systemd --------------------------------------------------------------------------


class Activated:
    """``runscgi`` started the way systemd starts a socket-activated ``Type=notify`` unit."""

    def __init__(self, sockets: list[socket.socket], args: list[str], env: dict[str, str],
                 notify_address: str | bytes) -> None:
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_address)
        self.notify.settimeout(30)
        fds = [sock.fileno() for sock in sockets]
        command = [sys.executable, "-c", STANDIN, ",".join(map(str, fds)),
                   sys.executable, "manage.py", "runscgi", *args]
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=env, pass_fds=fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.output and time.monotonic() < deadline:
            time.sleep(0.05)
        return text in self.output

    def next_notification(self) -> dict[str, str]:
        try:
            data = self.notify.recv(4096).decode()
        except TimeoutError:
            raise AssertionError("no notification within 30s:\n" + self.output) from None
        return dict(line.split("=", 1) for line in data.splitlines())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self.proc.stdout.close()
        self.notify.close()


@pytest.fixture
def activate(server_env, short_tmp):
    started: list[Activated] = []

    def start(sockets, *args: str, env: dict[str, str] | None = None,
              notify_address: str | bytes | None = None) -> Activated:
        address = notify_address or str(short_tmp / "notify")
        value = address if isinstance(address, str) else "@" + address[1:].decode()
        unit = Activated(sockets, list(args), {**server_env, "NOTIFY_SOCKET": value,
                                               **(env or {})}, address)
        started.append(unit)
        return unit

    yield start
    for unit in started:
        unit.stop()


def listening_tcp() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def listening_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    sock.listen(128)
    return sock


def test_the_documented_units_played_by_the_test(activate, short_tmp):
    """myapp.socket's two sockets, myapp.service's ExecStart options; reload; stop."""
    path = short_tmp / "scgi.sock"
    unix, tcp = listening_unix(path), listening_tcp()
    port = tcp.getsockname()[1]
    args = doc_runscgi_args()
    args[args.index("--workers") + 1] = "2"  # the docs say 4; two prove the same here
    (name,) = unit_values(doc_unit("myapp.socket"), "FileDescriptorName")
    with unix, tcp:
        unit = activate([unix, tcp], *args, env={"LISTEN_FDNAMES": f"{name}:{name}"})

        ready = unit.next_notification()
        assert ready["READY"] == "1", ready
        assert "with 2 process(es)" in ready["STATUS"]
        # Ready means serving, on both sockets, at once.
        assert client.request(f"unix:{path}", "/").status == 200
        assert client.request(f"127.0.0.1:{port}", "/").status == 200
        assert unit.wait_for_output(f"{BANNER_PREFIX}fd:3, fd:4")
        assert "Using the socket(s) passed by systemd: fd:3 (scgi), fd:4 (scgi)." in unit.output
        assert "2 workers ready" in unit.output
        supervisor = psutil.Process(unit.proc.pid)
        assert len(supervisor.children()) == 2

        # systemctl reload: ExecReload sends SIGHUP.
        unit.proc.send_signal(signal.SIGHUP)
        assert unit.next_notification()["RELOADING"] == "1"
        assert unit.next_notification()["READY"] == "1"
        # Logged before READY=1 was sent; the pipe to this test may lag the datagram.
        assert unit.wait_for_output("Reload finished"), unit.output

        # systemctl stop with KillMode=mixed: SIGTERM to the main process.
        unit.proc.send_signal(signal.SIGTERM)
        assert unit.next_notification() == {"STOPPING": "1"}
        assert unit.proc.wait(15) == 0, unit.output
        assert unit.wait_for_output("Stopped.")
        # The socket file is systemd's: still there, and still listening.
        assert path.exists()
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(str(path))
        probe.close()


def test_single_process_with_an_abstract_notify_socket(activate):
    tcp = listening_tcp()
    port = tcp.getsockname()[1]
    with tcp:
        unit = activate([tcp], notify_address=f"\0scgi-test-{uuid.uuid4().hex}".encode())
        assert unit.next_notification()["READY"] == "1"
        assert client.request(f"127.0.0.1:{port}", "/").status == 200
        # A single process ignores SIGHUP (and says so) instead of dying of it.
        unit.proc.send_signal(signal.SIGHUP)
        assert unit.wait_for_output("SIGHUP ignored")
        assert client.request(f"127.0.0.1:{port}", "/").status == 200
        unit.proc.send_signal(signal.SIGTERM)
        assert unit.next_notification() == {"STOPPING": "1"}
        assert unit.proc.wait(15) == 0, unit.output


def test_command_line_address_wins_over_passed_sockets(activate):
    passed, other = listening_tcp(), listening_tcp()
    other_port = other.getsockname()[1]
    other.close()  # free the port for runscgi to bind (loopback, a moment's race at most)
    with passed:
        unit = activate([passed], f"127.0.0.1:{other_port}")
        assert unit.next_notification()["READY"] == "1"
        assert unit.wait_for_output(f"{BANNER_PREFIX}127.0.0.1:{other_port}")
        assert "Not using the socket(s) [3] passed by systemd" in unit.output
        assert client.request(f"127.0.0.1:{other_port}", "/").status == 200


def test_variables_meant_for_another_process_are_ignored(start_server, short_tmp):
    path = short_tmp / "own.sock"
    server = start_server(f"unix:{path}", env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    assert server.addresses == [f"unix:{path}"]
    assert "passed by systemd" not in server.output


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="systemd-socket-activate is not installed")
def test_systemd_socket_activate_starts_it_on_the_first_connection(server_env, short_tmp):
    """systemd's own tool: it listens, and execs runscgi when a connection arrives.

    The first request is sent before runscgi even exists; it waits in the backlog of
    the socket systemd made and is answered once the server starts.
    """
    path = short_tmp / "activated.sock"
    notify_path = short_tmp / "notify"
    keep = ["DJANGO_SETTINGS_MODULE", "DJANGO_DB_PATH", "PYTHONUNBUFFERED", "PATH", "HOME"]
    command = ["systemd-socket-activate", "-l", str(path), "--fdname=scgi",
               *(f"-E{name}" for name in keep if name in server_env),
               f"-ENOTIFY_SOCKET={notify_path}",
               sys.executable, "manage.py", "runscgi"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        proc = subprocess.Popen(command, cwd=REPO, env=server_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not path.exists():
                assert time.monotonic() < deadline and proc.poll() is None, "no socket"
                time.sleep(0.05)
            response = client.request(f"unix:{path}", "/", timeout=30)
            assert response.status == 200
            assert notify.recv(4096).startswith(b"READY=1")
            proc.send_signal(signal.SIGTERM)
            assert notify.recv(4096) == b"STOPPING=1"
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            out = proc.communicate(timeout=10)[0].decode()
    assert re.search(r"Using the socket\(s\) passed by systemd: fd:3 \(scgi\)", out), out


# --- a socket handed over without systemd's variables ---------------------------------------


def test_fd_option_serves_an_inherited_socket(serve_inherited_socket):
    """``--fd N``: a launcher (or the SCGI auto-launch convention) owns the socket."""
    serve_inherited_socket(lambda fd: ["--fd", str(fd), "--workers", "2"])


def test_fd_option_with_a_bad_value_is_one_sentence(run_manage):
    result = run_manage("--fd", "three")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode != 0
    assert lines == ["CommandError: address: fd:three is not a file descriptor number."]
