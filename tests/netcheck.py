"""What this machine's network allows, for tests that skip when it doesn't."""

from __future__ import annotations

import socket

import pytest


def has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6_loopback = pytest.mark.skipif(
    not has_ipv6_loopback(), reason="no IPv6 on the loopback interface"
)
