"""Waiting for the rest of a request's head, for ``Exchange._read_head`` when the first
read did not bring all of it (a slow or trickling front-end): the uncommon path, apart
from the exchange's usual one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .. import protocol
from .body import RECV_SIZE

if TYPE_CHECKING:
    from .exchange import Exchange


# Bytes of the request's start kept to read its length prefix again: the digits of the
# largest header block plus ":" fit (the parser refuses longer prefixes).
PREFIX_KEEP = 24


def _request_size(prefix: bytes, content_length: int) -> int:
    """Bytes of a whole request whose header netstring starts with ``prefix``."""
    colon = prefix.index(b":")
    return colon + 1 + int(prefix[:colon]) + 1 + content_length


def wait_for_headers(exchange: Exchange, parser: protocol.RequestParser, deadline: float,
                     received: int, prefix: bytes) -> protocol.Event | protocol._NeedData:
    """Read until ``parser`` has the head (or fails), by ``deadline``: the event.

    ``received`` bytes were read already, ``prefix`` the first of them (at most
    PREFIX_KEEP): whether the reads went past the request sets ``exchange.overread``.
    """
    sock = exchange.sock
    idle = exchange.idle_sockets
    if not received:
        idle.add(sock)  # until its first bytes arrive, shutdown may close it
    exchange.heads_waiting[sock] = exchange.started
    try:
        while True:
            remaining_time = deadline - time.monotonic()
            if remaining_time <= 0:
                raise TimeoutError
            sock.settimeout(remaining_time)
            data = sock.recv(RECV_SIZE)
            idle.discard(sock)
            received += len(data)
            if len(prefix) < PREFIX_KEEP:
                prefix += data[:PREFIX_KEEP]
            parser.receive_data(data)
            event = parser.next_event()
            if event is not protocol.NEED_DATA:
                if type(event) is protocol.Headers:
                    exchange.overread = received > _request_size(prefix, event.content_length)
                return event
    finally:
        idle.discard(sock)
        exchange.heads_waiting.pop(sock, None)
