"""Warnings about misbehaving peers are rate-limited, so a crowd cannot flood the log."""

from __future__ import annotations

import logging
import time

from django_scgi import server


def test_warnings_beyond_the_limit_are_counted_and_summed_up(caplog):
    limiter = server.RateLimitedWarnings(limit=3, interval=1)
    with caplog.at_level(logging.WARNING, logger="django_scgi.server"):
        for number in range(10):
            limiter.warn("peer %d misbehaved", number)
        assert [r.getMessage() for r in caplog.records] == [
            "peer 0 misbehaved", "peer 1 misbehaved", "peer 2 misbehaved",
        ]
        time.sleep(1.05)
        limiter.warn("peer %d misbehaved", 10)
    assert [r.getMessage() for r in caplog.records][3:] == [
        "7 more warnings about peers were not logged in the last 1s.",
        "peer 10 misbehaved",
    ]


def test_server_refusals_go_through_the_limiter(start_server):
    # More malformed requests than the limit: the log holds the limit, not one per peer.

    from django_scgi.client import connect

    srv = start_server("127.0.0.1:0")
    for _ in range(server.PEER_WARNINGS_PER_INTERVAL + 30):
        with connect(srv.address, 5) as sock:
            sock.sendall(b"garbage!")
            try:
                while sock.recv(4096):
                    pass
            except (TimeoutError, ConnectionResetError):
                pass
    time.sleep(0.3)
    refusals = [line for line in srv.lines if "Refused a malformed request" in line]
    assert len(refusals) == server.PEER_WARNINGS_PER_INTERVAL
