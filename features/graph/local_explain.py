"""Explanation queries of the embedded store: why a movie is recommended to a user.

The path semantics and the choice among paths are those of ``store.Explanation``: seed movie
-[edge]- via vertex -[edge]- movie, edge priority ``EXPLANATION_PRIORITY``, then the seed's
rating, timestamp and key. ``explain_many`` answers a whole slate in one pass per edge kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from features.graph.local_queries import edge_row, gather_rows, user_ratings, vertex_position
from features.graph.local_state import column_item
from features.graph.schema import EDGE_SPECS, POSITIVE_RATING, EdgeKind, VertexKind
from features.graph.store import EXPLANATION_PRIORITY, Explanation

if TYPE_CHECKING:
    from features.graph.local_state import GraphState


def _movie_links(state: GraphState, edge: EdgeKind, m: int) -> np.ndarray:
    """Positions of the non-movie vertices linked to movie ``m`` by a content ``edge``."""
    et = state.edges[edge]
    if EDGE_SPECS[edge].src is VertexKind.MOVIE:
        return et.indices[edge_row(et, m)]
    indptr, src, _ = et.reverse
    return src[int(indptr[m]) : int(indptr[m + 1])]


def _similar_links(state: GraphState, movies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(linked movie, owner index into ``movies``) of every similar_to link of the movies, in
    either direction, self-links dropped: ``_similar`` for many movies at once."""
    et = state.edges[EdgeKind.SIMILAR_TO]
    indptr, src, _ = et.reverse
    parts = []
    for ptr, other in ((et.indptr, et.indices), (indptr, src)):
        pos, _ = gather_rows(ptr, movies)
        parts.append((other[pos], np.repeat(np.arange(len(movies)), ptr[movies + 1] - ptr[movies])))
    links = np.concatenate([parts[0][0], parts[1][0]])
    owner = np.concatenate([parts[0][1], parts[1][1]])
    keep = links != movies[owner]
    return links[keep], owner[keep]


def _similar(state: GraphState, m: int) -> np.ndarray:
    et = state.edges[EdgeKind.SIMILAR_TO]
    indptr, src, _ = et.reverse
    both = np.concatenate([et.indices[edge_row(et, m)], src[int(indptr[m]) : int(indptr[m + 1])]])
    return both[both != m]


def _label(state: GraphState, kind: VertexKind, i: int, column: str) -> str:
    vt = state.vertices[kind]
    return str(column_item(vt.columns, column, i)) or vt.key_at(i)


def explain(state: GraphState, user: str, movie: str) -> Explanation | None:
    """The best path seed -[edge]- via -[edge]- movie (priority as in store.Explanation)."""
    movies, ratings, stamps = user_ratings(state, user)
    m = vertex_position(state, VertexKind.MOVIE, movie)
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
        seed=state.vertices[VertexKind.MOVIE].key_at(seed),
        seed_title=_label(state, VertexKind.MOVIE, seed, "title"),
        seed_rating=rating,
        edge=edge,
        via_kind=via_kind,
        via_key="" if via_kind is None else state.vertices[via_kind].key_at(via),
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
    pos, _ = gather_rows(indptr, movies)
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
