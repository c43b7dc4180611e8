"""LocalGraphStore: the embedded default graph store, in process, on numpy and scipy.sparse.

The graph lives in an immutable ``GraphState`` (features.graph.local_state) swapped in whole by
each upsert; queries are in features.graph.local_queries (explanations in local_explain); with
a folder, every upsert is saved there atomically (features.graph.local_files), rewriting only
the arrays the upsert changed (the others are linked from the last save).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from features.graph import hop_threads, local_explain
from features.graph import local_queries as q
from features.graph.batch import GraphBatch
from features.graph.explain_links import explain_links
from features.graph.local_files import (
    SavedFiles,
    folder_lock,
    load_saved,
    save_state,
    saved_data_name,
)
from features.graph.local_state import GraphState, apply_batch
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.graph.store import (
    SEEN_EDGES,
    Affinity,
    Direction,
    Explanation,
    GraphStore,
    GraphStoreError,
    Neighbour,
    UpsertReport,
    UserMovies,
)

log = logging.getLogger(__name__)


class LocalGraphStore(GraphStore):
    """The embedded GraphStore. With a ``path``, it loads the graph saved there (if any,
    memory-mapped: see features.graph.local_files) and saves every upsert back to it
    atomically; without one, it lives in memory only.

    ``hub_cap`` (None: exact): k-hop paths skip content vertices linked to more than that many
    movies (genres, the commonest tags, the busiest people), as graph databases prune
    supernodes. On the 500K-movie synthetic graph 254 such vertices (cap 1000) hold 42% of the
    content edges and make the second hop's frontier the whole catalogue; without them a
    3-hop query reads a fraction of the edges (README "Scale"). Other queries are unchanged.
    ``threads`` (None: $MARQUEE_GRAPH_THREADS, else ``min(2, CPUs)``): how many threads share
    a large k-hop query's passes (features.graph.hop_threads); the results do not depend on it.

    Several processes may open the same folder (``marquee serve --workers N``, ``marquee plex
    sync`` beside a running service). Each upsert loads the latest save first if another
    process saved since, under an exclusive folder lock (``local_files.folder_lock``), so no
    process's edges are saved over. ``refresh()`` loads another process's save; with
    ``follow_seconds`` the store does so on its own, at most that often, when asked for its
    ``revision()`` (which every ranking does), so a service sees other processes' writes
    within about that long.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        hub_cap: int | None = None,
        follow_seconds: float | None = None,
        threads: int | None = None,
    ) -> None:
        if hub_cap is not None and hub_cap < 2:
            raise ValueError(f"hub_cap must be at least 2 or None, got {hub_cap!r}")
        self.graph_threads = hop_threads.resolve(threads)
        if follow_seconds is not None and follow_seconds < 0:
            raise ValueError(f"follow_seconds must be >= 0 or None, got {follow_seconds!r}")
        self.hub_cap = hub_cap
        self.follow_seconds = follow_seconds
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._saved: SavedFiles | None = None  # what was last saved or loaded: a save links it
        self._checked = time.monotonic()  # when the folder was last checked for others' saves
        self._state = GraphState.empty()
        if self._path is not None and self._path.exists():
            with folder_lock(self._path, shared=True):
                self._load()
            if self._saved is not None:
                log.info("loaded graph from %s: %s", self._path, self.counts())

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        hub_cap: int | None = None,
        follow_seconds: float | None = None,
        threads: int | None = None,
    ) -> LocalGraphStore:
        """The store saved in folder ``path``, or an empty one that will save there."""
        return cls(path, hub_cap=hub_cap, follow_seconds=follow_seconds, threads=threads)

    def _load(self) -> None:
        assert self._path is not None
        loaded = load_saved(self._path)
        if loaded is not None:
            self._state, self._saved = loaded

    def _follow(self) -> bool:
        """Load the folder's latest save if another process or store object made it (the
        caller holds ``_lock`` and a folder lock); True when it did."""
        assert self._path is not None
        name = saved_data_name(self._path)
        if name is None or (self._saved is not None and self._saved.data.name == name):
            return False
        self._load()
        log.info("graph: loaded %s, saved in %s by another process", name, self._path)
        return True

    def refresh(self, *, wait: bool = True) -> bool:
        """Load what another process saved to this store's folder since this store last loaded
        or saved it; True when it did. ``wait=False``: give up at once while a writer holds
        the folder (the next check will see its save)."""
        self._checked = time.monotonic()
        if self._path is None or not self._lock.acquire(blocking=wait):
            return False
        try:
            with folder_lock(self._path, shared=True, wait=wait) as held:
                return held and self._follow()
        finally:
            self._lock.release()

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def state(self) -> GraphState:
        """The current immutable graph version (for the state builder and benchmarks)."""
        return self._state

    def save(self, path: Path | None = None) -> None:
        """Save to ``path`` (default: the store's own folder)."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise GraphStoreError("save: this store has no folder; pass a path")
        with self._lock:
            if target != self._path:
                save_state(self._state, target)
                return
            with folder_lock(target):
                self._follow()  # every upsert was saved already: nothing of ours is lost
                self._saved = save_state(self._state, target, self._saved)

    def nbytes(self) -> int:
        """Approximate memory held by the graph's arrays."""
        return self._state.nbytes()

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        with self._lock:
            if self._path is None:
                state, report = apply_batch(self._state, batch)
                if report.changed:
                    self._state = state
            else:
                with folder_lock(self._path):
                    self._follow()  # start from the latest save, whoever made it
                    state, report = apply_batch(self._state, batch)
                    if report.changed:
                        self._saved = save_state(state, self._path, self._saved)
                        self._state = state
        log.debug("upsert: created %s, updated %s", report.created, report.updated)
        return report

    def counts(self) -> dict[str, int]:
        st = self._state
        out = {k.value: len(v) for k, v in st.vertices.items()}
        out.update({k.value: e.nnz for k, e in st.edges.items()})
        return out

    def vertex(self, kind: VertexKind, key: str) -> dict[str, object] | None:
        vt = self._state.vertices[kind]
        i = vt.find(key)
        if i < 0:
            return None
        out: dict[str, object] = {"key": vt.keys[i]}
        out.update({name: _scalar(col[i]) for name, col in vt.columns.items()})
        return out

    def vertex_frame(self, kind: VertexKind) -> pd.DataFrame:
        vt = self._state.vertices[kind]
        order = np.argsort(vt.key_rank)
        frame = pd.DataFrame({"key": vt.keys[order]})
        for name, col in vt.columns.items():
            frame[name] = col[order]
        return frame

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame:
        st = self._state
        et = st.edges[kind]
        spec = EDGE_SPECS[kind]
        src_v, dst_v = st.vertices[spec.src], st.vertices[spec.dst]
        order = np.lexsort((dst_v.key_rank[et.indices], src_v.key_rank[et.src]))
        frame = pd.DataFrame(
            {"src": src_v.keys[et.src[order]], "dst": dst_v.keys[et.indices[order]]}
        )
        for name, col in et.columns.items():
            frame[name] = col[order]
        return frame

    def khop_scores(
        self,
        user: str,
        *,
        hops: int = 3,
        weights: Mapping[EdgeKind, float] | None = None,
        min_rating: float = 4.0,
        limit: int | None = None,
    ) -> list[tuple[str, float]]:
        return q.khop_scores(
            self._state,
            user,
            hops=hops,
            weights=weights,
            min_rating=min_rating,
            limit=limit,
            hub_cap=self.hub_cap,
            threads=self.graph_threads,
        )

    def co_people(
        self, movie: str, *, min_shared: int = 2, limit: int | None = 20
    ) -> list[tuple[str, int]]:
        return q.co_people(self._state, movie, min_shared=min_shared, limit=limit)

    def neighbours(
        self, kind: VertexKind, key: str, edge: EdgeKind, direction: Direction = "any"
    ) -> list[Neighbour]:
        return q.neighbours(self._state, kind, key, edge, direction)

    def user_affinity(self, user: str) -> Affinity:
        return q.user_affinity(self._state, user)

    def explain(self, user: str, movie: str) -> Explanation | None:
        return local_explain.explain(self._state, user, movie)

    def explain_many(self, user: str, movies: list[str]) -> list[Explanation | None]:
        """``explain`` for each movie in one pass over the arrays."""
        return local_explain.explain_many(self._state, user, movies)

    def user_movies(self, user: str) -> UserMovies:
        """From the arrays: no per-edge Python objects."""
        state = self._state
        movies, ratings, stamps = q.user_ratings(state, user)
        keys = state.vertices[VertexKind.MOVIE].keys
        return UserMovies(
            rated=keys[movies],
            ratings=np.asarray(ratings, dtype=np.float64),
            timestamps=np.asarray(stamps, dtype=np.float64),
            seen=keys[q.user_movie_positions(state, user, SEEN_EDGES)],
        )

    def revision(self) -> object:
        """The current immutable graph version: every change makes a new one. With
        ``follow_seconds``, first loads another process's save when that long has passed
        since the last check (never waiting on a writer)."""
        every = self.follow_seconds
        if every is not None and time.monotonic() - self._checked >= every:
            self.refresh(wait=False)
        return self._state

    def warm_reads(self) -> None:
        """The movie and user key indexes (a pandas Index and its hash table, built at the
        first lookup: ~50 ms at 100K movies) and the explanation links (features.graph
        .explain_links) of the current graph version. A later version builds its own at its
        first reads."""
        state = self._state
        for kind in (VertexKind.MOVIE, VertexKind.USER):
            state.vertices[kind].find("")  # the first lookup builds the index
        explain_links(state)

    def close(self) -> None:
        """Nothing to release: every upsert is already saved."""


def _scalar(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
