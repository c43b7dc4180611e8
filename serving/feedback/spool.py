"""Feedback that arrives while Redis is down goes to a local append-only file, and is replayed
into Redis when it is back: none lost (each append is fsynced before we answer), none doubled
(the Redis store is idempotent by event id, so a replay cut short can simply run again).

Redis is tried through a circuit breaker (serving.breaker): after the first timeout, events go
straight to the spool without waiting on Redis, and replay runs only in the background (the
app's replay loop), never in front of a submit, so a hung Redis never queues requests.

The spool holds one JSON event per line. A line left half-written by a crash is skipped with a
warning naming its line number; every whole line is replayed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from serving.breaker import REDIS_DOWN, BreakerOpen, CircuitBreaker
from serving.feedback.store import RedisFeedbackStore
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)

REPLAY_CHUNK = 500
__all__ = ["REDIS_DOWN", "SpoolingFeedbackSink"]


class SpoolingFeedbackSink:
    """A FeedbackSink: the Redis store when Redis answers, the spool file when it does not."""

    def __init__(
        self, store: RedisFeedbackStore, path: Path, breaker: CircuitBreaker | None = None
    ) -> None:
        self.store = store
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across threads and processes (several workers may share the spool)."""
        with self._lock, open(self._lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def pending(self) -> int:
        """Whole events waiting in the spool."""
        with self._locked():
            return sum(1 for _ in self._read())

    def has_pending(self) -> bool:
        """Cheap check: is anything in the spool file (whole or torn)?"""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def submit(self, events: Sequence[FeedbackEvent]) -> int:
        """New events stored in Redis, or, when Redis is down, the number spooled."""
        return self.submit_outcome(events)[0]

    def submit_outcome(self, events: Sequence[FeedbackEvent]) -> tuple[int, bool]:
        """(new events stored in Redis, False), or (events spooled, True) when Redis is down
        or the breaker is open. Spooled events are on disk (fsynced) when this returns."""
        flags, spooled = self.submit_flags_outcome(events)
        return sum(flags), spooled

    def submit_flags_outcome(self, events: Sequence[FeedbackEvent]) -> tuple[list[bool], bool]:
        """As ``submit_outcome``, per event: whether it was new in Redis; when spooled, every
        event is flagged (which are duplicates is known only when they are replayed)."""
        if not events:
            return [], False
        try:
            return self.breaker.call(lambda: self.store.submit_flags(events)), False
        except REDIS_DOWN as exc:
            if not isinstance(exc, BreakerOpen):
                log.warning(
                    "redis unavailable (%s); spooling %d events", type(exc).__name__, len(events)
                )
            return [True] * self._spool(events), True

    def _spool(self, events: Sequence[FeedbackEvent]) -> int:
        data = "".join(e.model_dump_json() + "\n" for e in events).encode()
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(events)

    def _read(self) -> Iterator[FeedbackEvent]:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below; a generator
        except FileNotFoundError:
            return
        with fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield FeedbackEvent.model_validate_json(line)
                except ValidationError as exc:
                    log.warning("%s line %d: skipped, not an event (%s)", self.path, number, exc)

    def replay(self) -> int:
        """Move spooled events into Redis, then empty the spool; returns how many were new.
        Raises redis errors if Redis is still down (the spool is then left as it was). With the
        breaker open it first tries Redis once (a PING), and closes the breaker if it answers."""
        if self.breaker.is_open and not self.breaker.probe(self.store.client.ping):
            raise BreakerOpen(self.breaker.reason or "redis down")
        with self._locked():
            if not self.has_pending():
                return 0
            new = 0
            chunk: list[FeedbackEvent] = []
            for event in self._read():
                chunk.append(event)
                if len(chunk) >= REPLAY_CHUNK:
                    new += self._submit_chunk(chunk)
                    chunk = []
            if chunk:
                new += self._submit_chunk(chunk)
            with open(self.path, "r+b") as fh:  # every line is in Redis now
                fh.truncate(0)
                os.fsync(fh.fileno())
        log.info("replayed spooled feedback: %d new events", new)
        return new

    def _submit_chunk(self, chunk: list[FeedbackEvent]) -> int:
        return self.breaker.call(lambda: self.store.submit(chunk))

    def count(self) -> int:
        return self.store.count()
