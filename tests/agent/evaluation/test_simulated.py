"""Paired differences over common-random-number episodes (agent.evaluation.simulated)."""

from __future__ import annotations

import pytest

from agent.evaluation.simulated import PolicyReport, paired_differences


def _report(name: str, seed_returns: list[float]) -> PolicyReport:
    mean = sum(seed_returns) / len(seed_returns)
    return PolicyReport(name, mean, mean, mean, seed_returns, 0.5, 4.0, 0.1, 0.5, 0.1, 10, 100)


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
