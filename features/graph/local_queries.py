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
from features.graph.schema import (
    CONTENT_EDGES,
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    PEOPLE_EDGES,
    POSITIVE_RATING,
    USER_EDGES,
    EdgeKind,
    VertexKind,
)
from features.graph.store import (
    EXPLANATION_PRIORITY,
    Affinity,
    Direction,
    Explanation,
    Neighbour,
    UnknownVertexError,
    check_hop_weights,
)

if TYPE_CHECKING:
    from features.graph.local_state import EdgeTable, GraphState


def _index(state: GraphState, kind: VertexKind, key: str) -> int:
    i = state.vertices[kind].find(key)
    if i < 0:
        raise UnknownVertexError(kind, key)
    return i


def _row(et: EdgeTable, i: int) -> slice:
    return slice(int(et.indptr[i]), int(et.indptr[i + 1]))


def _gather(
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
    u = _index(state, VertexKind.USER, user)
    et = state.edges[EdgeKind.RATED]
    r = _row(et, u)
    return et.indices[r], et.columns["rating"][r], et.columns["timestamp"][r]


def user_movie_positions(state: GraphState, user: str, edges: tuple[EdgeKind, ...]) -> np.ndarray:
    """Positions of the movies the user reaches over ``edges`` (in edge order, repeats kept)."""
    u = _index(state, VertexKind.USER, user)
    parts = [state.edges[k].indices[_row(state.edges[k], u)] for k in edges]
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


def hop_operator(state: GraphState, weights: Mapping[EdgeKind, float]) -> HopGraph:
    """The one-hop operator (features.graph.hop) for ``weights`` (only kinds with a nonzero
    weight), cached on the state."""
    w = check_hop_weights(weights)
    cache_key = ("hop", tuple(sorted((k.value, v) for k, v in w.items())))
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
        b = b[np.diff(b.indptr) >= 2]  # a row with one movie pairs it only with itself
        blocks.append(b)
        row_w.append(np.full(b.shape[0], w[kind]))
    c = sparse.csr_matrix(sparse.vstack(blocks, format="csr"))
    op = incidence_hop(c, np.concatenate(row_w))
    state.cache[cache_key] = op
    return op


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
) -> list[tuple[str, float]]:
    """Weighted path counts from the user's positive movies to unseen movies."""
    if hops not in (1, 2, 3):
        raise ValueError(f"khop_scores: hops must be 1, 2 or 3, got {hops!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"khop_scores: limit must be >= 0 or None, got {limit!r}")
    movies, ratings, _ = user_ratings(state, user)
    op = hop_operator(state, DEFAULT_HOP_WEIGHTS if weights is None else weights)
    seeds = np.unique(movies[ratings >= min_rating])
    if not len(seeds):
        return []
    x = op.first_of_few_rows(seeds)
    total = x.copy()
    for _ in range(hops - 1):
        x = op.step(x)
        total += x
    total = _round_scores(total)
    total[seen_movies(state, user)] = 0.0
    cand = _top_candidates(total, limit)
    idx, vals = _sorted_pairs(state, VertexKind.MOVIE, cand, total[cand], limit)
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
    m = _index(state, VertexKind.MOVIE, movie)
    p, pt = _people_matrices(state)
    persons = pt.indices[pt.indptr[m] : pt.indptr[m + 1]]
    pos, _ = _gather(p.indptr, persons)
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
    pos, pw = _gather(ig.indptr, movies, w)
    genre = np.bincount(ig.indices[pos], weights=pw, minlength=ig.n_dst) / n
    _, pt = _people_matrices(state)
    pos, pw = _gather(pt.indptr, movies, w)
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
    i = _index(state, kind, key)
    spec, et = EDGE_SPECS[edge], state.edges[edge]
    found: list[Neighbour] = []
    if direction in ("out", "any") and kind is spec.src:
        r = _row(et, i)
        keys = state.vertices[spec.dst].keys
        for pos in range(r.start, r.stop):
            found.append(Neighbour(spec.dst, keys[et.indices[pos]], _attrs(et, pos)))
    if direction in ("in", "any") and kind is spec.dst:
        indptr, src, perm = et.reverse
        keys = state.vertices[spec.src].keys
        for j in range(int(indptr[i]), int(indptr[i + 1])):
            found.append(Neighbour(spec.src, keys[src[j]], _attrs(et, int(perm[j]))))
    return sorted(found, key=lambda nb: (nb.kind.value, nb.key))


def _movie_links(state: GraphState, edge: EdgeKind, m: int) -> np.ndarray:
    """Positions of the non-movie vertices linked to movie ``m`` by a content ``edge``."""
    et = state.edges[edge]
    if EDGE_SPECS[edge].src is VertexKind.MOVIE:
        return et.indices[_row(et, m)]
    indptr, src, _ = et.reverse
    return src[int(indptr[m]) : int(indptr[m + 1])]


def _similar_links(state: GraphState, movies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(linked movie, owner index into ``movies``) of every similar_to link of the movies, in
    either direction, self-links dropped: ``_similar`` for many movies at once."""
    et = state.edges[EdgeKind.SIMILAR_TO]
    indptr, src, _ = et.reverse
    parts = []
    for ptr, other in ((et.indptr, et.indices), (indptr, src)):
        pos, _ = _gather(ptr, movies)
        parts.append((other[pos], np.repeat(np.arange(len(movies)), ptr[movies + 1] - ptr[movies])))
    links = np.concatenate([parts[0][0], parts[1][0]])
    owner = np.concatenate([parts[0][1], parts[1][1]])
    keep = links != movies[owner]
    return links[keep], owner[keep]


def _similar(state: GraphState, m: int) -> np.ndarray:
    et = state.edges[EdgeKind.SIMILAR_TO]
    indptr, src, _ = et.reverse
    both = np.concatenate([et.indices[_row(et, m)], src[int(indptr[m]) : int(indptr[m + 1])]])
    return both[both != m]


def _label(state: GraphState, kind: VertexKind, i: int, column: str) -> str:
    vt = state.vertices[kind]
    return str(vt.columns[column][i]) or str(vt.keys[i])


def explain(state: GraphState, user: str, movie: str) -> Explanation | None:
    """The best path seed -[edge]- via -[edge]- movie (priority as in store.Explanation)."""
    movies, ratings, stamps = user_ratings(state, user)
    m = _index(state, VertexKind.MOVIE, movie)
    positive = (ratings >= POSITIVE_RATING) & (movies != m)
    movies, ratings, stamps = movies[positive], ratings[positive], stamps[positive]
    if not len(movies):
        return None
    order = np.lexsort((state.vertices[VertexKind.MOVIE].key_rank[movies], -stamps, -ratings))
    for edge in EXPLANATION_PRIORITY:
        via_kind: VertexKind | None = None
        via = -1
        if edge is EdgeKind.SIMILAR_TO:
            linked = np.isin(movies, _similar(state, m))
            seed = int(np.flatnonzero(linked[order])[0]) if linked.any() else -1
        else:
            targets = _movie_links(state, edge, m)
            seed = -1
            if len(targets):
                spec = EDGE_SPECS[edge]
                via_kind = spec.dst if spec.src is VertexKind.MOVIE else spec.src
                rank = state.vertices[via_kind].key_rank
                for k, s in enumerate(order):
                    common = np.intersect1d(targets, _movie_links(state, edge, int(movies[s])))
                    if len(common):
                        seed, via = k, int(common[np.argmin(rank[common])])
                        break
        if seed < 0:
            continue
        s = int(order[seed])
        return _explanation(
            state, user, movie, m, int(movies[s]), float(ratings[s]), edge, via_kind, via
        )
    return None


def _explanation(
    state: GraphState,
    user: str,
    movie: str,
    m: int,
    seed: int,
    rating: float,
    edge: EdgeKind,
    via_kind: VertexKind | None,
    via: int,
) -> Explanation:
    return Explanation(
        user=user,
        movie=movie,
        movie_title=_label(state, VertexKind.MOVIE, m, "title"),
        seed=str(state.vertices[VertexKind.MOVIE].keys[seed]),
        seed_title=_label(state, VertexKind.MOVIE, seed, "title"),
        seed_rating=rating,
        edge=edge,
        via_kind=via_kind,
        via_key="" if via_kind is None else str(state.vertices[via_kind].keys[via]),
        via_name="" if via_kind is None else _label(state, via_kind, via, "name"),
    )


def _links_of(
    state: GraphState, edge: EdgeKind, movies: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(vertex positions, owner index into ``movies``) of every content-``edge`` link of the
    movies: ``_movie_links`` for many movies at once."""
    et = state.edges[edge]
    if EDGE_SPECS[edge].src is VertexKind.MOVIE:
        indptr, other = et.indptr, et.indices
    else:
        indptr, other, _ = et.reverse
    pos, _ = _gather(indptr, movies)
    owner = np.repeat(np.arange(len(movies)), indptr[movies + 1] - indptr[movies])
    return other[pos], owner


def explain_many(state: GraphState, user: str, movies: list[str]) -> list[Explanation | None]:
    """``explain`` for each of ``movies``, equal to it, in one pass over the user's positives
    per edge kind (what a served slate needs). Unknown movies get None; an unknown user raises
    UnknownVertexError as ``explain`` does.

    For each linked vertex v the best seed linked to v (first in the seed order) is found
    once; a movie's best seed is then the best of those over its own vertices, and its via
    vertex the lowest key among its vertices with that seed: exactly the seed-by-seed search.
    """
    rated, ratings, stamps = user_ratings(state, user)
    mv = state.vertices[VertexKind.MOVIE]
    out: list[Explanation | None] = [None] * len(movies)
    idx = np.array([mv.find(m) for m in movies], dtype=np.int64)
    positive = ratings >= POSITIVE_RATING
    seeds, s_rating = rated[positive].astype(np.int64), ratings[positive]
    own = np.isin(idx, seeds)
    for k in np.flatnonzero(own):  # a liked movie is explained by its other seeds: one by one
        out[k] = explain(state, user, movies[k])
    pending = np.flatnonzero((idx >= 0) & ~own)
    if not len(seeds) or not len(pending):
        return out
    order = np.lexsort((mv.key_rank[seeds], -stamps[positive], -s_rating))
    place = np.empty(len(seeds), dtype=np.int64)  # each seed's position in the order
    place[order] = np.arange(len(seeds))

    def found(k: int, best: int, edge: EdgeKind, via_kind: VertexKind | None, via: int) -> None:
        s = int(order[best])
        out[k] = _explanation(
            state,
            user,
            movies[k],
            int(idx[k]),
            int(seeds[s]),
            float(s_rating[s]),
            edge,
            via_kind,
            via,
        )

    for edge in EXPLANATION_PRIORITY:
        if not len(pending):
            break
        done = np.zeros(len(pending), dtype=bool)
        if edge is EdgeKind.SIMILAR_TO:  # per pending movie, the best seed it is similar to
            links, owner = _similar_links(state, idx[pending])
            by_movie = np.argsort(seeds, kind="stable")
            at = np.minimum(np.searchsorted(seeds[by_movie], links), len(seeds) - 1)
            hit = seeds[by_movie[at]] == links
            best = np.full(len(pending), len(seeds))
            np.minimum.at(best, owner[hit], place[by_movie[at[hit]]])
            for j in np.flatnonzero(best < len(seeds)).tolist():
                found(int(pending[j]), int(best[j]), edge, None, -1)
                done[j] = True
        else:
            spec = EDGE_SPECS[edge]
            via_kind = spec.dst if spec.src is VertexKind.MOVIE else spec.src
            s_via, s_owner = _links_of(state, edge, seeds)
            t_via, t_owner = _links_of(state, edge, idx[pending])
            if len(s_via) and len(t_via):
                by = np.lexsort((place[s_owner], s_via))  # per vertex, best seed first
                v_sorted = s_via[by]
                first = np.flatnonzero(np.r_[True, v_sorted[1:] != v_sorted[:-1]])
                vias, best = v_sorted[first], place[s_owner[by[first]]]
                at = np.minimum(np.searchsorted(vias, t_via), len(vias) - 1)
                hit = vias[at] == t_via
                t_via, t_owner, t_best = t_via[hit], t_owner[hit], best[at[hit]]
                rank = state.vertices[via_kind].key_rank
                pick = np.lexsort((rank[t_via], t_best, t_owner))
                owners = t_owner[pick]
                lead = pick[np.r_[True, owners[1:] != owners[:-1]]] if len(pick) else pick
                for r in lead.tolist():
                    j = int(t_owner[r])
                    found(int(pending[j]), int(t_best[r]), edge, via_kind, int(t_via[r]))
                    done[j] = True
        pending = pending[~done]
    return out
