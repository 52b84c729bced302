"""A direct load generator for SCGI servers (and HTTP/1.1 servers, for gunicorn).

SCGI carries one request per connection, so this client does the same for both
protocols: connect, send the whole request, read until the server closes, close.
It keeps ``concurrency`` such exchanges in flight on one epoll loop (``selectors``,
non-blocking sockets, no asyncio machinery in the hot path) and stops after
``total`` requests or ``duration`` seconds, whichever comes first; every request
also has its own timeout. Loopback only: the address must be on 127.0.0.0/8 or ::1.

Used by ``bench/run.py`` in-process; also a command line for quick checks::

    python bench/scgi_load.py 127.0.0.1:4000 / -c 32 -d 5
    python bench/scgi_load.py 127.0.0.1:8000 / --http -n 1000

The SCGI header block imitates Debian's nginx ``scgi_params`` (docs/frontend-variables.rst §2.1),
so every server parses the same realistic variables.

Imports: stdlib only (the client must not share code with the server it measures).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import selectors
import socket
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

# Hard bounds: no run of this client can go on for longer or open more at once.
MAX_DURATION = 600.0
MAX_CONCURRENCY = 10_000
MAX_TOTAL = 10_000_000
RECV_SIZE = 256 * 1024
# Bytes of each response kept for parsing the head; the rest is only counted.
HEAD_KEEP = 4096


# --- requests --------------------------------------------------------------------------------


def nginx_like_headers(path: str, *, method: str = "GET", content_type: str = "",
                       host: str = "127.0.0.1", port: int = 80) -> list[tuple[str, str]]:
    """What nginx sends with Debian's ``scgi_params`` (minus CONTENT_LENGTH), plus
    ``SCRIPT_NAME``/``PATH_INFO`` as a uWSGI user adds them (uWSGI routes on PATH_INFO
    only; without it every path would serve ``/``)."""
    uri_path, _, query = path.partition("?")
    return [
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", path),
        ("QUERY_STRING", query),
        ("CONTENT_TYPE", content_type),
        ("DOCUMENT_URI", uri_path),
        ("DOCUMENT_ROOT", "/var/www/html"),
        ("SCGI", "1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "53412"),
        ("SERVER_PORT", str(port)),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", host),
        ("HTTP_USER_AGENT", "django-scgi-bench"),
        ("HTTP_ACCEPT", "*/*"),
        ("HTTP_CONNECTION", "close"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", uri_path),
    ]


def scgi_request(path: str, *, method: str = "GET", body_length: int = 0,
                 content_type: str = "", body: bytes = b"") -> bytes:
    """The bytes of one SCGI request: netstring header block, then ``body`` (if given).

    ``body_length`` announces a body sent separately (uploads stream it).
    """
    length = len(body) if body else body_length
    pairs = [("CONTENT_LENGTH", str(length))]
    pairs += nginx_like_headers(path, method=method, content_type=content_type)
    block = b"".join(b"%s\0%s\0" % (n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs)
    return b"%d:%s,%s" % (len(block), block, body)


def http_request(path: str, *, method: str = "GET", body_length: int = 0,
                 content_type: str = "", body: bytes = b"") -> bytes:
    """One HTTP/1.1 request that asks the server to close afterwards (as SCGI does)."""
    length = len(body) if body else body_length
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: django-scgi-bench",
             "Accept: */*", "Connection: close"]
    if length or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {length}")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _fcgi_record(rtype: int, content: bytes, request_id: int = 1) -> bytes:
    padding = -len(content) % 8
    return (bytes((1, rtype, request_id >> 8, request_id & 0xFF, len(content) >> 8,
                   len(content) & 0xFF, padding, 0)) + content + b"\0" * padding)


def _fcgi_length(n: int) -> bytes:
    return bytes((n,)) if n < 128 else (n | 0x80000000).to_bytes(4, "big")


def fastcgi_request(path: str, *, method: str = "GET", body_length: int = 0,
                    content_type: str = "", body: bytes = b"", keep_conn: bool = False) -> bytes:
    """One FastCGI RESPONDER request (id 1) as nginx sends it: BEGIN_REQUEST, the
    PARAMS stream (``CONTENT_LENGTH ""`` without a body), the body in STDIN records.

    Without ``keep_conn`` the server closes after END_REQUEST, so the
    one-request-per-connection loads of this module work unchanged; with it the
    connection stays open for the next request (``fastcgi_keep_conn on``).
    """
    length = len(body) if body else body_length
    pairs = [("CONTENT_LENGTH", str(length) if length else "")]
    pairs += [(n, v) for n, v in nginx_like_headers(path, method=method,
                                                    content_type=content_type) if n != "SCGI"]
    params = b"".join(_fcgi_length(len(n)) + _fcgi_length(len(v)) + n.encode("latin-1")
                      + v.encode("latin-1") for n, v in pairs)
    out = [_fcgi_record(1, bytes((0, 1, 1 if keep_conn else 0, 0, 0, 0, 0, 0))),
           _fcgi_record(4, params), _fcgi_record(4, b"")]
    for start in range(0, len(body), 65528):
        out.append(_fcgi_record(5, body[start:start + 65528]))
    if body or not length:  # a body announced but streamed separately ends later
        out.append(_fcgi_record(5, b""))
    return b"".join(out)


def fastcgi_stdout(data: bytes) -> tuple[bytes, bool]:
    """The STDOUT bytes of a FastCGI response held in ``data`` and whether its
    END_REQUEST record was in it (records past an incomplete one are ignored)."""
    out, pos, ended = [], 0, False
    while pos + 8 <= len(data):
        rtype = data[pos + 1]
        length = (data[pos + 4] << 8) | data[pos + 5]
        end = pos + 8 + length + data[pos + 6]
        if end > len(data):
            out.append(data[pos + 8:pos + 8 + length])  # a partial record: what is there
            break
        if rtype == 6:
            out.append(data[pos + 8:pos + 8 + length])
        elif rtype == 3:
            ended = True
            break
        pos = end
    return b"".join(out), ended


def make_request(protocol: str, path: str, **kwargs) -> bytes:
    if protocol == "fastcgi":
        return fastcgi_request(path, **kwargs)
    return (http_request if protocol == "http" else scgi_request)(path, **kwargs)


def parse_status(head: bytes) -> int:
    """Status code of a CGI-style (``Status: 200 OK``) or HTTP (``HTTP/1.1 200``) response,
    or of a CGI-style one in FastCGI STDOUT records."""
    if head[:2] == b"\x01\x06":
        head = fastcgi_stdout(head)[0]
    first, _, rest = head.partition(b"\r\n")
    if first.startswith(b"HTTP/"):
        parts = first.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    for line in [first, *rest.split(b"\r\n")]:
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"status":
            code = value.strip()[:3]
            return int(code) if code.isdigit() else 0
    return 200 if first else 0  # CGI: no Status header means 200


# --- address ---------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[int, tuple]:
    """(family, sockaddr) of ``HOST:PORT``; refuses anything but loopback."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address: this client only targets loopback")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


# --- the concurrent loop ---------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int = 0          # exchanges finished (any outcome)
    ok: int = 0                # finished with the expected status (and body check)
    errors: int = 0            # connect/reset/timeouts and unexpected statuses
    statuses: Counter = field(default_factory=Counter)
    error_kinds: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)    # connect start -> EOF, seconds
    first_body: list[float] = field(default_factory=list)   # connect start -> 1st body byte
    bytes_received: int = 0
    wall: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        return {
            "requests": self.requests, "ok": self.ok, "errors": self.errors,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "error_kinds": dict(self.error_kinds),
            "wall_s": round(self.wall, 4),
            "req_per_s": round(self.ok / self.wall, 1) if self.wall else 0.0,
            "p50_ms": round(_percentile(lat, 50) * 1000, 3) if lat else None,
            "p99_ms": round(_percentile(lat, 99) * 1000, 3) if lat else None,
            "max_ms": round(lat[-1] * 1000, 3) if lat else None,
            "first_body_ms": (round(statistics.median(self.first_body) * 1000, 3)
                              if self.first_body else None),
            "bytes_received": self.bytes_received,
        }


def _percentile(sorted_values: list[float], pct: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class _Exchange:
    __slots__ = ("connected", "first_body_at", "head", "received", "sent", "sock", "started")

    def __init__(self, sock: socket.socket, started: float) -> None:
        self.sock = sock
        self.sent = 0
        self.head = b""
        self.started = started
        self.first_body_at = 0.0
        self.received = 0
        self.connected = False


def run_load(address: str, request: bytes, *, concurrency: int = 1, total: int | None = None,
             duration: float | None = None, timeout: float = 30.0, expect_status: int = 200,
             body_contains: bytes | None = None, ramp: int = 512) -> LoadResult:
    """Keep ``concurrency`` one-request connections in flight until ``total`` or ``duration``.

    ``ramp`` caps how many new connections are opened per loop turn, so a burst of
    thousands does not overflow the listen backlog all at once.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}")
    if total is None and duration is None:
        raise ValueError("give total, duration or both")
    total = min(total or MAX_TOTAL, MAX_TOTAL)
    duration = min(duration if duration is not None else MAX_DURATION, MAX_DURATION)
    family, sockaddr = parse_address(address)
    result = LoadResult()
    selector = (selectors.EpollSelector() if hasattr(selectors, "EpollSelector")
                else selectors.DefaultSelector())
    inflight: dict[int, _Exchange] = {}
    started_count = 0
    began = time.perf_counter()
    stop_starting = began + duration
    # Whatever happens, the loop ends: the run's own deadline plus one request timeout.
    hard_deadline = stop_starting + timeout
    next_timeout_scan = began + 0.5

    def finish(ex: _Exchange, kind: str | None, now: float) -> None:
        selector.unregister(ex.sock)
        del inflight[ex.sock.fileno()]
        ex.sock.close()
        result.requests += 1
        result.bytes_received += ex.received
        status = parse_status(ex.head) if ex.head else 0
        if kind is None:
            result.statuses[status] += 1
            good = status == expect_status and (body_contains is None or body_contains in ex.head)
            kind = None if good else f"status {status}"
        if kind is None:
            result.ok += 1
            result.latencies.append(now - ex.started)
            if ex.first_body_at:
                result.first_body.append(ex.first_body_at - ex.started)
        else:
            result.errors += 1
            result.error_kinds[kind] += 1

    def start(now: float) -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        ex = _Exchange(sock, now)
        inflight[sock.fileno()] = ex
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS):
            selector.register(sock, selectors.EVENT_WRITE, ex)
            finish(ex, f"connect {errno.errorcode.get(code, code)}", now)
            return
        selector.register(sock, selectors.EVENT_WRITE, ex)

    view = memoryview(request)
    buffer = bytearray(RECV_SIZE)
    while True:
        now = time.perf_counter()
        opened = 0
        while (len(inflight) < concurrency and started_count < total and now < stop_starting
               and opened < ramp):
            start(now)
            started_count += 1
            opened += 1
        if not inflight:
            break
        if now > hard_deadline:
            for ex in list(inflight.values()):
                finish(ex, "run deadline", now)
            break
        for key, events in selector.select(timeout=0.05):
            ex = key.data
            now = time.perf_counter()
            try:
                if events & selectors.EVENT_WRITE:
                    _on_writable(ex, view, selector)
                if events & selectors.EVENT_READ:
                    count = ex.sock.recv_into(buffer)
                    if count == 0:
                        finish(ex, None, now)
                        continue
                    _on_data(ex, buffer, count, now)
            except BlockingIOError:
                continue
            except OSError as error:
                finish(ex, errno.errorcode.get(error.errno, str(error.errno)), now)
        now = time.perf_counter()
        if now >= next_timeout_scan:
            next_timeout_scan = now + 0.5
            for ex in [ex for ex in inflight.values() if now - ex.started > timeout]:
                finish(ex, "timeout", now)
    result.wall = time.perf_counter() - began
    selector.close()
    return result


def _on_writable(ex: _Exchange, view: memoryview, selector) -> None:
    if not ex.connected:
        code = ex.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, errno.errorcode.get(code, "connect failed"))
        ex.connected = True
    ex.sent += ex.sock.send(view[ex.sent:])
    if ex.sent >= len(view):
        selector.modify(ex.sock, selectors.EVENT_READ, ex)


def _on_data(ex: _Exchange, buffer: bytearray, count: int, now: float) -> None:
    ex.received += count
    if len(ex.head) < HEAD_KEEP:
        had = len(ex.head)
        ex.head += bytes(buffer[: min(count, HEAD_KEEP - had)])
        if not ex.first_body_at:
            end = ex.head.find(b"\r\n\r\n")
            if end >= 0 and len(ex.head) > end + 4:
                ex.first_body_at = now


# --- single big transfers ----------------------------------------------------------------------


def download(address: str, request: bytes, *, timeout: float = 120.0) -> dict:
    """One request whose response is read and dropped as fast as possible."""
    family, sockaddr = parse_address(address)
    buffer = bytearray(1024 * 1024)
    head = b""
    total = 0
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        began = time.perf_counter()
        sock.connect(sockaddr)
        sock.sendall(request)
        deadline = began + timeout
        while time.perf_counter() < deadline:
            count = sock.recv_into(buffer)
            if not count:
                break
            if len(head) < HEAD_KEEP:
                head += bytes(buffer[: min(count, HEAD_KEEP - len(head))])
            total += count
        wall = time.perf_counter() - began
    end = head.find(b"\r\n\r\n")
    return {"status": parse_status(head), "bytes": total - (end + 4 if end >= 0 else 0),
            "wall_s": wall}


def upload(address: str, head: bytes, size: int, *, piece: int = 1024 * 1024,
           timeout: float = 120.0, keep: int = HEAD_KEEP) -> dict:
    """Send ``head`` then ``size`` body bytes in ``piece``-sized writes; read the answer.

    Of the response, the head plus ``keep`` body bytes are kept; the rest is counted.
    """
    family, sockaddr = parse_address(address)
    block = memoryview(b"u" * piece)
    buffer = bytearray(1024 * 1024)
    kept = b""
    received = 0
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        began = time.perf_counter()
        sock.connect(sockaddr)
        sock.sendall(head)
        sent = 0
        while sent < size:
            step = min(piece, size - sent)
            sock.sendall(block[:step])
            sent += step
        deadline = began + timeout
        while time.perf_counter() < deadline:
            count = sock.recv_into(buffer)
            if not count:
                break
            received += count
            if len(kept) < HEAD_KEEP + keep:
                kept += bytes(buffer[: min(count, HEAD_KEEP + keep - len(kept))])
        wall = time.perf_counter() - began
    end = kept.find(b"\r\n\r\n")
    body_start = end + 4 if end >= 0 else 0
    return {"status": parse_status(kept), "wall_s": wall,
            "received": received - body_start,
            "body": kept[body_start: body_start + keep].decode("latin-1")}


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", help="HOST:PORT on loopback")
    parser.add_argument("path", nargs="?", default="/")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-n", "--total", type=int, default=None)
    parser.add_argument("-d", "--duration", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--http", action="store_true", help="speak HTTP/1.1 instead of SCGI")
    args = parser.parse_args(argv)
    if args.total is None and args.duration is None:
        args.duration = 5.0
    request = make_request("http" if args.http else "scgi", args.path)
    result = run_load(args.address, request, concurrency=args.concurrency, total=args.total,
                      duration=args.duration, timeout=args.timeout)
    json.dump(result.summary(), sys.stdout, indent=2)
    print()
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
