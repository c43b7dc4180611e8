"""The ArangoDB store's default k-hop engine: the movie-to-movie graph pulled once, walked locally.

Hops 2 and 3 cannot be fast in AQL at 100K movies: after one hop the frontier holds nearly every
movie, so each further hop reads every content edge twice (about 2.4M edge reads and as many
hash-map lookups per hop on the synthetic catalogue; see experiments/bench/graph_traversal.py
``--store arango``, which times both engines). So by default the store pulls the edges the walk
follows (content edges and similar_to, as [_from, _to] pairs over stream cursors) and the movie
keys once, holds them as an embedded-store state, and runs the embedded store's own hop operator
(features.graph.local_queries.hop_operator) on it, with its rounding: the scores are the
embedded store's (summed in the snapshot's order, movies by key, which the rounding to 32
significant bits makes immaterial). Per query the server is asked only for the user's seeds and seen
movies (user_movies: three edge-index lookups).

Freshness: the snapshot is rebuilt when this store writes, and when the revision of any
collection it was built from has changed, checked at most every ``check_seconds`` (1 s by
default, one small request per collection; 0 checks before every query). So another process's
write shows in k-hop scores within that interval plus one rebuild.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from features.graph import arango_aql as aql
from features.graph.arango_connection import Connection
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.local_queries import hop_operator
from features.graph.local_state import GraphState
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.graph.store import FOLLOWABLE_EDGES, check_hop_weights

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = (VertexKind.MOVIE.value, *(k.value for k in FOLLOWABLE_EDGES))


def round_scores(x: np.ndarray) -> np.ndarray:
    """Round to 32 significant bits, as the embedded store does (local_queries._round_scores):
    scores equal in exact arithmetic compare equal whatever order their terms were summed in."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return ((bits + (1 << 20)) & ~((1 << 21) - 1)).view(np.float64)


def _key(vertex_id: str) -> str:
    return vertex_id.split("/", 1)[1]


class MovieGraphMirror:
    """A read-only snapshot of the movie-to-movie graph held in ArangoDB (module doc)."""

    def __init__(self, conn: Connection, *, check_seconds: float = 1.0) -> None:
        self._conn = conn
        self._check_seconds = check_seconds
        self._lock = threading.Lock()
        self._state: GraphState | None = None
        self._revisions: tuple[str, ...] = ()
        self._checked_at = 0.0
        self.builds = 0

    def invalidate(self) -> None:
        """Forget the snapshot (the store calls this after it writes)."""
        with self._lock:
            self._state = None

    def state(self) -> GraphState:
        """The current snapshot, rebuilt first when the collections changed."""
        with self._lock:
            now = time.monotonic()
            if self._state is not None and now - self._checked_at < self._check_seconds:
                return self._state
            with self._conn.errors("reading collection revisions"):
                revisions = self._conn.revisions(list(SOURCES))
            self._checked_at = now
            if self._state is None or revisions != self._revisions:
                self._state = self._build()
                self._revisions = revisions
            return self._state

    def _build(self) -> GraphState:
        t0 = time.perf_counter()
        batch = GraphBatch()
        with self._conn.errors("reading the movie graph"):
            movies = sorted(self._conn.stream(aql.all_keys(VertexKind.MOVIE.value)))
            batch.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": movies}, dtype=object))
            others: dict[VertexKind, set[str]] = {}
            for kind in FOLLOWABLE_EDGES:
                pairs = list(self._conn.stream(aql.edge_ends(kind.value)))
                src = [_key(p[0]) for p in pairs]
                dst = [_key(p[1]) for p in pairs]
                spec = EDGE_SPECS[kind]
                for vkind, keys in ((spec.src, src), (spec.dst, dst)):
                    if vkind is not VertexKind.MOVIE:
                        others.setdefault(vkind, set()).update(keys)
                batch.add_edges(kind, pd.DataFrame({"src": src, "dst": dst}, dtype=object))
        for vkind, found in others.items():
            batch.add_vertices(vkind, pd.DataFrame({"key": sorted(found)}, dtype=object))
        local = LocalGraphStore()
        local.upsert(batch)
        self.builds += 1
        log.info(
            "%s: movie graph snapshot of %d movies built in %.1f s",
            self._conn.where,
            len(movies),
            time.perf_counter() - t0,
        )
        return local.state


def khop(
    state: GraphState,
    seeds: Iterable[str],
    seen: Iterable[str],
    *,
    hops: int,
    weights: Mapping[EdgeKind, float],
    limit: int | None,
) -> list[tuple[str, float]]:
    """local_queries.khop_scores on a snapshot, with the user's seeds and seen movies given
    (movie keys; ones the snapshot lacks are skipped)."""
    check_hop_weights(weights)
    mv = state.vertices[VertexKind.MOVIE]
    found = np.array([mv.find(k) for k in seeds], dtype=np.int64)
    positions = np.unique(found[found >= 0])
    if not len(positions) or limit == 0:
        return []
    op = hop_operator(state, weights)
    x = op.first_of_few_rows(positions)
    total = x.copy()
    for _ in range(hops - 1):
        x = op.step(x)
        total += x
    total = round_scores(total)
    gone = np.array([mv.find(k) for k in seen], dtype=np.int64)
    total[gone[gone >= 0]] = 0.0
    idx = np.flatnonzero(total)
    if limit is not None and limit < len(idx):
        values = total[idx]
        top = np.argpartition(values, len(values) - limit)[len(values) - limit :]
        idx = idx[values >= values[top].min()]  # the top ``limit`` and their ties
    order = np.lexsort((mv.key_rank[idx], -total[idx]))[:limit]
    idx = idx[order]
    return list(zip(mv.keys[idx].tolist(), total[idx].tolist(), strict=True))
