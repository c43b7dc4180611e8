"""A circuit breaker for the service's Redis: it opens on the first timeout or lost connection,
and while it is open nothing waits on Redis (slates are served without logging, feedback goes
straight to the fsynced spool). Only the background probe (serving.app's replay loop) tries
Redis again, and closes it when Redis answers. So a hung Redis (a network partition, a SIGSTOP)
costs one request its timeout, not every request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)

# A Redis Cluster that cannot serve a slot (its master down, the cluster failed or resharding)
# is down for that call too: redis-py's ClusterError, TRYAGAIN, or a slot no node covers.
REDIS_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)

# Refused by the client itself (its pool is full), not a sign that Redis is down: the call
# fails, the breaker stays closed.
LOCAL_LIMITS = (redis.exceptions.MaxConnectionsError,)

T = TypeVar("T")


class BreakerOpen(redis.ConnectionError):
    """Redis was not tried: the breaker is open. A ConnectionError, so callers that already
    treat a down Redis (spool, skip the log) handle it the same way, without the wait."""


class CircuitBreaker:
    """Thread-safe open/closed state with the reason it opened (for /readyz)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._reason: str | None = None
        self._since = 0.0

    @property
    def is_open(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """Why it is open (None when closed)."""
        return self._reason

    def open_for(self) -> float:
        """Seconds since it opened (0 when closed)."""
        return self._clock() - self._since if self._reason is not None else 0.0

    def trip(self, exc: BaseException) -> None:
        with self._lock:
            if self._reason is None:
                self._since = self._clock()
                log.warning("redis circuit breaker open: %s", type(exc).__name__)
            self._reason = f"redis {type(exc).__name__} at the last attempt"

    def reset(self) -> None:
        with self._lock:
            if self._reason is not None:
                log.info("redis circuit breaker closed after %.1f s", self.open_for())
            self._reason = None

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` unless open (then BreakerOpen at once); a Redis timeout or lost connection
        opens the breaker and is re-raised (a full client pool, ``LOCAL_LIMITS``, is only
        re-raised)."""
        if self._reason is not None:
            raise BreakerOpen(self._reason)
        try:
            return fn()
        except REDIS_DOWN as exc:
            self._failed(exc)
            raise

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``call`` for a coroutine function, awaited (the asyncio client's calls)."""
        if self._reason is not None:
            raise BreakerOpen(self._reason)
        try:
            return await fn()
        except REDIS_DOWN as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: BaseException) -> None:
        """A call failed with a Redis-down error: open, unless the client refused it itself."""
        if not isinstance(exc, LOCAL_LIMITS):
            self.trip(exc)

    def probe(self, ping: Callable[[], object]) -> bool:
        """Try Redis once (the background loop does, never a request); closes on success."""
        try:
            ping()
        except REDIS_DOWN as exc:
            self.trip(exc)
            return False
        self.reset()
        return True
