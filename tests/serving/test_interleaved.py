"""The interleave arm mode's recommender: team-draft slates of two arms, items marked by team."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from serving.interleaved import InterleavedRecommender, team_version_key
from serving.recommender import RecommendationResult, ScoredItem


class Ranked:
    """A recommender that always ranks the same movies (best first)."""

    def __init__(self, movies: Sequence[str], version: str) -> None:
        self.movies = list(movies)
        self.policy_version = version

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        items = [
            ScoredItem(m, score=1.0 - i / 10, propensity=0.5, reason=f"{self.policy_version}:{m}")
            for i, m in enumerate(self.movies[:k])
        ]
        return RecommendationResult(items, self.policy_version, state=np.zeros(2))

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        return state


A = Ranked(["1", "2", "3", "4", "5", "6"], "ddpg-v6")
B = Ranked(["4", "1", "7", "8", "2", "9"], "ddpg-v7")


@pytest.mark.parametrize("seed", range(20))
def test_slates_are_team_drafts_of_both_rankings(seed: int) -> None:
    rec = InterleavedRecommender(A, B, ("a", "b"), rng=lambda: np.random.default_rng(seed))
    result = rec.recommend("u", 5)
    movies = [i.movie for i in result.items]
    teams = [i.team for i in result.items]
    assert len(movies) == 5 and len(set(movies)) == 5
    assert abs(teams.count("a") - teams.count("b")) <= 1  # the captains take turns
    for pos, (movie, team) in enumerate(zip(movies, teams, strict=True)):
        ranking = (A if team == "a" else B).movies
        # each pick is the team's best movie not already on the slate
        assert movie == next(m for m in ranking if m not in movies[:pos])
        assert result.items[pos].reason == f"ddpg-v{6 if team == 'a' else 7}:{movie}"
    assert result.policy_version == "ddpg-v6|ddpg-v7"
    assert result.extra == {team_version_key("a"): "ddpg-v6", team_version_key("b"): "ddpg-v7"}
    assert result.state is None and result.action is None  # no training transition
    assert rec.next_state("u", np.zeros(2), "1", 5.0) is None


def test_the_coin_decides_who_picks_first() -> None:
    firsts = {
        InterleavedRecommender(A, B, ("a", "b"), rng=lambda s=s: np.random.default_rng(s))
        .recommend("u", 4)
        .items[0]
        .team
        for s in range(40)
    }
    assert firsts == {"a", "b"}


def test_overlapping_rankings_still_fill_the_slate() -> None:
    same = InterleavedRecommender(A, Ranked(A.movies, "ddpg-v7"), ("a", "b"))
    result = same.recommend("u", 6)
    assert [i.movie for i in result.items] == A.movies  # the same ranking: its order
    assert {i.team for i in result.items} <= {"a", "b"}


def test_a_seed_draws_the_same_teams_per_user_and_slate_number() -> None:
    """MARQUEE_SAMPLING_SEED: a replay of the same requests gets the same slates; a user's
    next slate draws a new coin."""

    def slates(seed: int) -> list[list[str | None]]:
        rec = InterleavedRecommender(A, B, ("a", "b"), seed=seed)
        return [[i.team for i in rec.recommend(u, 6).items] for u in ("u1", "u2", "u1", "u1")]

    first = slates(7)
    assert first == slates(7)
    assert len({tuple(t) for t in first}) > 1  # not one fixed draw for every slate
    assert any(slates(s) != first for s in (8, 9, 10))
