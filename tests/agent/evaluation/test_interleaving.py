"""Team-draft interleaving: the draft's rules, credit, and the simulated sensitivity study."""

from __future__ import annotations

import numpy as np

from agent.baselines.simple import MostPopularPolicy
from agent.evaluation.interleaving import TEAM_A, TEAM_B, credit, sensitivity, team_draft
from agent.evaluation.weakened import WeakenedPolicy
from env.world import SimulationWorld


def test_team_draft_alternates_teams_and_keeps_each_rankers_order() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = list(rng.permutation(30)[:10])
        b = list(rng.permutation(30)[:10])
        items, teams = team_draft(a, b, 10, rng)
        assert len(items) == len(set(items)) == 10
        # after every pair of picks the teams are level (team draft's balance)
        for n in range(2, 11, 2):
            assert teams[:n].count(TEAM_A) == teams[:n].count(TEAM_B)
        # each team's items appear in its ranker's order, and come from that ranker
        for team, ranking in ((TEAM_A, a), (TEAM_B, b)):
            mine = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert all(i in ranking for i in mine)
            assert mine == sorted(mine, key=ranking.index)


def test_identical_rankings_split_credit_evenly_and_short_lists_are_exhausted() -> None:
    rng = np.random.default_rng(1)
    firsts = [team_draft([1, 2, 3], [1, 2, 3], 3, rng)[1][0] for _ in range(400)]
    assert 150 < firsts.count(TEAM_A) < 250  # a fair coin decides who picks first
    items, teams = team_draft([1, 2], [2, 3, 4, 5], 5, rng)
    assert sorted(items) == [1, 2, 3, 4, 5]
    assert credit(teams, None) is None
    assert credit(teams, items.index(1)) == TEAM_A
    assert credit(teams, items.index(5)) == TEAM_B


def test_interleaving_tells_a_policy_from_its_weakened_copy_with_fewer_users(
    ml_world: SimulationWorld,
) -> None:
    champion = MostPopularPolicy()
    weak = WeakenedPolicy(champion, 1.0)
    result = sensitivity(champion, weak, ml_world, users=30, seeds=(0, 1), max_steps=10)
    pref = result.interleaving
    assert pref.wins_a > pref.wins_b  # the champion's items are chosen more often
    assert pref.preference.ci95_high < 0 and pref.preference.p_value < 0.05
    assert result.interleaving_users_needed < result.ab_users_needed
    small = [sensitivity(champion, weak, ml_world, users=4, seeds=(0, 1), max_steps=5)]
    small.append(sensitivity(champion, weak, ml_world, users=4, seeds=(0, 1), max_steps=5))
    assert small[0].as_dict() == small[1].as_dict()  # same seeds, same report
