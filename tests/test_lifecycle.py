"""A ``runscgi`` process from start to exit: listeners, unix socket files, signals, bind errors.

Every test drives a real ``manage.py runscgi`` subprocess of the demo project, on
loopback or a unix socket in a short temp dir.
"""

from __future__ import annotations

import errno
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO
from netcheck import needs_ipv6_loopback

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)


# --- helpers -------------------------------------------------------------------------------


def raw_connect(address: str, timeout: float = 2.0) -> socket.socket:
    """Connect to ``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``; OSError as the kernel said."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = address[5:]
    else:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        target = (host, int(port))
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


class InFlight:
    """A request sent on its own connection whose response is read later."""

    def __init__(self, address: str, path: str) -> None:
        self.sock = raw_connect(address)
        self.sock.sendall(encode_request(client.build_environ(path), b""))
        self.finished_at: float | None = None

    def read(self, timeout: float = 15.0) -> bytes:
        """Everything until the server closes (or resets) the connection."""
        chunks, deadline = [], time.monotonic() + timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            else:
                raise AssertionError(f"connection still open after {timeout}s")
        except ConnectionResetError:
            pass
        finally:
            self.finished_at = time.monotonic()
            self.sock.close()
        return b"".join(chunks)

    def response(self, timeout: float = 15.0) -> client.Response:
        return client.parse_response(self.read(timeout))


def wait_refused(address: str, timeout: float = 2.0) -> OSError:
    """Connect until the server refuses; return the refusal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            raw_connect(address, 0.5).close()
        except (ConnectionRefusedError, FileNotFoundError) as refusal:
            return refusal
        time.sleep(0.02)
    raise AssertionError(f"{address} still accepts connections {timeout}s after the signal")


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("CommandError: "), lines[0]
    assert lines[0].endswith("."), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --- listeners and the banner ------------------------------------------------------------------


def test_banner_names_every_address(start_server, short_tmp):
    path = short_tmp / "s.sock"
    server = start_server("127.0.0.1:0", f"unix:{path}")
    assert len(server.addresses) == 2
    tcp, unix = server.addresses
    assert tcp.startswith("127.0.0.1:") and int(tcp.rsplit(":", 1)[1]) > 0
    assert unix == f"unix:{path}"
    for address in server.addresses:
        assert client.request(address, "/").body == b"Hello from django-scgi\n"


@needs_ipv6_loopback
def test_ipv6_listener(start_server):
    server = start_server("[::1]:0")
    assert server.address.startswith("[::1]:")
    response = client.request(server.address, "/info/")
    assert response.status == 200


def test_default_address_is_used_without_arguments(run_manage):
    # Nothing given: 127.0.0.1:4000 (busy or not, the message names it).
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            blocker.bind(("127.0.0.1", 4000))
        except OSError:
            pytest.skip("127.0.0.1:4000 is taken by another process")
        blocker.listen()
        result = run_manage()
    assert_one_sentence_error(result, "127.0.0.1:4000 is already in use by another process.")


def test_inherited_listening_socket(serve_inherited_socket):
    """``fd:N``: a socket bound by a parent (systemd, a supervisor) survives the relaunch."""
    serve_inherited_socket(lambda fd: [f"fd:{fd}"])


def test_fd_that_is_not_open(run_manage):
    result = run_manage("fd:987")
    assert_one_sentence_error(result, "File descriptor 987 is not a usable socket.")


# --- graceful stop ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_in_flight_request_and_refuses_new_ones(start_server, short_tmp, signum):
    path = short_tmp / "s.sock"
    server = start_server("127.0.0.1:0", f"unix:{path}")
    tcp, unix = server.addresses
    in_flight = InFlight(tcp, "/sleep/?s=2")
    in_flight_unix = InFlight(unix, "/sleep/?s=2")
    time.sleep(0.5)  # both are inside the view now

    server.signal(signum)
    signalled = time.monotonic()
    assert isinstance(wait_refused(tcp), ConnectionRefusedError)
    assert isinstance(wait_refused(unix), FileNotFoundError)
    refused = time.monotonic()
    assert refused - signalled < 1.0

    response = in_flight.response()
    assert (response.status, response.body) == (200, b"slept\n")
    assert in_flight_unix.response().status == 200
    assert in_flight.finished_at > refused  # refused while the request was still running

    assert server.wait(10) == 0, server.output
    assert "Stopped." in server.lines
    assert "Traceback" not in server.output
    assert f"{signal.Signals(signum).name} received" in server.output
    assert not path.exists()


def test_idle_server_stops_at_once(start_server, short_tmp):
    path = short_tmp / "s.sock"
    server = start_server(f"unix:{path}")
    assert path.exists()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert time.monotonic() - started < 2.0
    assert server.lines[-1] == "Stopped."
    assert not path.exists()


def test_graceful_timeout_cancels_requests_still_running(start_server):
    server = start_server("127.0.0.1:0", "--graceful-timeout", "1")
    in_flight = InFlight(server.address, "/sleep/?s=10")
    time.sleep(0.5)
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0, server.output
    took = time.monotonic() - signalled
    # 1 s of grace, the cancellation, then the interpreter's exit (about 0.5 s).
    assert 0.9 < took < 3.5, f"stopped {took:.2f}s after SIGTERM"
    # The cancelled request's connection is closed without a response.
    assert in_flight.read(timeout=2) == b""
    assert "Cancelling 1 request(s) still running after 1.0s." in server.output
    assert "Stopped." in server.lines


def test_second_signal_exits_at_once(start_server, short_tmp):
    path = short_tmp / "s.sock"
    server = start_server("127.0.0.1:0", f"unix:{path}")
    in_flight = InFlight(server.address, "/sleep/?s=10")
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    assert server.wait_for_output("SIGTERM received")
    second = time.monotonic()
    server.signal(signal.SIGTERM)
    code = server.wait(5)
    assert time.monotonic() - second < 2.0
    # Exit status 1 (an error exit, not a signal death): the drain was cut short.
    assert code == 1, server.output
    assert "Second SIGTERM: exiting at once." in server.output
    assert "Stopped." not in server.lines
    assert not path.exists()
    assert in_flight.read(timeout=2) == b""


# --- unix sockets ---------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "mode"), [((), 0o660), (("--socket-mode", "600"), 0o600),
                                            (("--socket-mode", "0o666"), 0o666)])
def test_socket_mode(start_server, short_tmp, args, mode):
    path = short_tmp / "s.sock"
    start_server(f"unix:{path}", *args)
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == mode


def test_socket_mode_ignores_umask(start_server, short_tmp):
    # bind() creates the file through the umask; the chmod afterwards must still win.
    path = short_tmp / "s.sock"
    command = ["sh", "-c", 'umask 077 && exec "$0" manage.py runscgi "$@"', sys.executable]
    start_server(f"unix:{path}", command=command)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660


def test_stale_socket_file_is_replaced(start_server, short_tmp):
    path = short_tmp / "s.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # the file stays behind after close, like after a crash
    assert stat.S_IMODE(os.stat(path).st_mode) != 0o660  # made through the umask
    server = start_server(f"unix:{path}")
    assert client.request(server.address, "/").status == 200
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660  # ours now


def test_live_listener_at_the_path_is_left_alone(run_manage, short_tmp):
    path = short_tmp / "s.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        result = run_manage(f"unix:{path}")
        assert_one_sentence_error(result, f"Another server is listening on {path}; leaving it "
                                          "alone.")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        # The other server still gets its connections.
        with raw_connect(f"unix:{path}"):
            other.settimeout(2)
            conn, _ = other.accept()
            conn.close()


def test_live_runscgi_at_the_path_is_left_alone(start_server, run_manage, short_tmp):
    path = short_tmp / "s.sock"
    first = start_server(f"unix:{path}")
    inode = os.stat(path).st_ino
    result = run_manage(f"unix:{path}")
    assert_one_sentence_error(result, f"Another server is listening on {path}")
    assert os.stat(path).st_ino == inode
    assert client.request(first.address, "/").status == 200


def test_regular_file_at_the_path_is_not_touched(run_manage, short_tmp):
    path = short_tmp / "s.sock"
    path.write_text("precious\n")
    result = run_manage(f"unix:{path}")
    assert_one_sentence_error(result, f"{path} exists and is not a socket; not touching it.")
    assert path.read_text() == "precious\n"


def test_missing_directory(run_manage, short_tmp):
    path = short_tmp / "no" / "s.sock"
    result = run_manage(f"unix:{path}")
    assert_one_sentence_error(result, f"The directory for unix:{path} does not exist.")


def test_failed_second_address_releases_the_first(run_manage, short_tmp):
    path = short_tmp / "s.sock"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_manage(f"unix:{path}", f"127.0.0.1:{port}")
    assert_one_sentence_error(result, f"127.0.0.1:{port} is already in use by another process.")
    assert not path.exists()


# --- bind errors --------------------------------------------------------------------------------


def test_port_in_use(run_manage):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_manage(f"127.0.0.1:{port}")
    assert_one_sentence_error(result, f"127.0.0.1:{port} is already in use by another process.")


@pytest.mark.parametrize(("address", "fragment"), [
    ("999.1.1.1:4000", "'999.1.1.1' in '999.1.1.1:4000' is not a valid IP address."),
    ("notanaddress", "'notanaddress' is not an address: write PORT, HOST:PORT"),
    ("127.0.0.1:70000", "has no valid port"),
])
def test_bad_address(run_manage, address, fragment):
    assert_one_sentence_error(run_manage(address), fragment)


def test_address_not_on_this_machine(run_manage):
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned, so bind() gets
    # EADDRNOTAVAIL. Nothing is ever sent to it.
    result = run_manage("192.0.2.1:4000")
    assert_one_sentence_error(result, "192.0.2.1:4000 is not an address of this machine.")


def _lowest_unprivileged_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def _nobody_can_run_the_project() -> bool:
    try:
        pwd.getpwnam("nobody")
        check = subprocess.run(
            [sys.executable, "-c", "import django, gevent, django_scgi, testproject.settings"],
            cwd=REPO, user="nobody", check=False, capture_output=True, timeout=30,
        )
    except (KeyError, OSError, subprocess.SubprocessError):
        return False
    return check.returncode == 0


def _can_drop_bind_capability() -> bool:
    import shutil

    if not shutil.which("setpriv"):
        return False
    check = subprocess.run(
        ["setpriv", "--bounding-set", "-net_bind_service", sys.executable, "-c",
         "import socket; s = socket.socket(); s.bind(('127.0.0.1', 80))"],
        check=False, capture_output=True, text=True, timeout=30,
    )
    return "PermissionError" in check.stderr


def test_permission_denied(run_manage):
    """A port below 1024 without the right to bind it: EACCES, one sentence."""
    port = 80
    if _lowest_unprivileged_port() <= port:
        pytest.skip("net.ipv4.ip_unprivileged_port_start lets everyone bind port 80")
    base = [sys.executable, "manage.py", "runscgi"]
    popen: dict[str, object] = {}
    if os.geteuid() == 0:
        if _nobody_can_run_the_project():
            popen["user"] = "nobody"
        elif _can_drop_bind_capability():
            # root without CAP_NET_BIND_SERVICE in its bounding set: the kernel answers
            # EACCES exactly as for an unprivileged user (nobody cannot read this Python).
            base = ["setpriv", "--bounding-set", "-net_bind_service", *base]
        else:
            pytest.skip("running as root; nobody cannot run this Python and setpriv is missing")
    result = run_manage(f"127.0.0.1:{port}", command=base, **popen)
    assert_one_sentence_error(result, f"Permission denied to listen on 127.0.0.1:{port}")


def test_bind_error_table_covers_the_usual_errnos():
    from django_scgi.conf import TCPAddress
    from django_scgi.management.commands.runscgi import BIND_ERRORS, bind_error_sentence

    for number in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL, errno.ENOENT):
        assert number in BIND_ERRORS
    address = TCPAddress("127.0.0.1", 1)
    other = bind_error_sentence(address, OSError(errno.EMFILE, "Too many open files"))
    assert other == "Cannot listen on 127.0.0.1:1: Too many open files."
