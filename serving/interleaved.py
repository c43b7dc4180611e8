"""The interleave arm mode's recommender: one slate that team-draft interleaves two arms'
rankings (agent.evaluation.interleaving.team_draft), each item marked with its team.

Each user sees both policies in one slate, so a choice credits the team whose item was chosen
and the comparison is within the user: a household's few users can tell two versions apart.
Interleaved slates carry no state or action: they come from neither policy alone, so feedback
on them makes no training transition (events are still stored and credited to the team).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from agent.evaluation.interleaving import team_draft
from serving.recommender import RecommendationResult, Recommender, ScoredItem

log = logging.getLogger(__name__)

VERSION_SEPARATOR = "|"


def team_version_key(team: str) -> str:
    """The ``RecommendationResult.extra`` key holding a team's policy version."""
    return f"version:{team}"


class InterleavedRecommender:
    """Team-draft interleaving of arm ``names[0]``'s and ``names[1]``'s recommenders.

    Both rank ``k`` movies; their union holds at least ``k``, so the slate is full. The coin
    that decides who picks first in each round comes from ``rng`` (a fresh unseeded generator
    per slate by default), or with ``seed`` (MARQUEE_SAMPLING_SEED) from a generator seeded by
    (seed, user, n) for a user's n-th slate, so a replay draws the same teams.
    ``policy_version`` is "A-version|B-version", in arm order.
    """

    def __init__(
        self,
        a: Recommender,
        b: Recommender,
        names: tuple[str, str],
        rng: Callable[[], np.random.Generator] = np.random.default_rng,
        seed: int | None = None,
    ) -> None:
        self.a, self.b = a, b
        self.names = names
        self._rng = rng
        self.seed = seed
        self._slates: dict[str, int] = {}
        self._lock = threading.Lock()

    def _coin(self, user: str) -> np.random.Generator:
        if self.seed is None:
            return self._rng()
        with self._lock:
            n = self._slates.get(user, 0)
            self._slates[user] = n + 1
        return np.random.default_rng([self.seed, zlib.crc32(user.encode()), n])

    @property
    def policy_version(self) -> str:
        return f"{self.a.policy_version}{VERSION_SEPARATOR}{self.b.policy_version}"

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        results = tuple(r.recommend(user, k, genres=genres) for r in (self.a, self.b))
        movies = sorted({i.movie for r in results for i in r.items})
        index = {m: n for n, m in enumerate(movies)}
        rankings = [[index[i.movie] for i in r.items] for r in results]
        items_by_team = [{i.movie: i for i in r.items} for r in results]
        picked, teams = team_draft(rankings[0], rankings[1], k, self._coin(user))
        items: list[ScoredItem] = []
        for n, team in zip(picked, teams, strict=True):
            movie = movies[n]
            items.append(replace(items_by_team[team][movie], team=self.names[team]))
        extra = {
            team_version_key(name): r.policy_version
            for name, r in zip(self.names, results, strict=True)
        }
        return RecommendationResult(
            items=items,
            policy_version=f"{results[0].policy_version}{VERSION_SEPARATOR}"
            f"{results[1].policy_version}",
            cold_start=all(r.cold_start for r in results),
            extra=extra,
        )

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        """None: an interleaved slate has no state of its own (no training transition)."""
        return None
