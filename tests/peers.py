"""Helpers for tests that play a hostile or slow peer against a real ``runscgi``.

Shared by the timeout, memory and hostile-peer tests: raw requests, reading until the
server closes, a health probe, log lines of one peer, and a process's RSS sampled in a
thread.
"""

from __future__ import annotations

import threading
import time

import psutil

from django_scgi import client
from django_scgi.protocol import encode_request

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


def assert_healthy(address: str, within: float = 5.0) -> float:
    started = time.monotonic()
    response = client.request(address, "/", timeout=within)
    assert (response.status, response.body) == (200, b"Hello from django-scgi\n")
    return time.monotonic() - started


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
    import socket

    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout, source_address=(source, 0))


def closed_by_server(sock, wait: float) -> bool:
    """Whether the server closed or reset ``sock`` within ``wait`` seconds (data that
    arrives meanwhile is read and dropped)."""
    import select

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
    return None
