"""The DDPG-policy Recommender: user history from the graph, state, actor, ranked slate.

For a known user: their ratings in the graph store (movie keys mapped to the rows of the world
the policy was trained on; movies the world does not hold are ignored) form a UserHistory;
``StateBuilder.build`` gives the state, the actor gives the action, and
``features.ranking.rank`` orders the ``CandidateGenerator`` candidates, so the service ranks
exactly as the simulator did. With temperature > 0 the slate is a Plackett-Luce sample and
each item carries its propensity. Users without usable history get the cold-start recommender.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from features.candidates import DEFAULT_CANDIDATE_HOPS, CandidateGenerator
from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore, UnknownVertexError
from features.ranking import rank
from features.state import POOL_HOPS, StateBuilder, UserHistory
from serving.recommender import RecommendationResult, Recommender, ScoredItem

log = logging.getLogger(__name__)

SEEN_EDGES = (EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)  # never candidates, not in the state
# (world rows or -1, ratings, timestamps, seen world rows or -1) of one user
_Found = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]
]


class RankingWorld:
    """What every policy version of one world shares: catalog, embeddings, state builder,
    candidate generator and a key -> row dict (built once; the hop precomputation is costly)."""

    def __init__(
        self,
        catalog: Catalog,
        embeddings: ItemEmbeddings,
        *,
        max_candidates: int = 200,
        hops: int = DEFAULT_CANDIDATE_HOPS,
        pool_hops: tuple[int, ...] = POOL_HOPS,
        cache_size: int = 10_000,
        cache_seconds: float = 30.0,
    ) -> None:
        self.catalog = catalog
        self.vectors = embeddings.vectors
        self.builder = StateBuilder(catalog, embeddings, pool_hops=pool_hops)
        self.candidates = CandidateGenerator(
            catalog, max_candidates=min(max_candidates, catalog.n_movies), hops=hops
        )
        self.keys: list[str] = [str(k) for k in catalog.movie_keys]
        self.row_of: dict[str, int] = {k: i for i, k in enumerate(self.keys)}
        self._store_rows: tuple[object, npt.NDArray[np.int64]] | None = None
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, _Prepared] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(
        self, store: GraphStore, user: str
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None:
        """(state, candidates) for a user with usable history, else None. Cached per user:
        with the embedded store until its graph changes (each write makes a new state
        object); with other stores for ``cache_seconds``. Both do not depend on the policy,
        so every version shares them."""
        token = getattr(store, "state", None)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(user)
            fresh = hit is not None and hit.token is token
            if (
                hit is not None
                and fresh
                and (token is not None or now - hit.made <= self.cache_seconds)
            ):
                self._cache.move_to_end(user)
                return hit.value
        history = self.history(store, user)
        value = None
        if history is not None and history.items:
            value = (self.builder.build(history), self.candidates.generate(history))
        with self._lock:
            self._cache[user] = _Prepared(token, now, value)
            self._cache.move_to_end(user)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return value

    @property
    def observation_size(self) -> int:
        return self.builder.observation_size

    @property
    def action_size(self) -> int:
        return int(self.vectors.shape[1])

    def history(self, store: GraphStore, user: str) -> UserHistory | None:
        """The user's history from the store (ratings oldest first; watched and dismissed
        movies marked seen), or None for a user the store does not hold."""
        try:
            found = self._local_ratings(store, user)
            if found is None:
                found = self._ratings(store, user)
        except UnknownVertexError:
            return None
        rows, ratings, stamps, seen = found
        keep = rows >= 0  # movies the policy's world does not know are ignored
        rows, ratings, stamps = rows[keep], ratings[keep], stamps[keep]
        order = np.lexsort((rows, stamps))
        history = UserHistory.from_ratings(self.catalog.n_movies, rows[order], ratings[order])
        history.seen[seen[seen >= 0]] = True  # mark_seen for each
        return history

    def _ratings(self, store: GraphStore, user: str) -> _Found:
        """Through the GraphStore protocol (any store)."""
        rated = store.neighbours(VertexKind.USER, user, EdgeKind.RATED, "out")
        rows = np.array([self.row_of.get(nb.key, -1) for nb in rated], dtype=np.int64)
        ratings = np.array([float(nb.attrs.get("rating") or 0.0) for nb in rated])  # type: ignore[arg-type]
        stamps = np.array([float(nb.attrs.get("timestamp") or 0) for nb in rated])  # type: ignore[arg-type]
        seen = [
            self.row_of.get(nb.key, -1)
            for edge in SEEN_EDGES
            for nb in store.neighbours(VertexKind.USER, user, edge, "out")
        ]
        return rows, ratings, stamps, np.array(seen, dtype=np.int64)

    def _local_ratings(self, store: GraphStore, user: str) -> _Found | None:
        """The same from the embedded store's arrays (no per-edge Python objects), or None
        for other stores. Store movie positions map to world rows by a cached array."""
        from features.graph.local import LocalGraphStore

        if not isinstance(store, LocalGraphStore):
            return None
        from features.graph import local_queries as q

        state = store.state
        movies, ratings, stamps = q.user_ratings(state, user)
        table = state.vertices[VertexKind.MOVIE]
        cached = self._store_rows
        if cached is None or cached[0] is not table:
            to_row = np.array([self.row_of.get(str(k), -1) for k in table.keys], dtype=np.int64)
            cached = self._store_rows = (table, to_row)
        to_row = cached[1]
        u = table_find(state, user)
        seen = [
            state.edges[e].indices[state.edges[e].indptr[u] : state.edges[e].indptr[u + 1]]
            for e in SEEN_EDGES
        ]
        return (
            to_row[movies],
            np.asarray(ratings, dtype=np.float64),
            np.asarray(stamps, dtype=np.float64),
            to_row[np.concatenate(seen)] if seen else np.zeros(0, dtype=np.int64),
        )


@dataclass(frozen=True)
class _Prepared:
    token: object  # the embedded store's state object it was computed from (None otherwise)
    made: float
    value: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None


def table_find(state: Any, user: str) -> int:
    """The embedded store's position of a user (UnknownVertexError when absent)."""
    i = int(state.vertices[VertexKind.USER].find(user))
    if i < 0:
        raise UnknownVertexError(VertexKind.USER, user)
    return i


def actor_fn(model: Any) -> Any:
    """A function state -> action using the SB3 model's actor directly (no ``predict``
    bookkeeping), under torch's inference mode; the action is the deterministic tanh output."""
    import torch as th

    actor = model.actor
    actor.eval()

    def act(state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with th.inference_mode():
            out = actor(th.from_numpy(state.reshape(1, -1)))
        return np.asarray(out.numpy()[0], dtype=np.float32)

    return act


@dataclass(frozen=True)
class PolicyRecommender:
    """Implements serving.recommender.Recommender with a trained actor (module doc).

    ``act`` maps a state to an action (see ``actor_fn``); ``fallback`` serves cold starts;
    ``seed`` fixes the sampling generator (tests) instead of fresh entropy per request.
    """

    world: RankingWorld
    store: GraphStore
    act: Any
    fallback: Recommender
    version: str
    temperature: float = 0.0
    seed: int | None = None

    @property
    def policy_version(self) -> str:
        return self.version

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        prepared = self.world.prepare(self.store, user)
        if prepared is None:
            cold = self.fallback.recommend(user, k, genres=genres)
            return RecommendationResult(
                items=cold.items,
                policy_version=cold.policy_version,
                cold_start=True,
                extra={"policy": self.version, "served_by": cold.policy_version},
            )
        state, cands = prepared
        action = self.act(state)
        if cands.shape[0] == 0:  # the user has seen the whole catalogue
            return RecommendationResult(
                items=[], policy_version=self.version, state=state, action=action
            )
        rng = np.random.default_rng(self.seed) if self.temperature > 0 else None
        slate = rank(action, cands, self.world.vectors, k, self.temperature, rng)
        keys = self.world.keys
        items = [
            ScoredItem(movie=keys[int(i)], score=round(float(s), 6), propensity=float(p))
            for i, s, p in zip(slate.indices, slate.scores, slate.propensities, strict=True)
        ]
        return RecommendationResult(
            items=items,
            policy_version=self.version,
            state=state,
            action=action,
            extra={"log_propensity": repr(slate.log_propensity)},
        )

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        """The state from the user's current history (from the store) after ``movie`` joins it
        with ``rating``, as the simulator adds a chosen movie, or only marked seen when
        ``rating`` is None (serving.feedback.history says which). A movie the store already
        holds a rating for is re-rated: its earlier rating is dropped, the new one is the
        latest, so a rating the graph already has is not counted twice."""
        history = self.world.history(self.store, user)
        if history is None:
            history = self.world.builder.new_history()
        row = self.world.row_of.get(movie) if movie is not None else None
        if row is not None and rating is not None:
            history = _with_rating(history, row, rating)
        elif row is not None and not history.seen[row]:
            history.mark_seen(row)
        return self.world.builder.build(history)


def _with_rating(history: UserHistory, row: int, rating: float) -> UserHistory:
    """``history`` with ``row`` rated ``rating`` as its latest entry (an earlier rating of the
    same movie removed); seen marks are kept."""
    if row in history.items:
        keep = [i for i, m in enumerate(history.items) if m != row]
        rebuilt = UserHistory.from_ratings(
            history.n_movies,
            [history.items[i] for i in keep],
            [history.ratings[i] for i in keep],
            min_rating=history.min_rating,
        )
        rebuilt.seen |= history.seen
        history = rebuilt
    history.add(row, rating)
    return history
