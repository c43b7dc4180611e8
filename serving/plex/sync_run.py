"""What one Plex sync builds: its report, the library listings and its working set.

``SyncRun`` holds the saved watermarks and the next ones, the movie index, and the graph batch
and feedback events the passes of serving.plex.sync.PlexSync add to; ``batch()`` turns it into
one GraphBatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from plexapi.video import Movie

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind
from serving.plex.ids import MovieIndex
from serving.plex.state import PlexState
from serving.schemas.feedback import FeedbackEvent


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


@dataclass
class SyncScan:
    """What the library listings returned, by ratingKey, and the libraries' new watermarks."""

    changed: dict[int, Movie] = field(default_factory=dict)
    rated: dict[int, Movie] = field(default_factory=dict)
    viewed: dict[int, Movie] = field(default_factory=dict)
    library_updated_at: dict[str, int] = field(default_factory=dict)


@dataclass
class SyncRun:
    """One sync's working set: the saved state, the next one, and the batch being built."""

    state: PlexState
    new_state: PlexState
    existing: pd.DataFrame  # the graph's movie vertices, by key
    index: MovieIndex
    report: SyncReport = field(default_factory=SyncReport)
    known: dict[int, str] = field(default_factory=dict)  # ratingKey -> key, synced this run
    movie_rows: list[dict[str, Any]] = field(default_factory=list)
    people: dict[str, str] = field(default_factory=dict)
    genres: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    edges: dict[EdgeKind, list[dict[str, Any]]] = field(
        default_factory=lambda: {k: [] for k in EdgeKind}
    )
    events: list[FeedbackEvent] = field(default_factory=list)

    @classmethod
    def start(cls, state: PlexState, movies: pd.DataFrame) -> SyncRun:
        existing = movies.set_index("key", drop=False)
        return cls(
            state=state,
            new_state=PlexState(
                library_updated_at=dict(state.library_updated_at),
                history_viewed_at=state.history_viewed_at,
                poll_viewed_at=state.poll_viewed_at,
                rated_at=state.rated_at,
                movie_keys=dict(state.movie_keys),
            ),
            existing=existing,
            index=MovieIndex(existing, state.movie_keys),
        )

    def graph_key(self, rating_key: int) -> str | None:
        """The graph key of a Plex movie synced now or before (and still in the graph)."""
        if rating_key in self.known:
            return self.known[rating_key]
        key = self.state.movie_keys.get(str(rating_key))
        return key if key is not None and key in self.existing.index else None

    def batch(self) -> GraphBatch:
        batch = GraphBatch()
        if self.movie_rows:
            batch.add_vertices(VertexKind.MOVIE, pd.DataFrame(self.movie_rows))
        for vkind, names in (
            (VertexKind.PERSON, self.people),
            (VertexKind.GENRE, self.genres),
            (VertexKind.USER, self.users),
        ):
            if names:
                batch.add_vertices(
                    vkind, pd.DataFrame({"key": list(names), "name": list(names.values())})
                )
        for ekind, rows in self.edges.items():
            if rows:
                batch.add_edges(ekind, pd.DataFrame(rows))
        return batch.deduplicated()
