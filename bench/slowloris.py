"""Slowloris peers for the bench: N SCGI connections dribbling a valid header block.

Each connection sends the same valid SCGI request as ``scgi_load.py`` (an nginx-like
header block for ``/``, about 450 bytes) one byte at a time, one byte every
``--interval`` seconds, the connections spread evenly over the interval (so 5,000
connections every 0.5 s make 10,000 one-byte sends a second, not bursts of 5,000). At
that pace no header block completes within the run. One process, one epoll loop
(``selectors``), non-blocking sockets, stdlib only.

    python bench/slowloris.py 127.0.0.1:18401 -n 5000 --interval 0.5 --duration 40

Protocol with ``bench/measure.py``: one JSON line ``{"ready": ...}`` on stdout once every
connection has connected (or failed) and sent at least two bytes; it then keeps
dribbling until ``--duration`` (or, with ``--stop-on-stdin``, a line or EOF on stdin),
closes every socket and prints one JSON summary line. The server closing a connection,
or answering on it, is counted, not retried. Loopback only; bounded in count
(``MAX_CONNECTIONS``) and time (``MAX_DURATION``).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import socket
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scgi_load  # stdlib only, like this file

MAX_CONNECTIONS = 10_000
MAX_DURATION = 120.0
TICK = 0.01          # the schedule's resolution: interval / TICK slots
RAMP = 256           # new connections per loop turn (the listen backlog is 4096)


class Peer:
    __slots__ = ("answered", "closed_at", "connected", "opened_at", "sent", "sock")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.sent = 0
        self.connected = False
        self.opened_at = now
        self.closed_at = 0.0
        self.answered = 0


def run(address: str, count: int, *, interval: float, duration: float,
        ready_timeout: float = 30.0, out=sys.stdout, control: int | None = None) -> dict:
    """Dribble on ``count`` connections; the summary dict (also printed as JSON)."""
    if not 1 <= count <= MAX_CONNECTIONS:
        raise ValueError(f"count must be 1..{MAX_CONNECTIONS}")
    if not 0.05 <= interval <= 10:
        raise ValueError("interval must be 0.05..10 s")
    duration = min(duration, MAX_DURATION)
    family, sockaddr = scgi_load.parse_address(address)
    payload = scgi_load.scgi_request("/")
    selector = selectors.EpollSelector()
    if control is not None:
        os.set_blocking(control, False)
        selector.register(control, selectors.EVENT_READ, None)
    slots = max(1, round(interval / TICK))
    buckets: list[list[Peer]] = [[] for _ in range(slots)]
    peers: list[Peer] = []
    failed: Counter = Counter()
    closes: Counter = Counter()
    sends = 0
    late = 0.0  # how far behind its schedule the loop fell, at most (seconds)
    began = time.monotonic()
    deadline = began + duration
    ready_at = 0.0
    slot_done = -1  # slots (since began) already served
    opened = 0
    connected_count = 0

    def close(peer: Peer, kind: str, now: float) -> None:
        if peer.closed_at:
            return
        peer.closed_at = now
        closes[kind] += 1
        try:
            selector.unregister(peer.sock)
        except (KeyError, ValueError):
            pass
        peer.sock.close()

    def send_one(peer: Peer, now: float) -> None:
        nonlocal sends
        if peer.closed_at or not peer.connected or peer.sent >= len(payload):
            return
        try:
            peer.sent += peer.sock.send(payload[peer.sent: peer.sent + 1])
            sends += 1
        except BlockingIOError:
            pass
        except OSError as error:
            close(peer, errno.errorcode.get(error.errno, str(error.errno)), now)

    stop = False
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        batch = 0
        while opened < count and batch < RAMP:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            peer = Peer(sock, now)
            peers.append(peer)
            code = sock.connect_ex(sockaddr)
            opened += 1
            batch += 1
            if code not in (0, errno.EINPROGRESS):
                failed[errno.errorcode.get(code, str(code))] += 1
                peer.closed_at = now
                sock.close()
                continue
            selector.register(sock, selectors.EVENT_WRITE, peer)
        # One byte to every connection whose slot came due (slots missed are caught up).
        due = int((now - began) / TICK)
        if due - slot_done > 1:
            late = max(late, (due - slot_done - 1) * TICK)
        for slot in range(slot_done + 1, due + 1):
            for peer in buckets[slot % slots]:
                send_one(peer, now)
        slot_done = due
        wait = max(0.0, began + (due + 1) * TICK - time.monotonic())
        for key, _events in selector.select(timeout=wait):
            peer = key.data
            now = time.monotonic()
            if peer is None:  # stdin: a line or EOF means stop
                try:
                    os.read(control, 4096)
                    stop = True
                except BlockingIOError:
                    pass
                continue
            if not peer.connected:
                code = peer.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    failed[errno.errorcode.get(code, str(code))] += 1
                    selector.unregister(peer.sock)
                    peer.sock.close()
                    peer.closed_at = now
                    continue
                peer.connected = True
                selector.modify(peer.sock, selectors.EVENT_READ, peer)
                buckets[connected_count % slots].append(peer)  # spread over the interval
                connected_count += 1
                send_one(peer, now)
                continue
            try:
                data = peer.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as error:
                close(peer, errno.errorcode.get(error.errno, str(error.errno)), now)
                continue
            if not data:
                close(peer, "closed" if not peer.answered else "answered", now)
            else:
                peer.answered += len(data)
        if not ready_at and opened == count:
            waiting = [p for p in peers if not p.closed_at and p.sent < 2]
            if not waiting or now - began > ready_timeout:
                ready_at = now
                connected = sum(1 for p in peers if p.connected)
                print(json.dumps({"ready": not waiting, "connected": connected,
                                  "failed": sum(failed.values()),
                                  "open": sum(1 for p in peers if not p.closed_at),
                                  "ready_s": round(now - began, 3)}), file=out, flush=True)
    end = time.monotonic()
    open_at_end = 0
    for peer in peers:
        if not peer.closed_at:
            open_at_end += 1
            try:
                selector.unregister(peer.sock)
            except (KeyError, ValueError):
                pass
            peer.sock.close()
    selector.close()
    lifetimes = sorted(p.closed_at - p.opened_at for p in peers
                       if p.connected and p.closed_at and p.closed_at < end)
    sent = [p.sent for p in peers if p.connected]
    return {
        "connections": count, "connected": sum(1 for p in peers if p.connected),
        "connect_failed": sum(failed.values()), "connect_errors": dict(failed),
        "closed_by_server": sum(closes.values()), "close_kinds": dict(closes),
        "answered": sum(1 for p in peers if p.answered), "open_at_end": open_at_end,
        "sends": sends, "sends_per_s": round(sends / (end - began), 1) if end > began else 0,
        "bytes_per_connection_max": max(sent) if sent else 0,
        "header_block_bytes": len(payload),
        "ready_s": round(ready_at - began, 3) if ready_at else None,
        "wall_s": round(end - began, 3), "max_late_s": round(late, 3),
        "first_close_s": round(lifetimes[0], 3) if lifetimes else None,
        "median_close_s": round(statistics.median(lifetimes), 3) if lifetimes else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", help="HOST:PORT on loopback")
    parser.add_argument("-n", "--connections", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between two bytes on one connection (default 0.5)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="stop after this many seconds at most (default 30)")
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    parser.add_argument("--stop-on-stdin", action="store_true",
                        help="also stop at a line or EOF on stdin (how measure.py drives it)")
    args = parser.parse_args(argv)
    summary = run(args.address, args.connections, interval=args.interval,
                  duration=args.duration, ready_timeout=args.ready_timeout,
                  control=0 if args.stop_on_stdin else None)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
