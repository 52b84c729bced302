"""Issue 20, items 3 and 5, through the real front-ends with the shipped deploy/ files.

- Item 3: nginx (and lighttpd with ``stream-response-body = 1``) keep buffering
  downloads and exports, so slow clients cannot pin the backend's slots; server-sent
  events still stream.
- Item 5: offload is confined to ``SCGI_OFFLOAD_ROOTS`` (no path outside, no symlink out
  of it), names reach each front-end in the encoding it reads, and an application-set
  ``Status:`` header cannot replace the status.

Each test starts its own ``runscgi`` (port 0) and front-end, stopped by PID.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import time
from urllib.parse import quote

import frontends
import pytest
from frontends import Backend
from helpers import PeakRSS, rss

pytestmark = [pytest.mark.frontend, pytest.mark.timeout(120)]

MiB = 1024 * 1024
OFFLOAD_VIA = {"apache": "x-sendfile", "lighttpd": "x-sendfile", "nginx": "x-accel-redirect"}


@pytest.fixture
def files():
    """The offload root: files the front-ends' workers can read."""
    directory = frontends.make_run_dir("fe-hostile-files-")
    (directory / "sample.txt").write_bytes(b"a sample\n")
    (directory / "100%41.txt").write_bytes(b"the file with a percent sign\n")
    (directory / "100A.txt").write_bytes(b"the WRONG file\n")
    (directory / "big.bin").write_bytes(b"B" * (32 * MiB))
    (directory / "evil.txt").symlink_to("/etc/passwd")
    for path in directory.iterdir():
        if not path.is_symlink():
            path.chmod(0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def deploy(start_server, files):
    """``deploy(kind, *runscgi_args)`` → a started front-end before a fresh runscgi."""
    started = []

    def start(kind: str, *args: str, env: dict[str, str] | None = None):
        frontends.require(kind)
        server = start_server("127.0.0.1:0", *args,
                              env={"PROTECTED_FILES_DIR": str(files), **(env or {})})
        run_dir = frontends.make_run_dir(f"fe-hostile-{kind}-")
        frontend = frontends.FRONT_ENDS[kind](run_dir, mount="", backend=Backend(server.address),
                                              offload_dir=files)
        started.append((frontend, run_dir))
        frontend.start()
        return frontend, server

    yield start
    for frontend, run_dir in started:
        frontend.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# --- item 1: memory follows the bytes received ----------------------------------------------


def test_claimed_gigabyte_through_apache_costs_the_backend_almost_nothing(deploy):
    # Apache streams the body to runscgi as it arrives: an HTTP client's claim of 1 GiB
    # reaches the view, whose request.body used to reserve all of it at once.
    frontend, server = deploy("apache", env={"DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE": "none"})
    frontends.request(frontend.port, "POST", "/echo/", body=b"w" * (2 * MiB))  # warm-up
    before = rss(server.pid)
    with PeakRSS(server.pid, interval=0.01) as peak, socket.create_connection(
            (frontends.HOST, frontend.port), timeout=30) as sock:
        sock.sendall(b"POST /echo/ HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/octet-stream\r\n"
                     b"Content-Length: 1073741824\r\n\r\nabc")
        time.sleep(2)  # the body has reached the view, which is reading
    growth = peak.peak - before
    assert peak.samples > 10
    assert growth < 10 * MiB, f"backend RSS grew by {growth / MiB:.1f} MiB"


# --- item 3: buffering that protects the backend -------------------------------------------


def slow_client(port: int, target: str) -> socket.socket:
    """An HTTP client that asks for ``target`` and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((frontends.HOST, port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize("target", ["/file/?name=big.bin", "/db-big/?mb=32"],
                         ids=["FileResponse", "streamed-export"])
@pytest.mark.parametrize("kind", ["nginx", "lighttpd"])
def test_slow_readers_do_not_hold_backend_slots(deploy, kind, target):
    # Three slots, six clients that never read 32 MiB: nginx must take each response
    # whole from runscgi (into its buffers and temp file), so the backend is free again
    # at once and a good request is answered. Unbuffered, the six would hold every slot
    # until the 60 s write timeout.
    frontend, _ = deploy(kind, "--max-connections", "3")
    slow = [slow_client(frontend.port, target) for _ in range(6)]
    try:
        time.sleep(2)  # every slow request has reached runscgi by now
        started = time.monotonic()
        reply = frontends.request(frontend.port, "GET", "/", timeout=30)
        waited = time.monotonic() - started
        assert reply.status == 200, reply.describe()
        assert waited < 5, f"a good request waited {waited:.1f}s behind slow readers"
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.parametrize("kind", ["nginx", "lighttpd"])
def test_server_sent_events_still_stream(deploy, kind):
    frontend, _ = deploy(kind)
    first_at, body, reply = frontends.timed_chunks(frontend.port, "/events/?n=3&delay=1")
    assert reply.status == 200, reply.describe()
    stamps = [float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines() if line]
    assert len(stamps) == 3, body
    assert first_at < stamps[-1] - 0.5, f"{kind} held the events back"


# --- item 5: offload confined ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["apache", "nginx", "lighttpd"])
def test_symlink_out_of_the_offload_root_is_refused(deploy, kind):
    frontend, _ = deploy(kind)
    reply = frontends.request(frontend.port, "GET",
                              f"/offload/?name=evil.txt&via={OFFLOAD_VIA[kind]}")
    assert b"root:" not in reply.body, reply.describe()
    assert reply.status == 400, reply.describe()
    # The plain file next to it is still served by the front-end.
    good = frontends.request(frontend.port, "GET",
                             f"/offload/?name=sample.txt&via={OFFLOAD_VIA[kind]}")
    assert (good.status, good.body) == (200, b"a sample\n"), good.describe()


@pytest.mark.parametrize("kind", ["apache", "lighttpd"])
def test_path_outside_the_offload_roots_is_refused(deploy, kind):
    # Debian's Apache allows /usr/share: an unconfined X-Sendfile served its files.
    frontend, _ = deploy(kind)
    for path in ["/etc/passwd", "/usr/share/common-licenses/Apache-2.0",
                 "/usr/share/../etc/passwd"]:
        reply = frontends.request(frontend.port, "GET",
                                  f"/careless-offload/?path={quote(path)}")
        assert reply.status == 400 and b"root:" not in reply.body, (path, reply.describe())


@pytest.mark.parametrize("kind", ["apache", "nginx", "lighttpd"])
def test_names_reach_the_front_end_in_its_encoding(deploy, kind):
    # nginx and lighttpd percent-decode the name: unencoded, "100%41.txt" named 100A.txt.
    frontend, _ = deploy(kind)
    reply = frontends.request(frontend.port, "GET",
                              f"/offload/?name={quote('100%41.txt')}&via={OFFLOAD_VIA[kind]}")
    assert (reply.status, reply.body) == (200, b"the file with a percent sign\n"), \
        reply.describe()


@pytest.mark.parametrize("kind", ["apache", "nginx", "lighttpd"])
def test_application_status_header_does_not_override_the_status(deploy, kind):
    frontend, _ = deploy(kind)
    for claim in ["302 Found", "401 Unauthorized"]:
        reply = frontends.request(frontend.port, "GET", f"/status-header/?claim={quote(claim)}")
        assert reply.status == 200, (claim, reply.describe())
        assert reply.body == b"the real status is 200\n"


# --- item 6: a stream cut at the graceful timeout ------------------------------------------


@pytest.mark.parametrize("kind", ["nginx", "apache"])
def test_stream_cut_at_the_graceful_timeout_is_an_error_for_the_client(deploy, kind):
    # The stream would take 10 s; SIGTERM gives it 1 s. The client must see that its
    # response was cut (no terminating chunk), not a complete, shorter 200.
    frontend, server = deploy(kind, "--graceful-timeout", "1")
    conn = http.client.HTTPConnection(frontends.HOST, frontend.port, timeout=30)
    try:
        conn.request("GET", "/stream/?n=40&delay=0.25")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read1(65536).startswith(b"chunk 0")
        server.signal(signal.SIGTERM)
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            while response.read1(65536):
                pass
            response.read()  # the end of the chunks
    finally:
        conn.close()
    server.wait(30)
