"""Browsing the whole catalogue, not only a user's slate: every graph movie, filtered by genre,
decade and title, most liked first, with what the user has seen hidden or marked.

The catalogue (keys, titles, years, genres, how many people liked each) is built from the graph
and kept for ``ttl`` seconds: browsing never reads all ratings per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore, UnknownVertexError
from features.popularity import liked_counts

log = logging.getLogger(__name__)


def decade_of(text: str | None) -> int | None:
    """A decade from a filter form ("1990"); None for "" ("Any decade", which a GET form sends
    as an empty value) or anything that is not a year from 1880 to 2100."""
    value = (text or "").strip()
    if not value.isdigit() or not 1880 <= int(value) <= 2100:
        return None
    return int(value) // 10 * 10


def build_catalogue(store: GraphStore) -> pd.DataFrame:
    """One row per graph movie: key, title, year, genres ("A|B"), liked (count), most liked
    first, then by title."""
    movies = store.vertex_frame(VertexKind.MOVIE).reset_index(drop=True)
    n = len(movies)
    frame = pd.DataFrame(
        {
            "key": _column(movies, "key", "").astype(str),
            "title": _column(movies, "title", "").astype(str),
            "year": pd.to_numeric(_column(movies, "year", 0), errors="coerce")
            .fillna(0)
            .astype(int),
            "genres": _column(movies, "genres", "").fillna("").astype(str),
        }
    )
    frame.loc[frame["title"].isin(["", "nan", "None"]), "title"] = frame["key"]
    liked = liked_counts(store.edge_frame(EdgeKind.RATED)) if n else pd.Series(dtype=int)
    frame["liked"] = frame["key"].map(liked).fillna(0).astype(int)
    frame["title_fold"] = frame["title"].str.casefold()
    return frame.sort_values(["liked", "title_fold", "key"], ascending=[False, True, True])


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in frame:
        return frame[name]
    return pd.Series([default] * len(frame), dtype=object)


@dataclass(frozen=True)
class UserSeen:
    """What a user did: ratings by movie, watched movies, dismissed movies (never shown)."""

    ratings: dict[str, float]
    watched: set[str]
    dismissed: set[str]

    @property
    def seen(self) -> set[str]:
        return set(self.ratings) | self.watched


def user_seen(store: GraphStore, user: str) -> UserSeen:
    """The user's rated, watched and not-interested movies (all empty for an unknown user)."""
    try:
        rated = store.neighbours(VertexKind.USER, user, EdgeKind.RATED, "out")
        watched = store.neighbours(VertexKind.USER, user, EdgeKind.WATCHED, "out")
        dismissed = store.neighbours(VertexKind.USER, user, EdgeKind.NOT_INTERESTED, "out")
    except UnknownVertexError:
        return UserSeen({}, set(), set())
    ratings = {}
    for nb in rated:
        try:
            ratings[nb.key] = float(nb.attrs.get("rating") or 0)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            ratings[nb.key] = 0.0
    return UserSeen(ratings, {nb.key for nb in watched}, {nb.key for nb in dismissed})


def select(
    catalogue: pd.DataFrame,
    *,
    genre: str | None = None,
    decade: int | None = None,
    q: str | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """The catalogue rows that pass the filters, in catalogue order."""
    keep = ~catalogue["key"].isin(exclude)
    if genre:
        keep &= catalogue["genres"].str.split("|").apply(lambda gs: genre in gs)
    if decade:
        keep &= (catalogue["year"] >= decade) & (catalogue["year"] < decade + 10)
    if q:
        keep &= catalogue["title_fold"].str.contains(q.casefold(), regex=False)
    return catalogue[keep]


class CatalogueCache:
    """The catalogue of one store, rebuilt when older than ``ttl`` seconds."""

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._built: tuple[float, int, pd.DataFrame] | None = None

    def get(self, store: GraphStore) -> pd.DataFrame:
        now = self._clock()
        with self._lock:
            built = self._built
            if built is not None and built[1] == id(store) and now - built[0] < self.ttl:
                return built[2]
            frame = build_catalogue(store)
            self._built = (now, id(store), frame)
            log.info("catalogue: %d movies", len(frame))
            return frame
