"""A watch-history poller for Plex servers without Plex Pass (no webhooks).

Each poll reads /status/sessions/history/all since the last viewedAt it emitted, turns every
movie entry into a "watched" FeedbackEvent (the same ids `plex sync` gives, so the two dedupe)
and hands them to the sink; the watermark is saved only after the sink accepted them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from plexapi.exceptions import NotFound
from plexapi.server import PlexServer
from plexapi.video import Movie

from serving.feedback.sink import FeedbackSink
from serving.plex.client import plex_errors, safe_url
from serving.plex.events import history_event, to_epoch
from serving.plex.ids import MovieIndex, make_ref, user_key
from serving.plex.state import load_state, save_state
from serving.plex.sync import DETAIL_BATCH, PlexSync
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    events: int  # events built from this poll's window
    new: int  # of which the sink had not seen
    viewed_at: int  # the watermark after this poll


class HistoryPoller:
    """Polls one server's watch history into a feedback sink."""

    def __init__(
        self,
        server: PlexServer,
        sink: FeedbackSink,
        state_file: Path,
        *,
        index: MovieIndex | None = None,
    ) -> None:
        self.server = server
        self.sink = sink
        self.state_file = state_file
        self._index = index
        self._url = safe_url(server._baseurl)

    def poll_once(self) -> PollResult:
        """One poll. Raises PlexError when the server fails; the watermark is then unchanged."""
        state = load_state(self.state_file)
        index = self._index or MovieIndex(_empty_movies(), state.movie_keys)
        since = state.poll_viewed_at
        with plex_errors(self._url, "polling watch history"):
            accounts = {a.id: a.name for a in self.server.systemAccounts() if a.name}
            entries = list(
                self.server.history(mindate=datetime.fromtimestamp(since) if since else None)
            )
        movies = [
            e for e in entries
            if e.type == "movie" and e.viewedAt is not None and e.accountID in accounts
        ]  # fmt: skip
        for e in movies:
            e._autoReload = False
        learned = self._learn(index, {e.ratingKey for e in movies})
        events: list[FeedbackEvent] = []
        newest = since
        for entry in movies:
            rk = str(entry.ratingKey)
            movie = index.known(rk) or index.resolve(make_ref(rk, entry.title, entry.year, []))
            ts = to_epoch(entry.viewedAt)
            newest = max(newest, ts)
            events.append(
                history_event(
                    account_id=entry.accountID, user=user_key(accounts[entry.accountID]),
                    movie=movie, rating_key=entry.ratingKey, viewed_at=ts,
                )
            )  # fmt: skip
        new = self.sink.submit(events) if events else 0
        if newest != since or learned:
            state = load_state(self.state_file)  # sync may have saved meanwhile: keep its part
            state.poll_viewed_at = newest
            for rk, key in learned.items():
                state.movie_keys.setdefault(rk, key)
            save_state(self.state_file, state)
        log.info("Plex history poll: %d events, %d new", len(events), new)
        return PollResult(events=len(events), new=new, viewed_at=newest)

    def _learn(self, index: MovieIndex, rating_keys: set[int]) -> dict[str, str]:
        """Graph keys for ratingKeys not seen before: history entries carry no Guids, so fetch
        the items' ids (one request per batch) to match them as sync would."""
        unknown = sorted(rk for rk in rating_keys if index.known(str(rk)) is None)
        learned: dict[str, str] = {}
        for i in range(0, len(unknown), DETAIL_BATCH):
            chunk = unknown[i : i + DETAIL_BATCH]
            with plex_errors(self._url, f"fetching ids of {len(chunk)} watched movies"):
                try:
                    found = list(self.server.fetchItems(chunk, cls=Movie))
                except NotFound:  # every one of them was deleted since
                    found = []
            for m in found:
                m._autoReload = False
                key = index.resolve(PlexSync.ref(m))
                index.remember(str(m.ratingKey), key)
                learned[str(m.ratingKey)] = key
        return learned

    def run(self, interval: float, stop: threading.Event, max_polls: int | None = None) -> int:
        """Poll every ``interval`` seconds until ``stop`` is set (or ``max_polls`` are done);
        a failed poll is logged and retried at the next tick. Returns the number of new events."""
        total = 0
        polls = 0
        while not stop.is_set() and (max_polls is None or polls < max_polls):
            try:
                total += self.poll_once().new
            except Exception as exc:
                log.warning("Plex history poll failed: %s", exc)
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            stop.wait(interval)
        return total


def _empty_movies() -> pd.DataFrame:
    return pd.DataFrame({"key": [], "imdb_id": [], "tmdb_id": [], "title": [], "year": []})
