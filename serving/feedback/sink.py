"""Where feedback events go: a small protocol, and an in-process sink for embedded use and tests.

Every producer (HTTP, the Plex webhook, the Plex history poller, Plex sync) hands events to a
``FeedbackSink``; the service backs it with Redis. Sinks are idempotent on ``event_id`` so a
webhook delivered twice, or a history entry polled twice, is stored once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from serving.schemas.feedback import FeedbackEvent


@runtime_checkable
class FeedbackSink(Protocol):
    """Stores feedback events, once per ``event_id``."""

    def submit(self, events: Sequence[FeedbackEvent]) -> int:
        """Store the events not seen before; return how many were new."""
        ...


class InMemoryFeedbackSink:
    """A thread-safe in-process sink: events kept in arrival order, deduplicated by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, FeedbackEvent] = {}

    def submit(self, events: Sequence[FeedbackEvent]) -> int:
        return sum(self.submit_flags(events))

    def submit_flags(self, events: Sequence[FeedbackEvent]) -> list[bool]:
        """Store the events; per event, whether it was new."""
        flags: list[bool] = []
        with self._lock:
            for event in events:
                flags.append(event.event_id not in self._events)
                self._events.setdefault(event.event_id, event)
        return flags

    @property
    def events(self) -> list[FeedbackEvent]:
        """A snapshot of the stored events, oldest first."""
        with self._lock:
            return list(self._events.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
