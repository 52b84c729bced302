"""Who may connect: the allow-list for TCP peers (``SCGI_ALLOW_FROM``)."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from typing import Any

from ..connection import peer_address

logger = logging.getLogger(__name__)

# Seconds between two log lines about the same refused peer address: a scanner that
# retries every millisecond must not flood the log.
REFUSED_LOG_INTERVAL = 60.0
# Peer addresses whose allow-list verdict is remembered; the cache is emptied when
# full so a flood of distinct addresses costs time, not memory.
PEER_CACHE_SIZE = 4096


class PeerFilter:
    """The allow-list for TCP peers, with a verdict cache and rate-limited logging."""

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]):
        self.networks = tuple(networks)
        # Verdicts by peer_host() key; the server looks a known peer up here itself
        # (lifecycle.handle), sparing a call per connection.
        self.verdicts: dict[Any, bool] = {}
        self._last_logged: dict[str, float] = {}

    def admits(self, host_key: Any, raw_peer: Any) -> bool:
        """``host_key``: ``peer_host(raw_peer, family)``, the verdict cache's key; the address
        is decoded only for a verdict not in the cache and for a refusal's log line."""
        verdict = self.verdicts.get(host_key)
        if verdict is None:
            verdict = self._verdict(peer_address(raw_peer)[0])
            if len(self.verdicts) >= PEER_CACHE_SIZE:
                self.verdicts.clear()
            self.verdicts[host_key] = verdict
        if not verdict:
            self._log_refusal(peer_address(raw_peer)[0])
        return verdict

    def _verdict(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
            address = mapped
        return any(address in network for network in self.networks)

    def _log_refusal(self, host: str) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(host, -REFUSED_LOG_INTERVAL) < REFUSED_LOG_INTERVAL:
            return
        if len(self._last_logged) >= PEER_CACHE_SIZE:
            self._last_logged.clear()
        self._last_logged[host] = now
        logger.warning(
            "Refused a connection from %s: not in the allow-list (SCGI_ALLOW_FROM). "
            "Further refusals of this address are logged at most every %ds.",
            host, REFUSED_LOG_INTERVAL,
        )


class PeerShares:
    """At most ``limit`` connections at once per TCP peer address (``max_connections_per_peer``).

    Keyed by ``peer_host``: the address bytes, not the port, so one host's many
    connections count together. Unix socket peers have no address and are not counted:
    behind a unix socket the only peer is the front-end (the socket's file mode keeps
    everyone else out), and capping it would only make it queue its own clients.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[Any, int] = {}

    def take(self, host_key: Any) -> bool:
        """Count one more connection of ``host_key``; False (nothing counted) when its
        share is full."""
        held = self._held.get(host_key, 0)
        if held >= self.limit:
            return False
        self._held[host_key] = held + 1
        return True

    def release(self, host_key: Any) -> None:
        held = self._held[host_key] - 1
        if held:
            self._held[host_key] = held
        else:
            del self._held[host_key]  # the dict holds only the peers connected now
