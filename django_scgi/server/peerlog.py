"""Warnings about misbehaving peers, rate-limited so that a flood cannot flood the log."""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

# Warnings about misbehaving peers (malformed requests, timeouts) allowed per
# REFUSED_LOG_INTERVAL; past that they are counted and summed up in one line. 5,000
# slowloris connections timing out together would otherwise write 5,000 lines.
PEER_WARNINGS_PER_INTERVAL = 100


class RateLimitedWarnings:
    """``logger.warning`` for peer trouble, at most ``limit`` lines per ``interval``."""

    def __init__(self, limit: int, interval: float) -> None:
        self.limit = limit
        self.interval = interval
        self._window_start = -interval
        self._logged = 0
        self._suppressed = 0

    def warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.interval:
            self._new_window(now)
        if self._logged < self.limit:
            self._logged += 1
            logger.warning(message, *args)
        else:
            self._suppressed += 1

    def _new_window(self, now: float) -> None:
        if self._suppressed:
            logger.warning("%d more warnings about peers were not logged in the last %ds.",
                           self._suppressed, self.interval)
        self._window_start, self._logged, self._suppressed = now, 0, 0


peer_warnings = RateLimitedWarnings(PEER_WARNINGS_PER_INTERVAL, 60.0)
