"""Explanation queries of the embedded store: why a movie is recommended to a user.

The path semantics and the choice among paths are those of ``store.Explanation``: seed movie
-[edge]- via vertex -[edge]- movie, edge priority ``EXPLANATION_PRIORITY``, then the seed's
rating, timestamp and key. ``explain_many`` answers a whole slate in one pass over the state's
link table (features.graph.explain_links).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from features.graph.explain_links import explain_links
from features.graph.local_queries import edge_row, user_ratings, vertex_position
from features.graph.local_state import column_reader
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


def _similar(state: GraphState, m: int) -> np.ndarray:
    et = state.edges[EdgeKind.SIMILAR_TO]
    indptr, src, _ = et.reverse
    both = np.concatenate([et.indices[edge_row(et, m)], src[int(indptr[m]) : int(indptr[m + 1])]])
    return both[both != m]


class _Labels:
    """Vertex labels (the column's string, else the key) and keys, each (kind, column) looked
    up once: a slate's explanations read some 40 titles, names and keys, and looking the
    column up again for each read was about a third of explain_many's CPU."""

    def __init__(self, state: GraphState) -> None:
        self.state = state
        self._readers: dict[tuple[VertexKind, str], Callable[[int], str]] = {}

    def label(self, kind: VertexKind, i: int, column: str) -> str:
        read = self._readers.get((kind, column))
        if read is None:
            vt = self.state.vertices[kind]
            item, key_at = column_reader(vt.columns, column), vt.key_at
            read = self._readers[(kind, column)] = lambda j: str(item(j)) or key_at(j)
        return read(i)

    def key(self, kind: VertexKind, i: int) -> str:
        return self.state.vertices[kind].key_at(i)


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
    labels: _Labels | None = None,
) -> Explanation:
    names = labels if labels is not None else _Labels(state)
    movie_kind = VertexKind.MOVIE
    return Explanation(
        user=user,
        movie=movie,
        movie_title=names.label(movie_kind, m, "title"),
        seed=names.key(movie_kind, seed),
        seed_title=names.label(movie_kind, seed, "title"),
        seed_rating=rating,
        edge=edge,
        via_kind=via_kind,
        via_key="" if via_kind is None else names.key(via_kind, via),
        via_name="" if via_kind is None else names.label(via_kind, via, "name"),
    )


def explain_many(state: GraphState, user: str, movies: list[str]) -> list[Explanation | None]:
    """``explain`` for each of ``movies``, equal to it, in one pass over the user's positives
    and the slate's links (what a served slate needs). Unknown movies get None; an unknown user
    raises UnknownVertexError as ``explain`` does.

    Over the state's link table (features.graph.explain_links: each (edge kind, via vertex)
    one code, similar_to links included): for each code the best seed holding it (first in the
    seed order) is found once; a movie's explanation is then, among its own codes shared with a
    seed, the first edge kind, the best seed within it and the lowest via key with that seed:
    exactly the seed-by-seed search, kind by kind.
    """
    rated, ratings, stamps = user_ratings(state, user)
    mv = state.vertices[VertexKind.MOVIE]
    out: list[Explanation | None] = [None] * len(movies)
    idx = np.array([mv.find(m) for m in movies], dtype=np.int64)
    positive = ratings >= POSITIVE_RATING
    seeds, s_rating = rated[positive].astype(np.int64), ratings[positive]
    if len(idx) * len(seeds) <= 1 << 16:  # a slate: np.isin's sorting costs more than this
        own = (idx[:, None] == seeds[None, :]).any(axis=1)
    else:
        own = np.isin(idx, seeds)
    for k in np.flatnonzero(own):  # a liked movie is explained by its other seeds: one by one
        out[k] = explain(state, user, movies[k])
    pending = np.flatnonzero((idx >= 0) & ~own)
    if not len(seeds) or not len(pending):
        return out
    order = np.lexsort((mv.key_rank[seeds], -stamps[positive], -s_rating))
    place = np.empty(len(seeds), dtype=np.int64)  # each seed's position in the order
    place[order] = np.arange(len(seeds))

    labels = _Labels(state)

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
            labels,
        )

    links = explain_links(state)
    s_codes, s_owner = links.seed_links(seeds)
    t_codes, t_owner = links.of(idx[pending])
    if not len(s_codes) or not len(t_codes):
        return out
    by = np.lexsort((place[s_owner], s_codes))  # per link, best seed first
    c_sorted = s_codes[by]
    first = np.flatnonzero(np.r_[True, c_sorted[1:] != c_sorted[:-1]])
    shared, best = c_sorted[first], place[s_owner[by[first]]]
    at = np.minimum(np.searchsorted(shared, t_codes), len(shared) - 1)
    hit = shared[at] == t_codes
    t_codes, t_owner, t_best = t_codes[hit], t_owner[hit], best[at[hit]]
    kinds = links.kinds(t_codes)
    # per movie: the first edge kind, then the best seed, then the lowest via key
    pick = np.lexsort((t_codes, t_best, kinds, t_owner))
    owners = t_owner[pick]
    lead = pick[np.r_[True, owners[1:] != owners[:-1]]] if len(pick) else pick
    for r in lead.tolist():
        kind = int(kinds[r])
        via_kind, via = links.via(kind, int(t_codes[r]))
        found(int(pending[int(t_owner[r])]), int(t_best[r]), links.edges[kind], via_kind, via)
    return out
