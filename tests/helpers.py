"""One home for what several test modules need: the repository's path, a ``runscgi``
process, raw SCGI exchanges, health checks, a fresh ``startproject``. Fixtures live in
conftest.py; test modules import helpers from here, never from each other."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from django_scgi import client
from django_scgi.protocol import encode_request

REPO = Path(__file__).resolve().parent.parent
BANNER_PREFIX = "Serving SCGI on "
BANNER_PREFIXES = (BANNER_PREFIX, "Serving FastCGI on ")  # runscgi --protocol fastcgi


class ServerProcess:
    """A ``manage.py runscgi`` subprocess and everything it printed."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, command: list[str] | None):
        self.args = args
        base = command or [sys.executable, "manage.py", "runscgi"]
        self.proc = subprocess.Popen(
            [*base, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self._banner = threading.Event()
        self.addresses: list[str] = []
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_output(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            for prefix in BANNER_PREFIXES:
                if line.startswith(prefix):
                    self.addresses = line[len(prefix):].split(", ")
                    self._banner.set()
        self._banner.set()

    def wait_started(self, timeout: float = 30.0) -> ServerProcess:
        if not self._banner.wait(timeout) or not self.addresses:
            self.stop()
            raise AssertionError("runscgi did not start:\n" + self.output)
        return self

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait(timeout)

    def wait_for_output(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            time.sleep(0.05)
        return False


# --- a copy of the demo project a test may edit (workers, reload, systemd tests) -------------

# Appended to the copy's views.py / urls.py: a view whose answer names its code version
# and process, so a test sees which code and which worker answered.
VERSION_VIEW = '''

def version(request):
    return HttpResponse(f"v1 {os.getpid()}\\n", content_type="text/plain")
'''
VERSION_URL = '''
urlpatterns.append(path("version/", views.version, name="version"))
'''


def copy_project(target: Path) -> Path:
    """``manage.py`` and ``testproject/`` copied to ``target``, with a ``/version/`` view."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "manage.py", target / "manage.py")
    shutil.copytree(REPO / "testproject", target / "testproject",
                    ignore=shutil.ignore_patterns("__pycache__"))
    views = target / "testproject" / "views.py"
    views.write_text(views.read_text() + VERSION_VIEW)
    urls = target / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + VERSION_URL)
    return target


def set_version(project: Path, version: str) -> None:
    """Make the copy's ``/version/`` view answer ``version`` (e.g. "v2")."""
    views = project / "testproject" / "views.py"
    text = views.read_text()
    start = text.index('f"v', text.index("def version"))
    end = text.index(" ", start)
    # The trailing comment changes the file's size too: a .pyc written in the same
    # second as the old source would otherwise pass Python's mtime+size check.
    views.write_text(text[:start] + f'f"{version}' + text[end:] + f"# {version}\n")



# --- raw SCGI -----------------------------------------------------------------------------

HELLO = b"Hello from django-scgi\n"  # the demo's "/"


def netstring(block: bytes, end: bytes = b",") -> bytes:
    """``block`` framed as a netstring, as given (``end`` other than "," to break it)."""
    return b"%d:%b%b" % (len(block), block, end)


def read_to_end(sock: socket.socket) -> bytes:
    """Every byte the peer sends until it closes."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(address: str, data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes to a runscgi address (host:port or a unix path); all bytes until close."""
    with client.connect(address, timeout) as sock:
        sock.sendall(data)
        return read_to_end(sock)


def assert_healthy(address: str, timeout: float = 5.0) -> None:
    """The server still answers the demo's "/" in full."""
    response = client.request(address, "/", timeout=timeout)
    assert (response.status, response.body) == (200, HELLO)


def segments_received(sock: socket.socket) -> int:
    """TCP segments ``sock`` has received (Linux ``TCP_INFO``)."""
    # struct tcp_info (linux/tcp.h): tcpi_segs_in is the u32 at offset 140 (Linux 4.2+).
    return int(struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256),
                                  140)[0])


# --- hostile and slow peers (issue 20: timeouts, rates, memory) ----------------------------

MiB = 1024 * 1024


def request(path: str, method: str = "GET", body: bytes = b"") -> bytes:
    return encode_request(client.build_environ(path, method), body)


def claiming_head(path: str, content_length: int, method: str = "POST",
                  extra: dict[str, str] | None = None) -> bytes:
    """A request head that declares ``content_length`` body bytes (none are included)."""
    environ = client.build_environ(path, method, extra={
        "CONTENT_TYPE": "application/octet-stream", **(extra or {})})
    pairs = [("CONTENT_LENGTH", str(content_length)), ("SCGI", "1"), *environ.items()]
    block = b"".join(f"{name}\0{value}\0".encode("latin-1") for name, value in pairs)
    return b"%d:%b," % (len(block), block)


def read_until_close(sock, timeout: float = 10.0) -> tuple[bytes, float]:
    """(everything received, monotonic time the server closed or reset the connection)."""
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(256 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise AssertionError(f"the connection was still open after {timeout}s")
    except ConnectionResetError:
        pass
    return b"".join(chunks), time.monotonic()



def lines_with(server, text: str, start: int, timeout: float = 5.0) -> list[str]:
    """The log lines since ``start`` containing ``text`` (waiting for the first one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in server.lines[start:] if text in line]
        if found:
            time.sleep(0.1)  # a duplicate would follow at once
            return [line for line in server.lines[start:] if text in line]
        time.sleep(0.05)
    return []


def local_port(sock) -> str:
    return f"127.0.0.1:{sock.getsockname()[1]}"


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


class PeakRSS:
    """Samples a process's RSS in a thread until the ``with`` block ends."""

    # 2 ms: a 256 MiB transfer at 4+ GiB/s lasts about 60 ms, and the assertions want
    # more than 10 samples inside it.
    def __init__(self, pid: int, interval: float = 0.002) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def connect_from(address: str, source: str, timeout: float = 10.0):
    """A TCP connection to ``address`` ("HOST:PORT") from the local address ``source``
    (any 127.x.y.z works on Linux's loopback): another peer address to the server."""
    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout, source_address=(source, 0))


def closed_by_server(sock, wait: float) -> bool:
    """Whether the server closed or reset ``sock`` within ``wait`` seconds (data that
    arrives meanwhile is read and dropped)."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def trickle(sock, data: bytes, interval: float, limit: float) -> float | None:
    """Send ``data`` one byte per ``interval``; seconds until the server closed the
    connection, or None if it still had not after ``limit`` seconds."""
    started = time.monotonic()
    for index in range(len(data)):
        try:
            sock.sendall(data[index:index + 1])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        if closed_by_server(sock, interval):
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            return None

# --- a fresh ``django-admin startproject`` with django_scgi added: what a Django user has ---
#
# The demo project (testproject) has no admin or sessions; the traps of issue 22 (CSRF
# behind nginx on a port, static URLs at a sub-path, static files with DEBUG on) only show
# in a project as startproject makes it. FreshProject makes one in a directory with a
# given Python (the test venv's, or a venv a wheel was installed in), migrates it, creates
# a superuser and starts ``manage.py runscgi`` in it.

ADMIN_USER = "admin"
ADMIN_PASSWORD = "fresh-project-password-1"
PACKAGE_NAME = "mysite"
# Appended to the generated settings.py: the one line the install docs ask for.
SETTINGS_TAIL = """
INSTALLED_APPS += ["django_scgi"]
"""


def bin_dir(python: str | Path = sys.executable) -> Path:
    """The directory of ``python``'s console scripts (django-admin): a venv's bin/."""
    return Path(python).parent


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without what would point runscgi at the demo project."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "SCGI_BIND", "PYTHONPATH")
           and not key.startswith("DJANGO_SCGI_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class FreshProject:
    """``startproject mysite <directory>`` + ``django_scgi`` in INSTALLED_APPS, migrated."""

    def __init__(self, directory: Path, python: str | Path = sys.executable,
                 settings_tail: str = "", env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.python = str(python)
        self.env = dict(env or {})  # for every command (settings may read it)
        directory.mkdir(parents=True, exist_ok=True)
        self.run(str(bin_dir(python) / "django-admin"), "startproject", PACKAGE_NAME,
                 str(directory))
        settings = directory / PACKAGE_NAME / "settings.py"
        settings.write_text(settings.read_text() + SETTINGS_TAIL + settings_tail)
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("createsuperuser", "--noinput", "--username", ADMIN_USER,
                    "--email", "admin@example.com",
                    env={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD})

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.directory,
                                env=clean_env(**{**self.env, **(env or {})}),
                                capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return self.run(self.python, "manage.py", *args, env=env)

    def serve(self, *args: str, env: dict[str, str] | None = None,
              command: list[str] | None = None) -> ServerProcess:
        """``manage.py runscgi ARGS`` in the project, started (banner seen)."""
        base = command or [self.python, "manage.py", "runscgi"]
        return ServerProcess(list(args), clean_env(**{**self.env, **(env or {})}),
                             self.directory, base).wait_started()


def csrf_token(html: bytes) -> str:
    """The csrfmiddlewaretoken of a rendered form."""
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1).decode()


def cookie_value(set_cookies: list[str], name: str) -> str | None:
    for header in set_cookies:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None
