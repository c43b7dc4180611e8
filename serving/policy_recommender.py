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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from features.candidates import CandidateGenerator
from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore, UnknownVertexError
from features.ranking import rank
from features.state import StateBuilder, UserHistory
from serving.recommender import RecommendationResult, Recommender, ScoredItem

log = logging.getLogger(__name__)

SEEN_EDGES = (EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)  # never candidates, not in the state


class RankingWorld:
    """What every policy version of one world shares: catalog, embeddings, state builder,
    candidate generator and a key -> row dict (built once; the hop precomputation is costly)."""

    def __init__(
        self,
        catalog: Catalog,
        embeddings: ItemEmbeddings,
        *,
        max_candidates: int = 200,
        hops: int = 3,
    ) -> None:
        self.catalog = catalog
        self.vectors = embeddings.vectors
        self.builder = StateBuilder(catalog, embeddings)
        self.candidates = CandidateGenerator(
            catalog, max_candidates=min(max_candidates, catalog.n_movies), hops=hops
        )
        self.keys: list[str] = [str(k) for k in catalog.movie_keys]
        self.row_of: dict[str, int] = {k: i for i, k in enumerate(self.keys)}

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
            rated = store.neighbours(VertexKind.USER, user, EdgeKind.RATED, "out")
        except UnknownVertexError:
            return None
        rows: list[tuple[float, int, float]] = []
        for nb in rated:
            row = self.row_of.get(nb.key)
            if row is None:
                continue  # a movie the policy's world does not know
            stamp = nb.attrs.get("timestamp") or 0
            rating = nb.attrs.get("rating")
            if rating is None:
                continue
            rows.append((float(stamp), row, float(rating)))  # type: ignore[arg-type]
        rows.sort()
        history = UserHistory(n_movies=self.catalog.n_movies)
        for _, row, rating in rows:
            history.add(row, rating)
        for edge in SEEN_EDGES:
            for nb in store.neighbours(VertexKind.USER, user, edge, "out"):
                row = self.row_of.get(nb.key)
                if row is not None:
                    history.mark_seen(row)
        return history


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
        history = self.world.history(self.store, user)
        if history is None or not history.items:
            cold = self.fallback.recommend(user, k, genres=genres)
            return RecommendationResult(
                items=cold.items,
                policy_version=cold.policy_version,
                cold_start=True,
                extra={"policy": self.version, "served_by": cold.policy_version},
            )
        state = self.world.builder.build(history)
        action = self.act(state)
        cands = self.world.candidates.generate(history)
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

    def next_state(self, user: str, state: np.ndarray, movie: str | None) -> np.ndarray | None:
        """The state from the user's current history with ``movie`` marked seen (its rating
        counts once the store holds it: the feedback event's rating is not passed here)."""
        history = self.world.history(self.store, user)
        if history is None:
            history = self.world.builder.new_history()
        row = self.world.row_of.get(movie) if movie is not None else None
        if row is not None and not history.seen[row]:
            history.mark_seen(row)
        return self.world.builder.build(history)
