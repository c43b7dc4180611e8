"""Feedback's graph writes taken off the request: a queue and one writer thread.

With a large embedded graph one upsert rewrites the changed edge arrays (a rating into the 500K
synthetic graph's 4M ratings: about 2 s on a loaded two-core machine,
``experiments/bench/graph_writes.py``), too slow to make in front of every feedback request.
``BackgroundHistory`` is a ``FeedbackHistory`` whose ``apply`` only queues the events; one
thread waits ``delay`` seconds after the first queued event (so a burst becomes one upsert),
then writes everything queued, in arrival order, in one upsert, and reports the changed users
as before. The request answers once Redis has the events (the learner's copy); the graph, and
so the user's next slate, has them within about ``delay`` plus one upsert. ``flush`` waits for
what is queued; ``close`` (at shutdown) flushes and stops. Set by
MARQUEE_FEEDBACK_GRAPH_DELAY_SECONDS; unset, every request writes before it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from features.graph.store import GraphStore
from serving.feedback.graph_history import FeedbackHistory, UserOf
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)


class BackgroundHistory(FeedbackHistory):
    """``FeedbackHistory`` with its writes queued and made by one thread (module doc)."""

    def __init__(
        self,
        store: GraphStore,
        on_changed: Callable[[Iterable[str]], None] | None = None,
        user_of: UserOf | None = None,
        *,
        delay: float = 1.0,
    ) -> None:
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
        super().__init__(store, on_changed=on_changed, user_of=user_of)
        self.delay = delay
        self._queue: list[FeedbackEvent] = []
        self._cond = threading.Condition()
        self._writing = False
        self._hurry = False  # flush or close: write now, without the delay
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="feedback-graph", daemon=True)
        self._thread.start()

    def apply(self, events: Sequence[FeedbackEvent]) -> list[str]:
        """Queue the events for the writer; returns no users (they are reported when written)."""
        if not events:
            return []
        with self._cond:
            if self._closed:
                raise RuntimeError("the feedback graph writer is closed")
            self._queue.extend(events)
            self._cond.notify_all()
        return []

    def pending(self) -> int:
        """Events queued and not yet written."""
        with self._cond:
            return len(self._queue) + (1 if self._writing else 0)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is written; False on ``timeout``."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._queue:
                self._hurry = True
                self._cond.notify_all()
            while self._queue or self._writing:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and nothing left
                deadline = time.monotonic() + self.delay  # let a burst gather
                while not (self._closed or self._hurry):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._queue = self._queue, []
                self._writing, self._hurry = True, False
            try:
                FeedbackHistory.apply(self, batch)  # logs and swallows store failures
            except Exception:
                log.exception("feedback: %d events not written to the graph", len(batch))
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
