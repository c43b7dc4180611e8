"""Common-random-number episodes (agent.evaluation.simulated): the two return estimators and
paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from agent.baselines.simple import MostPopularPolicy, OraclePolicy, RandomPolicy
from agent.evaluation.ab_stats import paired_difference
from agent.evaluation.simulated import (
    PolicyReport,
    episode_users,
    evaluate_policies,
    paired_differences,
    user_mean,
)
from env.user_model import UserModelConfig
from env.world import SimulationWorld


def _report(name: str, seed_returns: list[float]) -> PolicyReport:
    mean = sum(seed_returns) / len(seed_returns)
    return PolicyReport(
        policy=name,
        mean_return=mean,
        ci95_low=mean,
        ci95_high=mean,
        seed_returns=seed_returns,
        estimator="simple",
        played_seed_returns=seed_returns,
        hit_rate=0.5,
        mean_rating=4.0,
        coverage=0.1,
        diversity=0.5,
        mean_regret=0.1,
        episodes=10,
        steps=100,
    )


def test_users_who_never_leave_give_the_same_return_under_both_estimators(
    ml_world: SimulationWorld,
) -> None:
    stay = UserModelConfig(leave_base=0.0, leave_no_choice=0.0, leave_boredom=0.0)
    (report,) = evaluate_policies(
        [MostPopularPolicy()],
        ml_world,
        seeds=(0, 1),
        episodes_per_seed=3,
        max_steps=8,
        user_config=stay,
    )
    assert report.estimator == "stratified"
    assert report.seed_returns == pytest.approx(report.played_seed_returns)
    assert report.steps == 2 * 3 * 8


def test_the_expected_return_is_the_sampled_one_on_average_with_less_spread(
    ml_world: SimulationWorld,
) -> None:
    # the oracle's picks are chosen and liked, so a return is mostly how long the user stays:
    # 10% leave after every slate
    leave = UserModelConfig(leave_base=0.1, leave_no_choice=0.0, leave_boredom=0.0)
    seeds = tuple(range(8))
    (exp,), (smp,) = (
        evaluate_policies(
            [OraclePolicy()],
            ml_world,
            seeds=seeds,
            episodes_per_seed=40,
            max_steps=20,
            user_config=leave,
            estimator=estimator,
        )
        for estimator in ("stratified", "simple")
    )
    assert smp.estimator == "simple" and smp.seed_returns == smp.played_seed_returns
    # the same expectation: over the same choices, the two estimates differ by no more than
    # chance; and the expected estimate lies inside the other run's sampled interval
    same = paired_difference(exp.seed_returns, exp.played_seed_returns)
    assert same.ci95_low < 0 < same.ci95_high
    assert smp.ci95_low < exp.mean_return < smp.ci95_high
    # the leaving coins' variance is gone from the expected estimator
    assert np.std(exp.seed_returns) < 0.7 * np.std(exp.played_seed_returns)
    assert exp.ci95_high - exp.ci95_low < smp.ci95_high - smp.ci95_low


def test_an_unknown_estimator_is_refused(ml_world: SimulationWorld) -> None:
    with pytest.raises(ValueError, match="unknown estimator 'mean'"):
        evaluate_policies([RandomPolicy()], ml_world, seeds=(0, 1), estimator="mean")


def test_a_policy_that_wins_every_seed_by_a_steady_margin_has_a_tight_positive_interval() -> None:
    # the seeds move both policies together (2.0 .. 6.0): their own intervals overlap widely,
    # the per-seed difference (0.9 .. 1.1) does not straddle zero
    ref = _report("ease", [2.0, 4.0, 6.0, 3.0, 5.0])
    agent = _report("ddpg", [3.0, 5.1, 6.9, 4.0, 6.0])
    (diff,) = paired_differences([ref, agent], ref)
    assert (diff.policy, diff.reference) == ("ddpg", "ease")
    d = diff.difference
    assert d.estimate == pytest.approx(1.0)
    assert 0.85 < d.ci95_low < 1.0 < d.ci95_high < 1.15
    assert d.p_value < 0.001
    assert (diff.seeds_won, d.n) == (5, 5)
    assert diff.as_dict()["estimate"] == pytest.approx(1.0)


def test_a_policy_that_wins_some_seeds_and_loses_others_has_an_interval_across_zero() -> None:
    ref = _report("ease", [2.0, 4.0, 6.0])
    other = _report("mf", [2.5, 3.5, 6.2])
    (diff,) = paired_differences([ref, other], ref)
    assert diff.difference.ci95_low < 0 < diff.difference.ci95_high
    assert diff.seeds_won == 2


@pytest.mark.parametrize(
    ("ref_returns", "other_returns", "error"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "mf has 2 seeds, ease 3"),
        ([1.0], [2.0], "at least two values"),
    ],
)
def test_bad_inputs(ref_returns: list[float], other_returns: list[float], error: str) -> None:
    ref = _report("ease", ref_returns)
    with pytest.raises(ValueError, match=error):
        paired_differences([ref, _report("mf", other_returns)], ref)


def test_stratified_seeds_cover_every_user_evenly_and_count_each_user_once() -> None:
    users = np.array(["a", "b", "c", "d"])
    drawn = episode_users(users, seed=3, n=10, estimator="stratified")
    counts = {u: int((drawn == u).sum()) for u in users}
    assert sorted(counts.values()) == [2, 2, 3, 3]  # two whole passes, then two of four
    simple = episode_users(users, seed=3, n=10, estimator="simple")
    assert simple.shape == (10,) and set(simple) <= set(users)
    # "a" twice at 1.0, "b" once at 4.0: each user counts once
    assert user_mean(np.array(["a", "b", "a"]), [1.0, 4.0, 1.0]) == pytest.approx(2.5)
