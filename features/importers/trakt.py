"""A Trakt user's watched history and ratings as graph edges on the graph's own movies.

Trakt names each movie by its ids (``trakt``, ``slug``, ``imdb``, ``tmdb``); a history entry
or rating lands on the graph movie with the same IMDb id, else the same TMDB id. Entries that
match no graph movie are counted, never invented. Ratings are 1-10 on Trakt and become
0.5-5 stars (rating / 2); every play becomes one ``watched`` edge per movie (the latest play's
time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind
from features.importers.merge import FrameSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraktReport:
    """How the user's entries met the graph."""

    history: int  # plays read
    ratings: int  # ratings read
    watched: int  # movies with a watched edge
    rated: int  # movies with a rated edge
    unmatched: int  # entries whose movie the graph does not hold
    bad: int  # entries without a usable movie, time or rating (left out)


class MovieMatcher:
    """Graph movie keys by IMDb id and by TMDB id."""

    def __init__(self, graph: FrameSource) -> None:
        movies = graph.vertex_frame(VertexKind.MOVIE)
        keys = movies["key"].astype(str)
        imdb = movies["imdb_id"].astype(str)
        tmdb = pd.to_numeric(movies["tmdb_id"], errors="coerce").fillna(0).astype("int64")
        self.by_imdb = dict(zip(imdb[imdb != ""], keys[imdb != ""], strict=True))
        self.by_tmdb = dict(zip(tmdb[tmdb > 0], keys[tmdb > 0], strict=True))

    def key(self, movie: dict[str, Any]) -> str | None:
        ids = movie.get("ids") or {}
        imdb = str(ids.get("imdb") or "")
        if imdb in self.by_imdb:
            return self.by_imdb[imdb]
        tmdb = ids.get("tmdb")
        return self.by_tmdb.get(int(tmdb)) if isinstance(tmdb, int) else None


def epoch(stamp: object) -> int | None:
    """Seconds since the epoch of a Trakt ISO time ("2024-01-05T20:00:00.000Z"), else None."""
    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def trakt_batch(
    user: str,
    history: Iterable[dict[str, Any]],
    ratings: Iterable[dict[str, Any]],
    graph: FrameSource,
) -> tuple[GraphBatch, TraktReport]:
    """``watched`` and ``rated`` edges of ``user`` from Trakt's history and ratings rows."""
    match = MovieMatcher(graph)
    seen: dict[str, int] = {}
    rated: dict[str, tuple[float, int]] = {}
    n_hist = n_rat = unmatched = bad = 0
    for row in history:
        n_hist += 1
        when = epoch(row.get("watched_at"))
        movie = row.get("movie")
        if when is None or not isinstance(movie, dict):
            bad += 1
            continue
        key = match.key(movie)
        if key is None:
            unmatched += 1
            continue
        seen[key] = max(seen.get(key, 0), when)
    for row in ratings:
        n_rat += 1
        when = epoch(row.get("rated_at"))
        movie = row.get("movie")
        score = row.get("rating")
        if when is None or not isinstance(movie, dict) or not isinstance(score, int):
            bad += 1
            continue
        if not 1 <= score <= 10:
            bad += 1
            continue
        key = match.key(movie)
        if key is None:
            unmatched += 1
            continue
        if key not in rated or rated[key][1] < when:
            rated[key] = (score / 2.0, when)
    batch = GraphBatch()
    if seen or rated:
        batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": [user], "name": [user]}))
    if seen:
        batch.add_edges(
            EdgeKind.WATCHED,
            pd.DataFrame(
                {
                    "src": user,
                    "dst": list(seen),
                    "timestamp": list(seen.values()),
                    "completion": 100.0,
                }
            ),
        )
    if rated:
        batch.add_edges(
            EdgeKind.RATED,
            pd.DataFrame(
                {
                    "src": user,
                    "dst": list(rated),
                    "rating": [r for r, _ in rated.values()],
                    "timestamp": [t for _, t in rated.values()],
                }
            ),
        )
    report = TraktReport(n_hist, n_rat, len(seen), len(rated), unmatched, bad)
    log.info("Trakt: %s", report)
    return batch, report
