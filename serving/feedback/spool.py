"""Feedback that arrives while Redis is down goes to a local append-only file, and is replayed
into Redis when it is back: none lost (each append is fsynced before we answer), none doubled
(the Redis store is idempotent by event id, so a replay cut short can simply run again).

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

import redis
from pydantic import ValidationError

from serving.feedback.store import RedisFeedbackStore
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)

REPLAY_CHUNK = 500
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class SpoolingFeedbackSink:
    """A FeedbackSink: the Redis store when Redis answers, the spool file when it does not."""

    def __init__(self, store: RedisFeedbackStore, path: Path) -> None:
        self.store = store
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
        if not events:
            return 0
        if self.has_pending():
            try:
                self.replay()
            except REDIS_DOWN:
                return self._spool(events)
        try:
            return self.store.submit(events)
        except REDIS_DOWN as exc:
            log.warning(
                "redis unavailable (%s); spooling %d events", type(exc).__name__, len(events)
            )
            return self._spool(events)

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
        Raises redis errors if Redis is still down (the spool is then left as it was)."""
        with self._locked():
            if not self.has_pending():
                return 0
            new = 0
            chunk: list[FeedbackEvent] = []
            for event in self._read():
                chunk.append(event)
                if len(chunk) >= REPLAY_CHUNK:
                    new += self.store.submit(chunk)
                    chunk = []
            if chunk:
                new += self.store.submit(chunk)
            with open(self.path, "r+b") as fh:  # every line is in Redis now
                fh.truncate(0)
                os.fsync(fh.fileno())
        log.info("replayed spooled feedback: %d new events", new)
        return new

    def count(self) -> int:
        return self.store.count()
