"""Plex library and watch history -> the movie graph (and feedback events).

From every movie library: each movie with its ids, genres, directors, writers, actors, studio,
year, summary and poster; from every account's history, and the owner's ratings and views:
watched and rated edges, plus the matching FeedbackEvents. Incremental by default: only items
whose updatedAt / lastViewedAt / lastRatedAt passed the saved watermarks, and history since the
last viewedAt. The watermarks are saved only after the graph accepted the whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from plexapi.server import PlexServer
from plexapi.video import Movie

from features.graph.schema import EdgeKind, VertexKind, slug
from features.graph.store import GraphStore
from serving.feedback.sink import FeedbackSink
from serving.plex.client import plex_errors, safe_url
from serving.plex.events import history_event, rating_event, to_epoch
from serving.plex.ids import PlexRef, make_ref, user_key
from serving.plex.state import PlexState, load_state, save_state
from serving.plex.sync_run import SyncReport, SyncRun, SyncScan

log = logging.getLogger(__name__)

DETAIL_BATCH = 50  # ratingKeys per /library/metadata/k1,k2,... request
OWNER_ACCOUNT_ID = 1  # the server owner's local account id
PLACEHOLDER_LIBRARY = "Recommendations"  # serving.plex.placeholders.LIBRARY_NAME: not real movies


def _quiet(items: Iterable[Any]) -> list[Any]:
    """plexapi objects with auto-reload off: every attribute we read is in the XML we fetched."""
    out = list(items)
    for item in out:
        item._autoReload = False
    return out


def _tags(items: Sequence[Any] | None) -> list[str]:
    return [str(t.tag).strip() for t in (items or []) if getattr(t, "tag", None)]


class PlexSync:
    """One Plex server synced into one graph store; state kept in ``state_file``."""

    def __init__(
        self,
        server: PlexServer,
        store: GraphStore,
        state_file: Path,
        *,
        sink: FeedbackSink | None = None,
        exclude_sections: Sequence[str] = (PLACEHOLDER_LIBRARY,),
    ) -> None:
        self.server = server
        self.exclude_sections = set(exclude_sections)
        self.store = store
        self.state_file = state_file
        self.sink = sink
        self._url = safe_url(server._baseurl)

    # -- reading Plex ---------------------------------------------------------------------------

    def _accounts(self) -> dict[int, str]:
        with plex_errors(self._url, "listing accounts"):
            accounts = {a.id: a.name for a in self.server.systemAccounts() if a.name}
        if OWNER_ACCOUNT_ID not in accounts:
            accounts[OWNER_ACCOUNT_ID] = self.server.myPlexUsername or "owner"
        return accounts

    def _list(self, section_key: str, flt: dict[str, int] | None) -> list[Movie]:
        params: dict[str, Any] = {"type": 1, "includeGuids": 1, **(flt or {})}
        with plex_errors(self._url, f"listing library section {section_key}"):
            items = self.server.fetchItems(
                f"/library/sections/{section_key}/all", cls=Movie, params=params
            )
        return _quiet(items)

    def _details(self, rating_keys: list[int]) -> list[Movie]:
        out: list[Movie] = []
        for i in range(0, len(rating_keys), DETAIL_BATCH):
            chunk = rating_keys[i : i + DETAIL_BATCH]
            with plex_errors(self._url, f"fetching details of {len(chunk)} movies"):
                out.extend(_quiet(self.server.fetchItems(chunk, cls=Movie)))
        return out

    def _history(self, since: int) -> list[Any]:
        from datetime import datetime

        mindate = datetime.fromtimestamp(since) if since else None
        with plex_errors(self._url, "reading watch history"):
            entries = _quiet(self.server.history(mindate=mindate))
        return [e for e in entries if e.type == "movie"]

    # -- building the batch ---------------------------------------------------------------------

    @staticmethod
    def ref(movie: Movie) -> PlexRef:
        guids = [g.id for g in (movie.guids or [])]
        if movie.guid:
            guids.append(movie.guid)
        return make_ref(movie.ratingKey, movie.title, movie.year, guids)

    def run(self, *, full: bool = False) -> SyncReport:
        """Sync what changed since the last run (everything with ``full``). Raises PlexError.

        Three passes fill one batch: the library (changed movies and their people and
        genres), the history (every account's views, the owner's viewed movies) and the
        ratings (the owner's); then the graph takes the batch, the sink the events, and only
        then are the new watermarks saved."""
        state = load_state(self.state_file)
        if full:
            state = PlexState(movie_keys=state.movie_keys)
        accounts = self._accounts()
        scan = self._scan(state)
        run = SyncRun.start(state, self.store.vertex_frame(VertexKind.MOVIE))
        run.new_state.library_updated_at.update(scan.library_updated_at)
        self._library_pass(run, scan.changed)
        self._history_pass(run, accounts, scan.viewed)
        self._ratings_pass(run, accounts[OWNER_ACCOUNT_ID], scan.rated)
        return self._finish(run)

    def _sections(self) -> list[Any]:
        with plex_errors(self._url, "listing libraries"):
            return [
                s
                for s in self.server.library.sections()
                if s.type == "movie" and s.title not in self.exclude_sections
            ]

    def _scan(self, state: PlexState) -> SyncScan:
        """Per movie library: movies changed, rated and viewed since the watermarks."""
        scan = SyncScan()
        for section in self._sections():
            skey = str(section.key)
            wm = state.library_updated_at.get(skey, 0)
            for m in self._list(skey, {"updatedAt>>": wm} if wm else None):
                scan.changed[m.ratingKey] = m
                scan.library_updated_at[skey] = max(
                    scan.library_updated_at.get(skey, wm), to_epoch(m.updatedAt or m.addedAt)
                )
            rflt = {"lastRatedAt>>": state.rated_at} if state.rated_at else {"userRating>>": 0}
            scan.rated.update({m.ratingKey: m for m in self._list(skey, rflt) if m.userRating})
            vflt = {"lastViewedAt>>": state.history_viewed_at} if state.history_viewed_at else None
            scan.viewed.update({m.ratingKey: m for m in self._list(skey, vflt) if m.viewCount})
        return scan

    def _library_pass(self, run: SyncRun, changed: dict[int, Movie]) -> None:
        """Changed movies (matched to graph keys or given new ones), people and genres."""
        for movie in self._details(sorted(changed)):
            ref = self.ref(movie)
            key = run.index.find(ref)
            if key is None:
                key = run.index.resolve(ref)
                run.report.new_movies += int(key not in run.existing.index)
            run.index.add(
                key, imdb_id=ref.imdb_id, tmdb_id=ref.tmdb_id, title=ref.title, year=ref.year
            )
            run.known[movie.ratingKey] = key
            run.new_state.movie_keys[str(movie.ratingKey)] = key
            run.movie_rows.append(self._movie_row(key, ref, movie, run.existing))
            for name in _tags(movie.genres):
                run.genres[slug(name)] = name
                run.edges[EdgeKind.IN_GENRE].append({"src": key, "dst": slug(name)})
            for kind, tags in (
                (EdgeKind.DIRECTED, _tags(movie.directors)),
                (EdgeKind.WROTE, _tags(movie.writers)),
                (EdgeKind.ACTED_IN, _tags(movie.roles)),
            ):
                for order, name in enumerate(tags):
                    run.people[slug(name)] = name
                    row: dict[str, Any] = {"src": slug(name), "dst": key}
                    if kind is EdgeKind.ACTED_IN:
                        row["order"] = order
                    run.edges[kind].append(row)

    def _history_pass(
        self, run: SyncRun, accounts: dict[int, str], viewed: dict[int, Movie]
    ) -> None:
        """Watched edges and events from every account's history, and the owner's views."""
        watched: dict[tuple[str, str], int] = {}
        for entry in self._history(run.state.history_viewed_at):
            hkey = run.graph_key(entry.ratingKey)
            account = accounts.get(entry.accountID)
            if hkey is None or account is None:
                run.report.skipped_history += 1
                continue
            ukey = user_key(account)
            run.users[ukey] = account
            ts = to_epoch(entry.viewedAt)
            watched[(ukey, hkey)] = max(watched.get((ukey, hkey), 0), ts)
            run.new_state.history_viewed_at = max(run.new_state.history_viewed_at, ts)
            run.events.append(
                history_event(
                    account_id=entry.accountID,
                    user=ukey,
                    movie=hkey,
                    rating_key=entry.ratingKey,
                    viewed_at=ts,
                )
            )
        owner = accounts[OWNER_ACCOUNT_ID]
        owner_key = user_key(owner)
        for m in viewed.values():
            mkey = run.graph_key(m.ratingKey)
            if mkey is not None and m.lastViewedAt is not None:
                run.users[owner_key] = owner
                ts = to_epoch(m.lastViewedAt)
                watched[(owner_key, mkey)] = max(watched.get((owner_key, mkey), 0), ts)
                run.new_state.history_viewed_at = max(run.new_state.history_viewed_at, ts)
        for (ukey, mkey), ts in watched.items():
            run.edges[EdgeKind.WATCHED].append(
                {"src": ukey, "dst": mkey, "timestamp": ts, "completion": 100.0}
            )

    def _ratings_pass(self, run: SyncRun, owner: str, rated: dict[int, Movie]) -> None:
        """Rated edges and events from the owner's ratings."""
        owner_key = user_key(owner)
        for m in rated.values():
            mkey = run.graph_key(m.ratingKey)
            event = None
            if mkey is not None:
                event = rating_event(
                    account_id=OWNER_ACCOUNT_ID,
                    user=owner_key,
                    movie=mkey,
                    rating_key=m.ratingKey,
                    plex_rating=m.userRating,
                    rated_at=m.lastRatedAt,
                )
            if event is None or event.rating is None:
                continue
            run.users[owner_key] = owner
            ts = to_epoch(m.lastRatedAt)
            run.new_state.rated_at = max(run.new_state.rated_at, ts)
            run.edges[EdgeKind.RATED].append(
                {"src": owner_key, "dst": mkey, "rating": event.rating, "timestamp": ts}
            )
            run.events.append(event)

    def _finish(self, run: SyncRun) -> SyncReport:
        """Upsert the batch, submit the events, then save the watermarks."""
        batch = run.batch()
        if len(batch):
            self.store.upsert(batch)
        report, new_state = run.report, run.new_state
        report.movies = len(run.movie_rows)
        report.watched = len(run.edges[EdgeKind.WATCHED])
        report.rated = len(run.edges[EdgeKind.RATED])
        report.events = len(run.events)
        if self.sink is not None and run.events:
            report.events_new = self.sink.submit(run.events)
        save_state(self.state_file, new_state)
        report.watermarks = {
            "library_updated_at": new_state.library_updated_at,
            "history_viewed_at": new_state.history_viewed_at,
            "rated_at": new_state.rated_at,
        }
        log.info(
            "Plex sync: %d movies (%d new), %d watched, %d rated, %d events",
            report.movies,
            report.new_movies,
            report.watched,
            report.rated,
            report.events,
        )
        return report

    def _movie_row(
        self, key: str, ref: PlexRef, movie: Movie, existing: pd.DataFrame
    ) -> dict[str, Any]:
        """The movie vertex: Plex's values, but an existing vertex keeps what it already has."""
        plex = {
            "key": key,
            "title": ref.title,
            "year": ref.year,
            "imdb_id": ref.imdb_id,
            "tmdb_id": ref.tmdb_id,
            "genres": "|".join(_tags(movie.genres)),
            "poster_url": f"{self._url}{movie.thumb}" if movie.thumb else "",
            "countries": "|".join(_tags(movie.countries)),
            "summary": movie.summary or "",
            "studio": movie.studio or "",
        }
        if key not in existing.index:
            return plex
        old = existing.loc[key]
        row: dict[str, Any] = {"key": key}
        for col, value in plex.items():
            if col == "key":
                continue
            prev = old.get(col)
            keep = prev is not None and not pd.isna(prev) and prev not in ("", 0)
            row[col] = prev if keep else value
        return row
