"""The DDPG-policy Recommender: a trained actor behind the service's Recommender protocol.

Ranking itself is features.ranker.Ranker (the user's history from the graph store, the state,
the candidates, ``features.ranking.rank``), so the service ranks exactly as the simulator did;
this class adds the policy's actor and version, the cold-start fallback and the shape of a
RecommendationResult. With temperature > 0 the slate is a Plackett-Luce sample and each item
carries its propensity.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from features.graph.store import GraphStore
from features.ranker import Actor, Ranker
from serving.recommender import RecommendationResult, Recommender, ScoredItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyRecommender:
    """Implements serving.recommender.Recommender with a trained actor (module doc).

    ``act`` maps a state to an action (agent.actor.actor_fn); ``fallback`` serves cold
    starts. ``action_noise`` (MARQUEE_ACTION_NOISE) explores around the actor's action
    (features.ranker.explore); ``implied_action_sd`` (MARQUEE_IMPLIED_ACTION_SD) logs the
    action a sampled slate implies instead of the actor's (features.implied_action).
    ``seed`` (MARQUEE_SAMPLING_SEED) makes the sampling reproducible: the n-th request of a
    user to this version draws from a generator seeded by (seed, version, user, n), so the
    same requests give the same slates whatever other users asked in between; unset, each
    thread draws from its own generator, seeded once from fresh entropy (seeding one from
    the OS for every request cost ~5% of a request's CPU under load).
    """

    ranker: Ranker
    store: GraphStore
    act: Actor
    fallback: Recommender
    version: str
    temperature: float = 0.0
    action_noise: float = 0.0
    implied_action_sd: float = 0.0
    seed: int | None = None
    _requests: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    @property
    def policy_version(self) -> str:
        return self.version

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        explores = self.temperature > 0 or self.action_noise > 0
        rng = self._rng(user) if explores else None
        ranked = self.ranker.rank(
            self.store,
            user,
            self.act,
            k,
            self.temperature,
            rng,
            self.action_noise,
            self.implied_action_sd,
        )
        if ranked is None:
            cold = self.fallback.recommend(user, k, genres=genres)
            return RecommendationResult(
                items=cold.items,
                policy_version=cold.policy_version,
                cold_start=True,
                extra={"policy": self.version, "served_by": cold.policy_version},
            )
        slate = ranked.slate
        if slate is None:  # the user has seen the whole catalogue
            return RecommendationResult(
                items=[], policy_version=self.version, state=ranked.state, action=ranked.action
            )
        keys = self.ranker.keys
        items = [
            ScoredItem(movie=keys[int(i)], score=round(float(s), 6), propensity=float(p))
            for i, s, p in zip(slate.indices, slate.scores, slate.propensities, strict=True)
        ]
        return RecommendationResult(
            items=items,
            policy_version=self.version,
            state=ranked.state,
            action=ranked.action,
            extra={"log_propensity": repr(slate.log_propensity)},
        )

    def _rng(self, user: str) -> np.random.Generator:
        """The generator of this request (class doc): seeded per (version, user, n), else
        this thread's (a generator is not safe to share between threads)."""
        if self.seed is None:
            rng: np.random.Generator | None = getattr(self._local, "rng", None)
            if rng is None:
                rng = self._local.rng = np.random.default_rng()
            return rng
        with self._lock:
            n = self._requests.get(user, 0)
            self._requests[user] = n + 1
        crc = zlib.crc32
        return np.random.default_rng([self.seed, crc(self.version.encode()), crc(user.encode()), n])

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        """s' from the user's current history in the store after ``movie`` joins it
        (features.ranker.Ranker.next_state; serving.feedback.history says which change)."""
        return self.ranker.next_state(self.store, user, movie, rating)
