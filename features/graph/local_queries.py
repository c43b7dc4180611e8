"""Traversal queries of the embedded store, over one immutable GraphState.

The semantics are those of the GraphStore module docstring (features/graph/store.py). k-hop
path counts use the factorized one-hop operator: for each content edge kind e with incidence
B_e (other vertex x movie, binary), ``H(x) = sum_e w_e (B_e^T (B_e x) - deg_e * x)`` plus the
similar_to adjacency in both directions without its diagonal. The B_e are stacked into one
matrix C (rows of degree 1 dropped: they only pair a movie with itself, which the ``- deg_e x``
term cancels exactly), so one hop is two sparse mat-vecs plus a small one. The operator is built
once per weight map and cached on the state, which every upsert replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from features.graph.hop import HopGraph, incidence_hop
from features.graph.hop_top import HubSplit, first_hop, first_two_hops, hub_split, top_last_hop
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    PEOPLE_EDGES,
    USER_EDGES,
    EdgeKind,
    VertexKind,
)
from features.graph.store import (
    Affinity,
    Direction,
    Neighbour,
    UnknownVertexError,
    check_hop_weights,
)

if TYPE_CHECKING:
    from features.graph.local_state import EdgeTable, GraphState


def vertex_position(state: GraphState, kind: VertexKind, key: str) -> int:
    """The vertex's position in its table; UnknownVertexError when absent."""
    i = state.vertices[kind].find(key)
    if i < 0:
        raise UnknownVertexError(kind, key)
    return i


def edge_row(et: EdgeTable, i: int) -> slice:
    """The span of source ``i``'s entries in the edge table's CSR arrays."""
    return slice(int(et.indptr[i]), int(et.indptr[i + 1]))


def gather_rows(
    indptr: np.ndarray, rows: np.ndarray, row_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions of all entries of CSR ``rows`` (in row order), and each entry's row weight."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    pos = offsets + np.arange(total, dtype=offsets.dtype)
    return pos, (None if row_weights is None else np.repeat(row_weights, lens))


def _sorted_pairs(
    state: GraphState, kind: VertexKind, idx: np.ndarray, values: np.ndarray, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """idx and values ordered by value descending then key ascending, cut to ``limit``."""
    if limit is not None and limit < len(idx):
        if limit <= 0:
            return idx[:0], values[:0]
        top = np.argpartition(values, len(values) - limit)[len(values) - limit :]
        keep = values >= values[top].min()  # the top ``limit`` and their ties
        idx, values = idx[keep], values[keep]
    order = np.lexsort((state.vertices[kind].key_rank[idx], -values))[:limit]
    return idx[order], values[order]


# --- users' movies -----------------------------------------------------------------------


def user_ratings(state: GraphState, user: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(movie positions, ratings, timestamps) of the user's rated edges."""
    u = vertex_position(state, VertexKind.USER, user)
    et = state.edges[EdgeKind.RATED]
    r = edge_row(et, u)
    return et.indices[r], et.columns["rating"][r], et.columns["timestamp"][r]


def user_movie_positions(state: GraphState, user: str, edges: tuple[EdgeKind, ...]) -> np.ndarray:
    """Positions of the movies the user reaches over ``edges`` (in edge order, repeats kept)."""
    u = vertex_position(state, VertexKind.USER, user)
    parts = [state.edges[k].indices[edge_row(state.edges[k], u)] for k in edges]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def seen_movies(state: GraphState, user: str) -> np.ndarray:
    """Positions of movies the user rated, watched or marked not interested."""
    return np.unique(user_movie_positions(state, user, USER_EDGES))


# --- k-hop -------------------------------------------------------------------------------


def _similar_rows(state: GraphState) -> sparse.csr_matrix:
    """One row per similar_to edge between two different movies, holding both movies."""
    et = state.edges[EdgeKind.SIMILAR_TO]
    keep = et.src != et.indices
    a, b = et.src[keep], et.indices[keep]
    cols = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).ravel()
    indptr = np.arange(0, 2 * len(a) + 1, 2, dtype=np.int64)
    return sparse.csr_matrix((np.ones(len(cols)), cols, indptr), shape=(len(a), et.n_dst))


def hop_operator(
    state: GraphState, weights: Mapping[EdgeKind, float], hub_cap: int | None = None
) -> HopGraph:
    """The one-hop operator (features.graph.hop) for ``weights`` (only kinds with a nonzero
    weight), cached on the state. With ``hub_cap``, content vertices linked to more than that
    many movies (hubs: genres, the commonest tags, the busiest people) are left out, so that
    paths never pass through them (see ``LocalGraphStore``)."""
    w = check_hop_weights(weights)
    if hub_cap is not None and hub_cap < 2:
        raise ValueError(f"hub_cap must be at least 2 or None, got {hub_cap!r}")
    cache_key = ("hop", tuple(sorted((k.value, v) for k, v in w.items())), hub_cap)
    cached = state.cache.get(cache_key)
    if cached is not None:
        return cached
    n = len(state.vertices[VertexKind.MOVIE])
    blocks: list[sparse.csr_matrix] = [sparse.csr_matrix((0, n))]
    row_w: list[np.ndarray] = [np.zeros(0)]
    for kind in (*CONTENT_EDGES, EdgeKind.SIMILAR_TO):
        if kind not in w:
            continue
        et = state.edges[kind]
        if kind is EdgeKind.SIMILAR_TO:
            b = _similar_rows(state)
        elif EDGE_SPECS[kind].dst is VertexKind.MOVIE:
            b = et.csr  # person x movie
        else:
            b = et.csc  # genre or tag x movie
        degree = np.diff(b.indptr)
        keep = degree >= 2  # a row with one movie pairs it only with itself
        if hub_cap is not None:
            keep &= degree <= hub_cap
        b = b[keep]
        blocks.append(b)
        row_w.append(np.full(b.shape[0], w[kind]))
    c = sparse.csr_matrix(sparse.vstack(blocks, format="csr"))
    op = incidence_hop(c, np.concatenate(row_w))
    state.cache[cache_key] = op
    return op


def _hub_split(
    state: GraphState, weights: Mapping[EdgeKind, float], hub_cap: int | None
) -> HubSplit:
    """``hop_operator``'s hub split (features.graph.hop_top), cached on the state beside it."""
    w = check_hop_weights(weights)
    cache_key = ("hub_split", tuple(sorted((k.value, v) for k, v in w.items())), hub_cap)
    cached = state.cache.get(cache_key)
    if cached is None:
        cached = hub_split(hop_operator(state, weights, hub_cap))
        state.cache[cache_key] = cached
    return cached


def _round_scores(x: np.ndarray) -> np.ndarray:
    """Round to 32 significant bits (about 10 decimal digits), so that scores equal in exact
    arithmetic compare equal whatever order their terms were summed in."""
    bits = x.view(np.int64)
    return ((bits + (1 << 20)) & ~((1 << 21) - 1)).view(np.float64)


def _top_candidates(total: np.ndarray, limit: int | None) -> np.ndarray:
    """Positions of nonzero scores, cut early to a superset of the top ``limit`` (and ties):
    a threshold guessed from a strided sample is kept when at least ``limit`` scores reach it
    (then every top score does), which spares a full partition of the catalogue."""
    n = len(total)
    if limit is not None and limit > 0 and limit * 16 < n:
        step = max(1, n // (limit * 8))
        sample = total[::step]
        k = max(1, (2 * limit) // step)
        guess = np.partition(sample, len(sample) - k)[len(sample) - k]
        if guess > 0:
            cand = np.flatnonzero(total >= guess)
            if len(cand) >= limit:
                return cand
    return np.flatnonzero(total)


def khop_scores(
    state: GraphState,
    user: str,
    *,
    hops: int = 3,
    weights: Mapping[EdgeKind, float] | None = None,
    min_rating: float = 4.0,
    limit: int | None = None,
    hub_cap: int | None = None,
    threads: int | None = None,
) -> list[tuple[str, float]]:
    """Weighted path counts from the user's positive movies to unseen movies (through no
    vertex of more than ``hub_cap`` movies, when given). While a hop's frontier is small only
    its own rows are read (``HopGraph.step_few``), else the whole operator; the first hop goes
    through the hubs in one pass, the middle one through the rest of the graph in exact
    float32 (features.graph.exact32), and, with a ``limit``, the last hop is exact only for the
    movies that can reach the top (features.graph.hop_top), the large passes on ``threads``
    threads (None: features.graph.hop_threads' configured count; same results for any count).
    """
    if hops not in (1, 2, 3):
        raise ValueError(f"khop_scores: hops must be 1, 2 or 3, got {hops!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"khop_scores: limit must be >= 0 or None, got {limit!r}")
    movies, ratings, _ = user_ratings(state, user)
    weights = DEFAULT_HOP_WEIGHTS if weights is None else weights
    op = hop_operator(state, weights, hub_cap)
    seeds = np.unique(movies[ratings >= min_rating])
    if not len(seeds):
        return []
    hubs = _hub_split(state, weights, hub_cap)
    if hops == 3:
        total, x = first_two_hops(hubs, seeds, threads)
        total = total + x
    else:
        x = first_hop(hubs, seeds, threads)
        total = x.copy()
    seen = seen_movies(state, user)
    top = None
    if hops > 1 and limit is not None:
        top = top_last_hop(hubs, x, total, seen, limit, threads)
    if top is not None:
        cand, vals = top[0], _round_scores(top[1])
        keep = vals != 0.0
        cand, vals = cand[keep], vals[keep]
    else:
        if hops > 1:
            total += op.step_few(x)
        total = _round_scores(total)
        total[seen] = 0.0
        cand = _top_candidates(total, limit)
        vals = total[cand]
    idx, vals = _sorted_pairs(state, VertexKind.MOVIE, cand, vals, limit)
    keys = state.vertices[VertexKind.MOVIE].keys[idx]
    return list(zip(keys.tolist(), vals.tolist(), strict=True))


# --- people, affinity ----------------------------------------------------------------------


def _people_matrices(state: GraphState) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(person x movie, movie x person) binary: a person linked to a movie in any role."""
    cached = state.cache.get("people")
    if cached is None:
        p = sparse.csr_matrix(sum(state.edges[k].csr for k in PEOPLE_EDGES))
        p.sum_duplicates()
        p.data[:] = 1.0
        cached = (p, p.T.tocsr())
        state.cache["people"] = cached
    return cached


def co_people(
    state: GraphState, movie: str, *, min_shared: int = 2, limit: int | None = 20
) -> list[tuple[str, int]]:
    """Other movies sharing at least ``min_shared`` distinct people with ``movie``."""
    if min_shared < 1:
        raise ValueError(f"co_people: min_shared must be >= 1, got {min_shared!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"co_people: limit must be >= 0 or None, got {limit!r}")
    m = vertex_position(state, VertexKind.MOVIE, movie)
    p, pt = _people_matrices(state)
    persons = pt.indices[pt.indptr[m] : pt.indptr[m + 1]]
    pos, _ = gather_rows(p.indptr, persons)
    counts = np.bincount(p.indices[pos], minlength=p.shape[1])
    counts[m] = 0
    cand = np.flatnonzero(counts >= min_shared)
    idx, vals = _sorted_pairs(state, VertexKind.MOVIE, cand, counts[cand], limit)
    keys = state.vertices[VertexKind.MOVIE].keys[idx]
    return list(zip(keys.tolist(), vals.tolist(), strict=True))


def user_affinity(state: GraphState, user: str) -> Affinity:
    """Genre and people affinities from the user's rated movies (see store.Affinity)."""
    movies, ratings, _ = user_ratings(state, user)
    known = ~np.isnan(ratings)
    movies, w = movies[known], (ratings[known].astype(np.float64) - 3.0) / 2.0
    if not len(movies):
        return Affinity({}, {})
    n = len(movies)
    ig = state.edges[EdgeKind.IN_GENRE]
    pos, pw = gather_rows(ig.indptr, movies, w)
    genre = np.bincount(ig.indices[pos], weights=pw, minlength=ig.n_dst) / n
    _, pt = _people_matrices(state)
    pos, pw = gather_rows(pt.indptr, movies, w)
    people = np.bincount(pt.indices[pos], weights=pw, minlength=pt.shape[1]) / n

    def nonzero(kind: VertexKind, values: np.ndarray) -> dict[str, float]:
        idx = np.flatnonzero(values)
        keys = state.vertices[kind].keys[idx]
        return dict(zip(keys.tolist(), values[idx].tolist(), strict=True))

    return Affinity(nonzero(VertexKind.GENRE, genre), nonzero(VertexKind.PERSON, people))


# --- neighbours, explanations -------------------------------------------------------------


def _attrs(et: EdgeTable, position: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, col in et.columns.items():
        v = col[position]
        out[name] = v.item() if isinstance(v, np.generic) else v
    return out


def neighbours(
    state: GraphState, kind: VertexKind, key: str, edge: EdgeKind, direction: Direction = "any"
) -> list[Neighbour]:
    """Vertices one ``edge`` away, sorted by (kind, key); outgoing before incoming on ties."""
    if direction not in ("out", "in", "any"):
        raise ValueError(f"neighbours: direction must be 'out', 'in' or 'any', got {direction!r}")
    i = vertex_position(state, kind, key)
    spec, et = EDGE_SPECS[edge], state.edges[edge]
    found: list[Neighbour] = []
    if direction in ("out", "any") and kind is spec.src:
        r = edge_row(et, i)
        keys = state.vertices[spec.dst].keys
        for pos in range(r.start, r.stop):
            found.append(Neighbour(spec.dst, keys[et.indices[pos]], _attrs(et, pos)))
    if direction in ("in", "any") and kind is spec.dst:
        indptr, src, perm = et.reverse
        keys = state.vertices[spec.src].keys
        for j in range(int(indptr[i]), int(indptr[i + 1])):
            found.append(Neighbour(spec.src, keys[src[j]], _attrs(et, int(perm[j]))))
    return sorted(found, key=lambda nb: (nb.kind.value, nb.key))
