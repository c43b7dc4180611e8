"""Rate limits for anonymous reads: each served slate is logged in Redis, so reads without the
API token are limited per client address (a token bucket: ``per_minute`` requests, refilled
evenly) when MARQUEE_ANONYMOUS_READS_PER_MINUTE is set. A request with the API token is never
limited. The buckets live in this process and are bounded (the least recently seen addresses
are forgotten first), so made-up addresses cannot grow memory either. The FastAPI side is
serving.deps.limit_anonymous_reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_MAX_CLIENTS = 10_000


class RateLimiter:
    """Token buckets by key: ``per_minute`` requests at once, then one every 60/per_minute s."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or max_clients < 1:
            raise ValueError(f"limits must be >= 1, got {per_minute}/min, {max_clients} clients")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> tokens, at
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one request for ``key``: 0.0 when allowed, else the seconds until it would be."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait
