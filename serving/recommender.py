"""The Recommender protocol the service serves through, whatever model is behind it.

The cold-start popularity recommender (serving.popularity) implements it from the graph alone;
the DDPG policy recommender implements it with a state builder, an actor and features.ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ScoredItem:
    """One recommended movie. ``propensity`` is the probability the policy showed it here
    (1.0 for a deterministic ranking); ``reason`` is a fallback explanation for when the graph
    has no path from the user's liked movies (e.g. "Popular in Comedy"); ``team`` is the A/B
    arm whose ranking put it on an interleaved slate (None on a plain slate)."""

    movie: str
    score: float
    propensity: float = 1.0
    reason: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class RecommendationResult:
    """A slate plus what the online learner needs to log: the state and action behind it."""

    items: list[ScoredItem]
    policy_version: str
    cold_start: bool = False
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Recommender(Protocol):
    """Ranks movies for a user; implementations must be safe to call from several threads."""

    @property
    def policy_version(self) -> str:
        """The loaded policy's version id (logged with every recommendation)."""
        ...

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        """The top ``k`` movies for ``user``. Unknown users get a cold-start slate (optionally
        steered by ``genres``, genre keys or names), never an error."""
        ...

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        """The state after ``movie`` joins the user's history: rated ``rating``, or only seen
        when ``rating`` is None (``movie`` None: unchanged). None when this recommender has no
        state (then feedback yields no transition)."""
        ...
