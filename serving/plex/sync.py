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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from plexapi.server import PlexServer
from plexapi.video import Movie

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind, slug
from features.graph.store import GraphStore
from serving.feedback.sink import FeedbackSink
from serving.plex.client import plex_errors, safe_url
from serving.plex.events import history_event, rating_event, to_epoch
from serving.plex.ids import MovieIndex, PlexRef, make_ref, user_key
from serving.plex.state import PlexState, load_state, save_state
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)

DETAIL_BATCH = 50  # ratingKeys per /library/metadata/k1,k2,... request
OWNER_ACCOUNT_ID = 1  # the server owner's local account id
PLACEHOLDER_LIBRARY = "Recommendations"  # serving.plex.placeholders.LIBRARY_NAME: not real movies


@dataclass
class SyncReport:
    """What one sync saw and stored."""

    movies: int = 0  # movie vertices upserted
    new_movies: int = 0  # of which the graph did not hold before
    watched: int = 0
    rated: int = 0
    events: int = 0  # feedback events built
    events_new: int = 0  # of which the sink had not seen
    skipped_history: int = 0  # history entries for items that are not movies we know
    watermarks: dict[str, Any] = field(default_factory=dict)


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
        """Sync what changed since the last run (everything with ``full``). Raises PlexError."""
        state = load_state(self.state_file)
        if full:
            state = PlexState(movie_keys=state.movie_keys)
        accounts = self._accounts()
        owner = accounts[OWNER_ACCOUNT_ID]
        with plex_errors(self._url, "listing libraries"):
            sections = [
                s
                for s in self.server.library.sections()
                if s.type == "movie" and s.title not in self.exclude_sections
            ]

        existing = self.store.vertex_frame(VertexKind.MOVIE).set_index("key", drop=False)
        index = MovieIndex(existing, state.movie_keys)
        new_state = PlexState(
            library_updated_at=dict(state.library_updated_at),
            history_viewed_at=state.history_viewed_at,
            poll_viewed_at=state.poll_viewed_at,
            rated_at=state.rated_at,
            movie_keys=dict(state.movie_keys),
        )

        changed: dict[int, Movie] = {}
        rated: dict[int, Movie] = {}
        viewed: dict[int, Movie] = {}
        for section in sections:
            skey = str(section.key)
            wm = state.library_updated_at.get(skey, 0)
            for m in self._list(skey, {"updatedAt>>": wm} if wm else None):
                changed[m.ratingKey] = m
                new_state.library_updated_at[skey] = max(
                    new_state.library_updated_at.get(skey, 0), to_epoch(m.updatedAt or m.addedAt)
                )
            rflt = {"lastRatedAt>>": state.rated_at} if state.rated_at else {"userRating>>": 0}
            rated.update({m.ratingKey: m for m in self._list(skey, rflt) if m.userRating})
            vflt = {"lastViewedAt>>": state.history_viewed_at} if state.history_viewed_at else None
            viewed.update({m.ratingKey: m for m in self._list(skey, vflt) if m.viewCount})

        batch = GraphBatch()
        report = SyncReport()
        known: dict[int, str] = {}  # ratingKey -> graph key, for movies that will exist
        movie_rows: list[dict[str, Any]] = []
        people: dict[str, str] = {}
        genres: dict[str, str] = {}
        edges: dict[EdgeKind, list[dict[str, Any]]] = {k: [] for k in EdgeKind}
        for movie in self._details(sorted(changed)):
            ref = self.ref(movie)
            key = index.find(ref)
            if key is None:
                key = index.resolve(ref)
                report.new_movies += int(key not in existing.index)
            index.add(key, imdb_id=ref.imdb_id, tmdb_id=ref.tmdb_id, title=ref.title, year=ref.year)
            known[movie.ratingKey] = key
            new_state.movie_keys[str(movie.ratingKey)] = key
            movie_rows.append(self._movie_row(key, ref, movie, existing))
            for name in _tags(movie.genres):
                genres[slug(name)] = name
                edges[EdgeKind.IN_GENRE].append({"src": key, "dst": slug(name)})
            for kind, tags in (
                (EdgeKind.DIRECTED, _tags(movie.directors)),
                (EdgeKind.WROTE, _tags(movie.writers)),
                (EdgeKind.ACTED_IN, _tags(movie.roles)),
            ):
                for order, name in enumerate(tags):
                    people[slug(name)] = name
                    row: dict[str, Any] = {"src": slug(name), "dst": key}
                    if kind is EdgeKind.ACTED_IN:
                        row["order"] = order
                    edges[kind].append(row)

        def graph_key(rating_key: int) -> str | None:
            if rating_key in known:
                return known[rating_key]
            key = state.movie_keys.get(str(rating_key))
            return key if key is not None and key in existing.index else None

        users: dict[str, str] = {}
        events: list[FeedbackEvent] = []
        watched: dict[tuple[str, str], int] = {}
        for entry in self._history(state.history_viewed_at):
            hkey = graph_key(entry.ratingKey)
            account = accounts.get(entry.accountID)
            if hkey is None or account is None:
                report.skipped_history += 1
                continue
            ukey = user_key(account)
            users[ukey] = account
            ts = to_epoch(entry.viewedAt)
            watched[(ukey, hkey)] = max(watched.get((ukey, hkey), 0), ts)
            new_state.history_viewed_at = max(new_state.history_viewed_at, ts)
            events.append(
                history_event(
                    account_id=entry.accountID,
                    user=ukey,
                    movie=hkey,
                    rating_key=entry.ratingKey,
                    viewed_at=ts,
                )
            )
        owner_key = user_key(owner)
        for m in viewed.values():
            mkey = graph_key(m.ratingKey)
            if mkey is not None and m.lastViewedAt is not None:
                users[owner_key] = owner
                ts = to_epoch(m.lastViewedAt)
                watched[(owner_key, mkey)] = max(watched.get((owner_key, mkey), 0), ts)
                new_state.history_viewed_at = max(new_state.history_viewed_at, ts)
        for (ukey, mkey), ts in watched.items():
            edges[EdgeKind.WATCHED].append(
                {"src": ukey, "dst": mkey, "timestamp": ts, "completion": 100.0}
            )
        for m in rated.values():
            mkey = graph_key(m.ratingKey)
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
            users[owner_key] = owner
            ts = to_epoch(m.lastRatedAt)
            new_state.rated_at = max(new_state.rated_at, ts)
            edges[EdgeKind.RATED].append(
                {"src": owner_key, "dst": mkey, "rating": event.rating, "timestamp": ts}
            )
            events.append(event)

        if movie_rows:
            batch.add_vertices(VertexKind.MOVIE, pd.DataFrame(movie_rows))
        if people:
            batch.add_vertices(
                VertexKind.PERSON,
                pd.DataFrame({"key": list(people), "name": list(people.values())}),
            )
        if genres:
            batch.add_vertices(
                VertexKind.GENRE, pd.DataFrame({"key": list(genres), "name": list(genres.values())})
            )
        if users:
            batch.add_vertices(
                VertexKind.USER, pd.DataFrame({"key": list(users), "name": list(users.values())})
            )
        for kind, rows in edges.items():
            if rows:
                batch.add_edges(kind, pd.DataFrame(rows))
        batch = batch.deduplicated()

        if len(batch):
            self.store.upsert(batch)
        report.movies = len(movie_rows)
        report.watched = len(edges[EdgeKind.WATCHED])
        report.rated = len(edges[EdgeKind.RATED])
        report.events = len(events)
        if self.sink is not None and events:
            report.events_new = self.sink.submit(events)
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
