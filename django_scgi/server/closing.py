"""What happens to a connection once its exchange is over: the close policy, in one place.

For SCGI the connection's FIN ends the response: Apache, when it does not see it with
the last bytes, waits for it, flushes what it has as a chunked response and ends the
chunks only after the FIN. So the connection closes before the application's close()
(Django's request_finished handlers), except for a lingering close, which waits for the
peer, and one held for a batch (``Workers.close``), whose last bytes wait in the kernel
with it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gevent import socket

from .body import RECV_SIZE

if TYPE_CHECKING:
    from ..connection import Connection
    from .exchange import Exchange
    from .pool import Workers

# Seconds to go on reading (and dropping) what the peer still sends after our answer.
# close() with unread bytes in the receive buffer makes the kernel send RST instead of
# FIN, and the peer's kernel then throws away response bytes it has not read yet:
# the answer is lost when bytes follow the body (nginx < 1.29.6 with
# scgi_request_buffering off sends CONTENT_LENGTH=0 and then the body), when the body
# is over drain_limit, or when we refuse a request (413) while the body is on its
# way. A front-end closes as soon as it sees our FIN, so this costs one round trip;
# the bound is for peers that do not. Apache's lingering close waits 2 s per read.
LINGER_TIMEOUT = 2.0


# HTTP versions whose requests declare a body with a header (RFC 9112 §6.3).
_HTTP1 = frozenset({"HTTP/1.1", "HTTP/1.0"})


def nothing_follows(cgi: Mapping[str, str]) -> bool:
    """Whether no byte can follow a request whose front-end variables ``cgi`` declare
    no body (CONTENT_LENGTH 0): once its reads took nothing past its head, closing
    cannot reset.

    Only a front-end that did not know the body's length sends one after the head
    (nginx < 1.29.6 with ``scgi_request_buffering off`` declares CONTENT_LENGTH 0 and
    streams the body behind it). In HTTP/1.x a request has a body only with a
    Content-Length, which the front-end passes on as CONTENT_LENGTH, or a
    Transfer-Encoding, which nginx passes on as HTTP_TRANSFER_ENCODING. HTTP/2 and 3
    can send a body with neither, so their requests keep the FIONREAD check
    (``Exchange.can_close_at_once``), as does any other protocol (Gemini). A peer that
    breaks both SCGI's and HTTP's framing may lose its answer to a reset.
    """
    return ("HTTP_TRANSFER_ENCODING" not in cgi
            and cgi.get("SERVER_PROTOCOL") in _HTTP1)


def finish(exchange: Exchange, sock: Connection, workers: Workers) -> None:
    """Close ``sock`` the way its exchange calls for, and close the application's iterable.

    - reset when the peer stopped reading (``abort``): waiting for it is pointless;
    - at once when nothing of the request is left unread, or held for a batch;
    - else lingering, so unread request bytes cannot turn the FIN into a reset.
    """
    if sock.fd < 0:
        # Closed under the exchange already: shed while waiting for its head, or by
        # shutdown as idle. Nothing left to send or to linger for.
        exchange.close_result()
    elif exchange.abort:
        close_abortive(sock)
        exchange.close_result()
    elif exchange.head_is_all or exchange.can_close_at_once():  # the usual one: no call
        if exchange.fin_awaited and workers.closing.holder is not None:
            workers.close(sock)  # or held for a batch: Workers._may_hold
        else:
            sock.close()
        exchange.close_result()
    else:
        exchange.close_result()
        close_lingering(sock)


def close_lingering(sock: Any) -> None:
    """Send FIN, drop what the peer still sends until it closes (bounded), then close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(RECV_SIZE):
                break
    except OSError:  # timed out, reset, or not connected any more: nothing to save
        pass
    finally:
        sock.close()


def close_abortive(sock: Any) -> None:
    """Close with RST: the kernel drops unsent bytes at once instead of retrying them."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
