"""The popularity fallback as flat arrays answers exactly as the dict-based version did: the
same slates, scores and reasons on ml-latest-small, for known and unknown users, with and
without genres asked for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd
import pytest

from features.datasets import bundled_movielens
from features.graph.local import LocalGraphStore
from features.graph.schema import USER_EDGES, EdgeKind, VertexKind, slug
from features.graph.store import GraphStore
from features.importers.movielens import load_movielens
from features.popularity import liked_counts
from serving.popularity import TOP_GENRES, PopularityRecommender
from serving.recommender import RecommendationResult, ScoredItem


class DictPopularity:
    """The reference: serving.popularity as it was (Python dicts and lists per movie)."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        counts = liked_counts(store.edge_frame(EdgeKind.RATED))
        movies = store.vertex_frame(VertexKind.MOVIE)
        pop = pd.Series(0.0, index=movies["key"].astype(str))
        pop.loc[counts.index.astype(str).intersection(pop.index)] = counts.astype(float)
        order = sorted(pop.index, key=lambda m: (-pop[m], m))
        in_genre = store.edge_frame(EdgeKind.IN_GENRE)
        genre_names = store.vertex_frame(VertexKind.GENRE)
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
        self._pop: dict[str, float] = ((pop / top) if top > 0 else pop).to_dict()
        self._order = order
        self._by_genre = by_genre
        self._movie_genres = movie_genres
        self._genre_names = names
        self._genre_keys = {slug(n): k for k, n in names.items()} | {k: k for k in names}
        self._lock = threading.Lock()

    def genre_key(self, genre: str) -> str | None:
        return self._genre_keys.get(genre) or self._genre_keys.get(slug(genre))

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        known = self._store.vertex(VertexKind.USER, user) is not None
        seen: set[str] = set()
        if known:
            for edge in USER_EDGES:
                seen.update(
                    n.key for n in self._store.neighbours(VertexKind.USER, user, edge, "out")
                )
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
                        break
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
        return RecommendationResult(items=items, policy_version="popularity", cold_start=not liked)

    def _reason(self, movie: str, liked: dict[str, float]) -> str:
        shared = [g for g in self._movie_genres.get(movie, []) if g in liked]
        names = ", ".join(self._genre_names.get(g, g) for g in shared) or "these genres"
        return f"You like {names}; this is popular there."


@pytest.fixture(scope="module")
def ml_store() -> LocalGraphStore:
    store = LocalGraphStore()
    store.upsert(load_movielens(bundled_movielens()))
    return store


def test_the_same_slates_as_the_dict_based_version(ml_store: LocalGraphStore) -> None:
    new, old = PopularityRecommender(ml_store), DictPopularity(ml_store)
    users = ml_store.vertex_frame(VertexKind.USER)["key"].astype(str).tolist()
    names = ml_store.vertex_frame(VertexKind.GENRE)["name"].astype(str).tolist()
    rng = np.random.default_rng(0)
    cases: list[tuple[str, int, tuple[str, ...]]] = [(u, 10, ()) for u in users]
    cases += [("no-such-user", k, ()) for k in (1, 10, 50)]
    for u in [*rng.choice(users, 60, replace=False).tolist(), "no-such-user"]:
        asked = tuple(rng.choice(names, int(rng.integers(1, 3)), replace=False).tolist())
        cases += [(u, int(rng.integers(1, 40)), asked), (u, 25, (slug(asked[0]), "nope"))]
    for user, k, genres in cases:
        got, want = new.recommend(user, k, genres=genres), old.recommend(user, k, genres=genres)
        assert got == want, (user, k, genres)
    assert new.genre_key("Sci-Fi") == old.genre_key("Sci-Fi") is not None


def test_ties_order_by_key_and_unrated_movies_come_last() -> None:
    from tests.serving.conftest import build_store

    store = build_store()
    new, old = PopularityRecommender(store), DictPopularity(store)
    assert new.recommend("nobody", 8) == old.recommend("nobody", 8)
    assert len(new.recommend("nobody", 8).items) == 8
    for user in ("u1", "u2", "u3", "u4", "u5"):
        for genres in ((), ("Horror",), ("Drama", "Comedy")):
            assert new.recommend(user, 5, genres=genres) == old.recommend(user, 5, genres=genres)


def test_no_per_movie_python_objects(ml_store: LocalGraphStore) -> None:
    """What refresh keeps is arrays over the movies, not dicts or lists of them."""
    tables = PopularityRecommender(ml_store)._t
    n = len(tables.keys)
    for value in vars(tables).values():
        assert isinstance(value, np.ndarray) or len(value) < n // 100
