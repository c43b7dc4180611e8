"""Feedback into the graph: the one place where a stored feedback event's history change
(serving.feedback.history.history_change) becomes the user's edges in the graph.

The service ranks a user from their history in the graph (features.history), so feedback that
only reached Redis left it unchanged: a movie rated through ``POST /v1/feedback`` or a Plex
webhook was offered again, from the same state. ``POST /v1/feedback``, the Plex webhook and the
web's card actions therefore hand their new events here once the sink has taken them:

- ``rated``: a RATED edge with the rating (an earlier rating of the movie is replaced);
- ``watched``: a WATCHED edge with the completion;
- ``not_interested``: a NOT_INTERESTED edge;
- ``click``, ``play``: a WATCHED edge with completion 0, and ``skipped``: a NOT_INTERESTED
  edge, each only when the movie is not in the user's history yet: they only mark it seen,
  and an edge already there says more;
- an event on a slate as a whole: nothing.

Edges carry the event's time, except that a rating joins the history as its latest, as the
learner's s' has it (features.history.with_rating): a rating timed no later than the user's
latest gets that time plus one second, so ratings arriving within one second (a batch, a fast
replay of the online loop) keep their arrival order, and the history's order never depends on
how many seconds apart they came. A user the graph does not hold gets a user vertex; a movie it
does not hold (a Plex item not synced yet) is left out. All of a request's edges go in one
upsert, then the users whose history changed are reported (``on_changed``: the precomputer
recomputes them). A store that refuses the write (a folder it cannot save to, ArangoDB down) is
logged and the request still succeeds: the events are stored for the learner either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import redis

from features.graph.batch import GraphBatch, GraphDataError
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore, GraphStoreError, UnknownVertexError
from serving.breaker import CircuitBreaker
from serving.feedback.history import history_change
from serving.feedback.sink import FeedbackSink
from serving.feedback.spool import SpoolingFeedbackSink
from serving.reclog import RecLog
from serving.schemas.feedback import FeedbackEvent, FeedbackType

log = logging.getLogger(__name__)

UserOf = Callable[[str], "str | None"]  # recommendation id -> the user it was served to

_SEEN_ONLY: dict[FeedbackType, EdgeKind] = {
    FeedbackType.CLICK: EdgeKind.WATCHED,
    FeedbackType.PLAY: EdgeKind.WATCHED,
    FeedbackType.SKIPPED: EdgeKind.NOT_INTERESTED,
}


def submit_with_flags(
    sink: FeedbackSink, events: Sequence[FeedbackEvent]
) -> tuple[list[bool], bool]:
    """Hand ``events`` to ``sink``: per event whether it was new, and whether the batch was
    spooled (Redis down: every spooled event counts as new, since which are duplicates is known
    only at replay; applying one twice to the graph writes the same edge again). A sink
    without ``submit_flags`` is given the events one at a time."""
    if isinstance(sink, SpoolingFeedbackSink):
        return sink.submit_flags_outcome(events)
    flags_of = getattr(sink, "submit_flags", None)
    if callable(flags_of):
        return [bool(f) for f in flags_of(events)], False
    return [sink.submit([event]) > 0 for event in events], False


def reclog_users(reclog: RecLog, breaker: CircuitBreaker | None = None) -> UserOf:
    """The user a logged recommendation was served to, from the slate log; None when it is
    unknown, expired, or Redis is down (never waits on an open breaker)."""

    def user_of(rec_id: str) -> str | None:
        try:
            rec = breaker.call(lambda: reclog.get(rec_id)) if breaker else reclog.get(rec_id)
        except redis.RedisError:
            return None
        return rec.user if rec is not None else None

    return user_of


class FeedbackHistory:
    """Writes feedback's history changes into ``store`` (module doc); ``on_changed`` hears the
    users whose history changed, ``user_of`` names the user of an event that gives only its
    recommendation id."""

    def __init__(
        self,
        store: GraphStore,
        on_changed: Callable[[Iterable[str]], None] | None = None,
        user_of: UserOf | None = None,
    ) -> None:
        self.store = store
        self.on_changed = on_changed
        self.user_of = user_of

    def _user(self, event: FeedbackEvent) -> str | None:
        if event.user is not None:
            return event.user
        if event.recommendation_id is not None and self.user_of is not None:
            return self.user_of(event.recommendation_id)
        return None

    def _known(self, user: str) -> tuple[bool, set[str], int | None]:
        """Whether the graph holds the user, the movies in their history, and the time of
        their latest rating (None: none)."""
        try:
            found = self.store.user_movies(user)
        except UnknownVertexError:
            return False, set(), None
        stamps = found.timestamps[np.isfinite(found.timestamps)]
        latest = int(stamps.max()) if stamps.shape[0] else None
        return True, {str(m) for m in found.rated} | {str(m) for m in found.seen}, latest

    def batch(self, events: Sequence[FeedbackEvent]) -> tuple[GraphBatch, list[str]]:
        """The edges (and new user vertices) the events mean, and the users they touch."""
        rows: dict[EdgeKind, list[dict[str, Any]]] = {}
        users: dict[str, set[str]] = {}  # user -> movies in their history (with this batch)
        latest: dict[str, int | None] = {}  # user -> time of their latest rating
        new_users: list[str] = []
        movies: dict[str, bool] = {}
        for event in events:
            change = history_change(event)
            movie = change.movie
            if movie is None:
                continue
            user = self._user(event)
            if user is None:
                log.debug("event %s: no user known; the graph is unchanged", event.event_id)
                continue
            if movie not in movies:
                movies[movie] = self.store.vertex(VertexKind.MOVIE, movie) is not None
            if not movies[movie]:
                log.debug("event %s: movie %r not in the graph", event.event_id, movie)
                continue
            if user not in users:
                known, users[user], latest[user] = self._known(user)
                if not known:
                    new_users.append(user)
            now = int(event.timestamp.timestamp())
            row: dict[str, Any] = {"src": user, "dst": movie, "timestamp": now}
            if event.type is FeedbackType.RATED:
                kind, row["rating"] = EdgeKind.RATED, float(change.rating or 0.0)
                last = latest[user]
                if last is not None and now <= last:
                    row["timestamp"] = now = last + 1  # joins the history as its latest rating
                latest[user] = now
            elif event.type is FeedbackType.WATCHED:
                kind, row["completion"] = EdgeKind.WATCHED, float(event.completion or 0.0)
            elif event.type is FeedbackType.NOT_INTERESTED:
                kind = EdgeKind.NOT_INTERESTED
            else:
                if movie in users[user]:
                    continue  # only marks it seen, and it already is
                kind = _SEEN_ONLY[event.type]
                if kind is EdgeKind.WATCHED:
                    row["completion"] = 0.0
            rows.setdefault(kind, []).append(row)
            users[user].add(movie)
        batch = GraphBatch()
        if new_users:
            frame = pd.DataFrame({"key": new_users, "name": new_users})
            batch.add_vertices(VertexKind.USER, frame)
        for kind, kind_rows in rows.items():
            batch.add_edges(kind, pd.DataFrame(kind_rows))
        touched = sorted({row["src"] for kind_rows in rows.values() for row in kind_rows})
        return batch, touched

    def apply(self, events: Sequence[FeedbackEvent]) -> list[str]:
        """Write the events' history changes in one upsert; the users whose history changed
        (reported to ``on_changed``). A refused write is logged, never raised."""
        try:
            batch, users = self.batch(events)
            if not users:
                return []
            report = self.store.upsert(batch)
        except (GraphStoreError, GraphDataError, OSError) as exc:
            log.warning(
                "feedback: %d events stored but not written to the graph (%s: %s); the users' "
                "next slates do not know them",
                len(events),
                type(exc).__name__,
                exc,
            )
            return []
        except Exception:  # the events are stored: a graph failure must not fail the request
            log.exception("feedback: %d events stored but not written to the graph", len(events))
            return []
        if not report.changed:
            return []
        if self.on_changed is not None:
            self.on_changed(users)
        return users

    def apply_new(self, events: Sequence[FeedbackEvent], flags: Sequence[bool]) -> list[str]:
        """``apply`` to the events flagged new (duplicates were applied when first stored)."""
        return self.apply([e for e, new in zip(events, flags, strict=True) if new])
