"""Cold-start recommender from the graph alone: popular movies, within the user's liked genres.

Popularity here is features.popularity.liked_counts: the number of ratings >=
schema.POSITIVE_RATING a movie received. A known
user gets popular unseen movies in the genres they rated highly (store.user_affinity), scored
by popularity times affinity; the rest of the slate, and unknown users, get popular movies in
the genres asked for (``genres``), else popular movies overall.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.graph.schema import USER_EDGES, EdgeKind, VertexKind, slug
from features.graph.store import GraphStore
from features.popularity import liked_counts
from serving.recommender import RecommendationResult, ScoredItem

log = logging.getLogger(__name__)

TOP_GENRES = 3  # how many of a known user's best genres steer their slate
_NONE = np.zeros(0, dtype=np.int64)
_CHUNK = 64  # movie rows turned into Python ints at a time while walking an order


def _rows(order: npt.NDArray[np.int64]) -> Iterator[int]:
    """The rows of ``order`` as Python ints, converted a chunk at a time (a walk stops after
    a slate's worth, so converting the whole order would be wasted)."""
    for at in range(0, order.shape[0], _CHUNK):
        yield from order[at : at + _CHUNK].tolist()


@dataclass(frozen=True)
class _Tables:
    """One refresh's popularity, as flat arrays over the movie vertices (no per-movie Python
    objects: at 500K movies the dicts and lists this replaces held ~400 MB per worker)."""

    keys: npt.NDArray[np.str_]  # movie key per movie index (the store's vertex order)
    pop: npt.NDArray[np.float64]  # liked count / the highest, per movie index
    order: npt.NDArray[np.int64]  # movie indices by count desc, then key
    by_genre: dict[str, npt.NDArray[np.int64]]  # genre key -> its movies, in ``order``'s order
    genre_keys: npt.NDArray[np.str_]  # genre key per genre code
    movie_genre_start: npt.NDArray[np.int64]  # movie index -> its codes' slice start...
    movie_genre_codes: npt.NDArray[np.int32]  # ... in the in_genre frame's order
    genre_names: dict[str, str]
    genre_lookup: dict[str, str]  # key or slug(name) -> key

    def key(self, movie: int) -> str:
        return str(self.keys[movie])

    def genres_of(self, movie: int) -> list[str]:
        a, b = self.movie_genre_start[movie], self.movie_genre_start[movie + 1]
        return [str(g) for g in self.genre_keys[self.movie_genre_codes[a:b]]]


def _tables(store: GraphStore) -> _Tables:
    """Popularity from the store (module doc), the same values and orders the dict-based
    version computed: ties by key as Python compares strings (numpy compares code points too)."""
    counts = liked_counts(store.edge_frame(EdgeKind.RATED))
    movie_keys = store.vertex_frame(VertexKind.MOVIE)["key"].astype(str)
    keys = np.asarray(movie_keys.to_numpy(), dtype=str) if len(movie_keys) else np.array([], "U1")
    index = pd.Index(keys)
    pop = np.zeros(len(keys), dtype=np.float64)
    at = index.get_indexer(counts.index.astype(str))
    pop[at[at >= 0]] = counts.to_numpy(dtype=np.float64)[at >= 0]
    order = np.lexsort((keys, -pop)).astype(np.int64)  # count desc, then key
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    in_genre = store.edge_frame(EdgeKind.IN_GENRE)
    src = index.get_indexer(in_genre["src"].astype(str))
    dst = in_genre["dst"].astype(str).to_numpy()
    genre_keys, codes = np.unique(dst, return_inverse=True) if len(dst) else (np.array([]), dst)
    by_genre: dict[str, npt.NDArray[np.int64]] = {}
    known = src >= 0
    for code, genre in enumerate(genre_keys.tolist()):
        members = src[known & (codes == code)]
        by_genre[str(genre)] = members[np.argsort(rank[members], kind="stable")]
    movies_of = np.argsort(src[known], kind="stable")  # each movie's genres, in frame order
    start = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.bincount(src[known], minlength=len(keys)), out=start[1:])
    genre_names = store.vertex_frame(VertexKind.GENRE)
    names = dict(zip(genre_names["key"].astype(str), genre_names["name"].astype(str), strict=True))
    top = float(pop.max()) if len(pop) else 0.0
    return _Tables(
        keys=keys,
        pop=pop / top if top > 0 else pop,
        order=order,
        by_genre=by_genre,
        genre_keys=np.asarray(genre_keys, dtype=str),
        movie_genre_start=start,
        movie_genre_codes=np.asarray(codes[known][movies_of], dtype=np.int32),
        genre_names=names,
        genre_lookup={slug(n): k for k, n in names.items()} | {k: k for k in names},
    )


class PopularityRecommender:
    """Implements serving.recommender.Recommender; computes popularity once, then on refresh()."""

    policy_version = "popularity"

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        """Recompute popularity from the store (after imports or new ratings)."""
        tables = _tables(self._store)
        with self._lock:
            self._t = tables  # one reference: a request in progress keeps the old tables
        log.info("popularity: %d movies, %d genres", len(tables.order), len(tables.by_genre))

    def genre_key(self, genre: str) -> str | None:
        """The genre key for a key or a name ("Sci-Fi" -> "sci_fi"), or None if unknown."""
        lookup = self._t.genre_lookup
        return lookup.get(genre) or lookup.get(slug(genre))

    def _seen(self, user: str) -> set[str]:
        seen: set[str] = set()
        for edge in USER_EDGES:
            seen.update(n.key for n in self._store.neighbours(VertexKind.USER, user, edge, "out"))
        return seen

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        t = self._t
        pop = t.pop
        known = self._store.vertex(VertexKind.USER, user) is not None
        seen = self._seen(user) if known else set()
        items: list[ScoredItem] = []
        taken: set[str] = set()

        def take(movie: str, score: float, reason: Callable[[], str]) -> None:
            if movie not in seen and movie not in taken and len(items) < k:
                items.append(ScoredItem(movie=movie, score=round(score, 6), reason=reason()))
                taken.add(movie)

        liked: dict[str, float] = {}
        if known:
            affinity = self._store.user_affinity(user).genres
            best = sorted((g for g, w in affinity.items() if w > 0), key=lambda g: -affinity[g])
            liked = {g: affinity[g] for g in best[:TOP_GENRES]}
        if liked:
            scored: dict[str, float] = {}
            rows: dict[str, int] = {}
            for genre, weight in liked.items():
                for row in t.by_genre.get(genre, _NONE)[: 4 * k + len(seen)].tolist():
                    value = float(pop[row])
                    if value <= 0:
                        break  # sorted by popularity: the rest are unrated too
                    movie = t.key(row)
                    rows[movie] = row
                    scored[movie] = scored.get(movie, 0.0) + weight * value
            for movie in sorted(scored, key=lambda m: (-scored[m], m)):
                if len(items) >= k:
                    break
                take(movie, scored[movie], partial(self._reason, t, rows[movie], liked))
        asked = [g for g in (self.genre_key(x) for x in genres) if g is not None]
        for genre in asked:
            for row in _rows(t.by_genre.get(genre, _NONE)):
                if len(items) >= k or pop[row] <= 0:
                    break
                name = t.genre_names[genre]
                take(t.key(row), float(pop[row]), partial(str.format, "Popular in {}.", name))
        for row in _rows(t.order):
            if len(items) >= k:
                break
            take(t.key(row), float(pop[row]), lambda: "Popular with everyone.")
        return RecommendationResult(
            items=items, policy_version=self.policy_version, cold_start=not liked
        )

    @staticmethod
    def _reason(t: _Tables, movie: int, liked: dict[str, float]) -> str:
        shared = [g for g in t.genres_of(movie) if g in liked]
        names = ", ".join(t.genre_names.get(g, g) for g in shared) or "these genres"
        return f"You like {names}; this is popular there."

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        return None  # no state: feedback on popularity slates is stored but not a transition
