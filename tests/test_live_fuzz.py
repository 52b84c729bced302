"""A bounded fuzz run against a live ``runscgi``: random and mutated real requests.

The parser's properties are proven in ``test_protocol_fuzz.py``; this checks the whole
server on real sockets: 300 requests in batches of 50 sent at once, made of random bytes
and of the verbatim requests Apache, nginx and lighttpd sent (``test_environ.DUMPS``)
with bytes flipped, inserted or deleted, truncated, or sent in random pieces with tiny
delays. After every batch a good request must be answered, the process must be alive,
and the log must hold no traceback. Seeded, so a failure replays; ``FUZZ_SEED=N``
runs another sequence.
"""

from __future__ import annotations

import os
import random
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from frontend_dumps import DUMPS, cgi_from_dump
from helpers import assert_healthy

from django_scgi import client
from django_scgi.protocol import encode_request

pytestmark = pytest.mark.timeout(60)

SEED = int(os.environ.get("FUZZ_SEED", "20261122"))
BATCHES, BATCH_SIZE = 6, 50
# Per-connection bound on the client side: the server's own timeouts (1 s below)
# must end every exchange well within it.
CLIENT_TIMEOUT = 8.0


def real_requests() -> list[bytes]:
    """Each front-end dump as the bytes that front-end sent, with a small body for POSTs."""
    requests = []
    for name in sorted(DUMPS):
        cgi = cgi_from_dump(DUMPS[name])
        length = int(cgi.pop("CONTENT_LENGTH", "0") or 0)
        cgi.pop("SCGI", None)
        body = b"a=1&b=%C3%A9"[:length].ljust(length, b"z")
        requests.append(encode_request(cgi, body))
    # And a bare client's requests for views that do something (no /sleep/ or /stream/:
    # a mutated digit there would make a request legitimately outlast the client).
    for path, body in [("/", b""), ("/json/", b""), ("/info/caf%C3%A9?q=1", b""),
                       ("/cookies/", b""), ("/file/", b""), ("/big/?mb=1", b""),
                       ("/echo/", b"hello " * 50), ("/upload/", bytes(range(256)) * 8)]:
        cgi = client.build_environ(path, "POST" if body else "GET", extra={
            "CONTENT_TYPE": "application/octet-stream"} if body else None)
        requests.append(encode_request(cgi, body))
    return requests


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "insert", "delete", "truncate", "duplicate"])
        if not data:
            break
        pos = rng.randrange(len(data))
        if op == "flip":
            data[pos] ^= 1 << rng.randrange(8)
        elif op == "insert":
            data[pos:pos] = bytes([rng.choice([0, 44, 58, 48, 57, rng.randrange(256)])])
        elif op == "delete":
            del data[pos]
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = data[pos : pos + rng.randint(1, 40)]
    return bytes(data)


def mutate_values(rng: random.Random, data: bytes) -> bytes:
    """Replace bytes inside names and values, keeping the framing: the request still
    parses, so odd paths, hosts, methods and lengths reach the environ and Django."""
    data = bytearray(data)
    start = data.index(b":") + 1
    end = start + int(data[: start - 1])
    spots = [i for i in range(start, end) if data[i] != 0]
    for pos in rng.sample(spots, min(len(spots), rng.randint(1, 6))):
        data[pos] = rng.choice([rng.randrange(1, 256), ord("%"), ord("/"), ord("?"), 0xFF])
    return bytes(data)


def make_case(rng: random.Random, seeds: list[bytes]) -> tuple[bytes, list[int], bool]:
    """(bytes, split points, whether to half-close after sending)."""
    kind = rng.random()
    if kind < 0.2:
        data = rng.randbytes(rng.randint(0, 3000))
    elif kind < 0.3:
        data = rng.choice(seeds)  # unmodified: must simply be served
    elif kind < 0.6:
        data = mutate_values(rng, rng.choice(seeds))
    else:
        data = mutate(rng, rng.choice(seeds))
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data), rng.randint(0, 6))))
    # Most peers half-close (the server sees EOF at once); some stay silent and meet
    # the header or body timeout.
    return data, cuts, rng.random() < 0.85


def send_case(address: str, case: tuple[bytes, list[int], bool], rng_seed: int) -> bytes:
    data, cuts, half_close = case
    delays = random.Random(rng_seed)
    received = []
    with client.connect(address, CLIENT_TIMEOUT) as sock:
        try:
            start = 0
            for cut in [*cuts, len(data)]:
                if cut > start:
                    sock.sendall(data[start:cut])
                    time.sleep(delays.choice([0, 0, 0.001, 0.005, 0.02]))
                    start = cut
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            sock.settimeout(CLIENT_TIMEOUT)
            while chunk := sock.recv(65536):
                received.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused and closed early: fine
    return b"".join(received)


RECORD_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:|\[\d\d/)")


def unexpected_tracebacks(lines: list[str]) -> list[str]:
    """Log records (a line and its continuation lines) holding a traceback we don't know."""
    records: list[list[str]] = []
    for line in lines:
        if RECORD_START.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    texts = ["\n".join(record) for record in records]
    return [text for text in texts if "Traceback" in text]


def test_fuzzed_requests_never_hurt_the_server(start_server):
    server = start_server("127.0.0.1:0", "--header-timeout", "1", "--body-timeout", "1")
    rng = random.Random(SEED)
    seeds = real_requests()
    started = time.monotonic()
    answered = 0
    with ThreadPoolExecutor(BATCH_SIZE) as pool:
        for batch in range(BATCHES):
            cases = [make_case(rng, seeds) for _ in range(BATCH_SIZE)]
            seeds_for_delays = [rng.randrange(2**32) for _ in cases]
            results = list(pool.map(send_case, [server.address] * BATCH_SIZE, cases,
                                    seeds_for_delays))
            for raw in results:
                if raw:  # whatever came back is a CGI response, never a traceback
                    answered += 1
                    response = client.parse_response(raw)
                    assert 200 <= response.status < 600
                    assert b"Traceback" not in raw
            assert server.proc.poll() is None, f"server died in batch {batch}"
            assert_healthy(server.address)
            assert unexpected_tracebacks(list(server.lines)) == [], server.output
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed
    assert answered > BATCHES * BATCH_SIZE // 3  # the mix reached the application too


def test_undecodable_script_name_is_not_a_server_error(start_server):
    server = start_server("127.0.0.1:0")
    cgi = cgi_from_dump(DUMPS["lighttpd/l-root-plain"])
    cgi.pop("CONTENT_LENGTH")
    cgi.pop("SCGI")
    cgi.update(SCRIPT_NAME="/\xff", PATH_INFO="/path", REQUEST_URI="/%FF/path")
    response = client.request(server.address, environ=cgi, timeout=5)
    assert response.status < 500
    assert "Traceback" not in server.output
