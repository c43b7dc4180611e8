"""Every explanation link of every movie in one CSR table, so that ``explain_many`` answers a
slate in one pass instead of one pass per edge kind.

An explanation joins a seed movie to a recommended movie over one edge kind of
``EXPLANATION_PRIORITY``: through a shared vertex (a person, genre, tag, ...) or directly
(similar_to). Here each link of a movie is one integer code: ``offsets[i]`` plus, for kind
``i`` (in priority order), the via vertex's rank by key, or for similar_to the linked movie's
position. Codes therefore order links as the explanation's choice does, between edge kinds
first and within a kind by via key; two movies share a via vertex exactly when their rows share
a code, and a movie similar to a seed holds the code the seed side gives the seed itself
(``seed_links``).

Per served slate the per-kind search ran some 20 small numpy calls for each of the twelve kinds
(about 1.2-1.8 ms of a recommendation's CPU at 100K movies on the shared two-core machine); the
table is built from the content alone (about a second's sort at 500K movies, on the first
explanation), cached on the state like the k-hop operator, carried over user-only changes and
dropped with any content change (local_state).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from features.graph.local_queries import gather_rows
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.graph.store import EXPLANATION_PRIORITY

if TYPE_CHECKING:
    from features.graph.local_state import GraphState

log = logging.getLogger(__name__)

CACHE_KEY = "explain_links"


@dataclass(frozen=True, eq=False)
class ExplainLinks:
    """Movie -> link codes (module doc). Kind ``i`` is ``edges[i]`` (EXPLANATION_PRIORITY
    order), its via vertices are ``via_kinds[i]`` (None for similar_to) and its codes run from
    ``offsets[i]`` to ``offsets[i + 1]``; ``by_rank[i]`` maps a via rank back to the vertex's
    position."""

    indptr: np.ndarray  # int64, one row per movie
    codes: np.ndarray  # int32 or int64
    offsets: np.ndarray  # int64, len(edges) + 1
    edges: tuple[EdgeKind, ...]
    via_kinds: tuple[VertexKind | None, ...]
    by_rank: tuple[np.ndarray | None, ...]
    similar: int | None  # the similar_to kind's index, if it is one of ``edges``

    def of(self, movies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, owner index into ``movies``) of every link of the movies."""
        pos, _ = gather_rows(self.indptr, movies)
        owner = np.repeat(np.arange(len(movies)), self.indptr[movies + 1] - self.indptr[movies])
        return self.codes[pos], owner

    def seed_links(self, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``of(seeds)`` for the seed side of a path: a seed's own similar_to links are left
        out (seed -similar- x -similar- movie is no path) and its self code put in (seed
        -similar- movie is one when the movie's row holds the seed)."""
        codes, owner = self.of(seeds)
        if self.similar is None:
            return codes, owner
        lo, hi = int(self.offsets[self.similar]), int(self.offsets[self.similar + 1])
        keep = (codes < lo) | (codes >= hi)
        self_codes = (lo + seeds).astype(codes.dtype)
        return (
            np.concatenate([codes[keep], self_codes]),
            np.concatenate([owner[keep], np.arange(len(seeds))]),
        )

    def kinds(self, codes: np.ndarray) -> np.ndarray:
        """The kind index of each code."""
        return np.searchsorted(self.offsets, codes, side="right") - 1

    def via(self, kind: int, code: int) -> tuple[VertexKind | None, int]:
        """(via vertex kind, its position) of a code of ``kind``; (None, -1) for similar_to."""
        by_rank = self.by_rank[kind]
        if by_rank is None:
            return None, -1
        return self.via_kinds[kind], int(by_rank[code - int(self.offsets[kind])])


_building = threading.Lock()


def explain_links(state: GraphState) -> ExplainLinks:
    """The state's table, built on first use and cached on it. One thread builds it while the
    others wait: a service's first requests arrive together, and 32 concurrent builds (each
    ~0.1 s at 100K movies) cost seconds of CPU and of their latency."""
    cached: ExplainLinks | None = state.cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    with _building:
        cached = state.cache.get(CACHE_KEY)
        if cached is None:
            cached = build_explain_links(state)
            state.cache[CACHE_KEY] = cached
    return cached


def _inverse(rank: np.ndarray) -> np.ndarray:
    """Position of each rank (``rank`` is a permutation)."""
    out = np.empty(len(rank), dtype=rank.dtype)
    out[rank] = np.arange(len(rank), dtype=rank.dtype)
    return out


def _rows(
    n: int, owners: list[np.ndarray], codes: list[np.ndarray], dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, codes) over ``n`` movies of the parts' (movie, code) pairs, each part
    grouped by movie in ascending order: row m holds part 0's codes of m, then part 1's, ...
    Placed by counting (no sort of every link: at 500K movies argsort took ~1 s)."""
    counts = [np.bincount(o, minlength=n) for o in owners]
    total = np.zeros(n, dtype=np.int64)
    for count in counts:
        total += count
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(total, out=indptr[1:])
    out: np.ndarray = np.empty(int(indptr[-1]), dtype=dtype)
    free = indptr[:-1].copy()  # each row's next free slot
    for owner, code, count in zip(owners, codes, counts, strict=True):
        starts = np.cumsum(count) - count  # each movie's first entry in this part
        out[free[owner] + np.arange(len(owner)) - starts[owner]] = code
        free += count
    return indptr, out


def build_explain_links(state: GraphState) -> ExplainLinks:
    """The table of every EXPLANATION_PRIORITY link of ``state``'s movies."""
    n = len(state.vertices[VertexKind.MOVIE])
    owners: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    offsets = [0]
    via_kinds: list[VertexKind | None] = []
    by_rank: list[np.ndarray | None] = []
    inverses: dict[VertexKind, np.ndarray] = {}
    for edge in EXPLANATION_PRIORITY:
        et = state.edges[edge]
        if edge is EdgeKind.SIMILAR_TO:  # both directions, self-links dropped
            for indptr, other in ((et.indptr, et.indices), et.reverse[:2]):
                movie = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
                keep = movie != other
                owners.append(movie[keep])
                codes.append(offsets[-1] + other[keep].astype(np.int64))
            via_kinds.append(None)
            by_rank.append(None)
            offsets.append(offsets[-1] + n)
            continue
        spec = EDGE_SPECS[edge]
        if spec.src is VertexKind.MOVIE:
            via_kind = spec.dst
            movie = np.repeat(np.arange(et.n_src), np.diff(et.indptr))
            via = et.indices
        else:
            via_kind = spec.src
            indptr, via, _ = et.reverse
            movie = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rank = state.vertices[via_kind].key_rank
        owners.append(movie)
        codes.append(offsets[-1] + rank[via].astype(np.int64))
        if via_kind not in inverses:
            inverses[via_kind] = _inverse(rank)
        via_kinds.append(via_kind)
        by_rank.append(inverses[via_kind])
        offsets.append(offsets[-1] + len(state.vertices[via_kind]))
    dtype = np.int32 if offsets[-1] < 2**31 else np.int64
    indptr, code = _rows(n, owners, codes, dtype)
    log.debug("explanation links: %d movies, %d links", n, len(code))
    return ExplainLinks(
        indptr=indptr,
        codes=code,
        offsets=np.asarray(offsets, dtype=np.int64),
        edges=EXPLANATION_PRIORITY,
        via_kinds=tuple(via_kinds),
        by_rank=tuple(by_rank),
        similar=EXPLANATION_PRIORITY.index(EdgeKind.SIMILAR_TO)
        if EdgeKind.SIMILAR_TO in EXPLANATION_PRIORITY
        else None,
    )
