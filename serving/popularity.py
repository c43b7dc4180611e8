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
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd

from features.graph.schema import USER_EDGES, EdgeKind, VertexKind, slug
from features.graph.store import GraphStore
from features.popularity import liked_counts
from serving.recommender import RecommendationResult, ScoredItem

log = logging.getLogger(__name__)

TOP_GENRES = 3  # how many of a known user's best genres steer their slate


class PopularityRecommender:
    """Implements serving.recommender.Recommender; computes popularity once, then on refresh()."""

    policy_version = "popularity"

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        """Recompute popularity from the store (after imports or new ratings)."""
        counts = liked_counts(self._store.edge_frame(EdgeKind.RATED))
        movies = self._store.vertex_frame(VertexKind.MOVIE)
        pop = pd.Series(0.0, index=movies["key"].astype(str))
        pop.loc[counts.index.astype(str).intersection(pop.index)] = counts.astype(float)
        order = sorted(pop.index, key=lambda m: (-pop[m], m))  # count desc, then key
        in_genre = self._store.edge_frame(EdgeKind.IN_GENRE)
        genre_names = self._store.vertex_frame(VertexKind.GENRE)
        by_genre: dict[str, list[str]] = {}
        rank = {m: i for i, m in enumerate(order)}
        for genre, frame in in_genre.groupby("dst"):
            members = [m for m in frame["src"].astype(str) if m in rank]
            by_genre[str(genre)] = sorted(members, key=rank.__getitem__)
        movie_genres: dict[str, list[str]] = {}
        for src, dst in zip(in_genre["src"].astype(str), in_genre["dst"].astype(str), strict=True):
            movie_genres.setdefault(src, []).append(dst)
        names = dict(
            zip(genre_names["key"].astype(str), genre_names["name"].astype(str), strict=True)
        )
        top = float(pop.max()) if len(pop) else 0.0
        with self._lock:
            self._pop: dict[str, float] = ((pop / top) if top > 0 else pop).to_dict()
            self._order = order
            self._by_genre = by_genre
            self._movie_genres = movie_genres
            self._genre_names = names
            self._genre_keys = {slug(n): k for k, n in names.items()} | {k: k for k in names}
        log.info("popularity: %d movies, %d genres", len(order), len(by_genre))

    def genre_key(self, genre: str) -> str | None:
        """The genre key for a key or a name ("Sci-Fi" -> "sci_fi"), or None if unknown."""
        return self._genre_keys.get(genre) or self._genre_keys.get(slug(genre))

    def _seen(self, user: str) -> set[str]:
        seen: set[str] = set()
        for edge in USER_EDGES:
            seen.update(n.key for n in self._store.neighbours(VertexKind.USER, user, edge, "out"))
        return seen

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
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
            for genre, weight in liked.items():
                for movie in self._by_genre.get(genre, [])[: 4 * k + len(seen)]:
                    if self._pop[movie] <= 0:
                        break  # sorted by popularity: the rest are unrated too
                    scored[movie] = scored.get(movie, 0.0) + weight * self._pop[movie]
            for movie in sorted(scored, key=lambda m: (-scored[m], m)):
                if len(items) >= k:
                    break
                take(movie, scored[movie], partial(self._reason, movie, liked))
        asked = [g for g in (self.genre_key(x) for x in genres) if g is not None]
        for genre in asked:
            for movie in self._by_genre.get(genre, []):
                if len(items) >= k or self._pop[movie] <= 0:
                    break
                name = self._genre_names[genre]
                take(movie, self._pop[movie], partial(str.format, "Popular in {}.", name))
        for movie in self._order:
            if len(items) >= k:
                break
            take(movie, self._pop[movie], lambda: "Popular with everyone.")
        return RecommendationResult(
            items=items, policy_version=self.policy_version, cold_start=not liked
        )

    def _reason(self, movie: str, liked: dict[str, float]) -> str:
        shared = [g for g in self._movie_genres.get(movie, []) if g in liked]
        names = ", ".join(self._genre_names.get(g, g) for g in shared) or "these genres"
        return f"You like {names}; this is popular there."

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        return None  # no state: feedback on popularity slates is stored but not a transition
