"""Group-sequential boundaries: the published O'Brien-Fleming (Lan-DeMets) values, the
false-win rate they hold over several looks where a fixed 1.96 at every look does not, a
plan's power and size against the fixed test's formula and sampled paths, and bad inputs
named."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from agent.evaluation.sequential import (
    efficacy_boundaries,
    obrien_fleming_spent,
    plan_size,
    power,
    z_score,
)

# gsDesign::gsDesign(k, test.type = 1, alpha = 0.025, sfu = sfLDOF)$upper$bound
PUBLISHED = {
    1: (1.9600,),
    2: (2.9626, 1.9686),
    3: (3.7103, 2.5114, 1.9930),
    4: (4.3326, 2.9631, 2.3590, 2.0141),
}


@pytest.mark.parametrize("looks", sorted(PUBLISHED))
def test_boundaries_match_the_published_values(looks: int) -> None:
    assert efficacy_boundaries(looks, 0.025) == pytest.approx(PUBLISHED[looks], abs=2e-4)


def _crossing_rate(
    bounds: tuple[float, ...],
    paths: int = 200_000,
    seed: int = 0,
    drift: float = 0.0,
    futility_from: float | None = None,
) -> float:
    """Share of z-paths at equally spaced looks (mean ``drift`` at the end) that cross some
    look's boundary before an interim look from ``futility_from`` on finds z <= 0."""
    looks = len(bounds)
    steps = np.random.default_rng(seed).standard_normal((paths, looks)) * np.sqrt(1 / looks)
    t = np.arange(1, looks + 1) / looks
    z = (np.cumsum(steps, axis=1) + drift * t) / np.sqrt(t)
    alive, won = np.ones(paths, dtype=bool), np.zeros(paths, dtype=bool)
    for k, b in enumerate(bounds):
        crossed = alive & (z[:, k] >= b)
        won |= crossed
        alive &= ~crossed
        if futility_from is not None and k + 1 < looks and t[k] >= futility_from:
            alive &= z[:, k] > 0
    return float(np.mean(won))


def test_the_boundaries_hold_the_false_win_rate_where_naive_looks_do_not() -> None:
    rate = _crossing_rate(efficacy_boundaries(4, 0.025))
    assert rate == pytest.approx(0.025, abs=0.0015)  # 200,000 paths: sd 0.00035
    naive = _crossing_rate((1.96,) * 4)
    assert naive > 0.05  # looking four times at 1.96 doubles the false wins


def test_spending_reaches_alpha_at_the_end_and_little_early() -> None:
    assert obrien_fleming_spent(1.0, 0.025) == pytest.approx(0.025)
    assert obrien_fleming_spent(0.25, 0.025) < 1e-4


def test_one_look_power_and_size_are_the_fixed_tests() -> None:
    fixed_power = stats.norm.sf(stats.norm.isf(0.025) - 2.5)
    assert power(2.5, 1, 0.025) == pytest.approx(fixed_power, abs=1e-9)
    fixed = 2000 * ((stats.norm.isf(0.025) + stats.norm.isf(0.2)) / 2.17) ** 2
    assert plan_size(2.17, 2000, 1, 0.025) == int(np.ceil(fixed))


def test_power_with_no_difference_is_the_level() -> None:
    assert power(0.0, 4, 0.025) == pytest.approx(0.025, abs=1e-6)
    assert power(0.0, 4, 0.025, futility_from=0.5) < 0.025


@pytest.mark.parametrize(("drift", "futility_from"), [(2.17, 0.5), (2.87, 0.5), (2.87, None)])
def test_power_matches_sampled_paths(drift: float, futility_from: float | None) -> None:
    bounds = efficacy_boundaries(4, 0.025)
    sampled = _crossing_rate(bounds, drift=drift, futility_from=futility_from)
    assert power(drift, 4, 0.025, futility_from=futility_from) == pytest.approx(
        sampled, abs=0.004
    )  # 200,000 paths: sd about 0.001


def test_looks_and_futility_ask_for_a_larger_plan() -> None:
    fixed = plan_size(2.17, 2000, 1, 0.025)
    looked = plan_size(2.17, 2000, 4, 0.025)
    stopped = plan_size(2.17, 2000, 4, 0.025, futility_from=0.5)
    assert fixed < looked < stopped
    assert power(2.17 * np.sqrt(stopped / 2000), 4, 0.025, futility_from=0.5) >= 0.8
    assert plan_size(2.17, 2000, 4, 0.025, target=0.9) > looked


def test_z_scores_carry_the_sign_of_the_estimate() -> None:
    assert z_score(0.3, 0.05) == pytest.approx(1.96, abs=1e-3)
    assert z_score(-0.3, 0.05) == pytest.approx(-1.96, abs=1e-3)
    assert z_score(0.0, 1.0) == 0.0
    assert np.isnan(z_score(float("nan"), 0.5))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: efficacy_boundaries(0, 0.025), "looks must be >= 1"),
        (lambda: efficacy_boundaries(3, 0.0), "alpha must be in"),
        (lambda: efficacy_boundaries(3, 1.0), "alpha must be in"),
        (lambda: obrien_fleming_spent(0.0, 0.025), "information fraction"),
        (lambda: obrien_fleming_spent(1.5, 0.025), "information fraction"),
        (lambda: power(float("nan"), 4, 0.025), "drift must be finite"),
        (lambda: power(2.0, 4, 0.025, futility_from=0.0), "futility_from must be in"),
        (lambda: power(2.0, 0, 0.025), "looks must be >= 1"),
        (lambda: plan_size(0.0, 2000, 4, 0.025), "z_at must be a positive z"),
        (lambda: plan_size(2.0, 0, 4, 0.025), "n_at must be positive"),
        (lambda: plan_size(2.0, 2000, 4, 0.025, target=1.0), "target power must be in"),
        (lambda: plan_size(2.0, 2000, 4, 0.025, target=0.01), "not above the test's level"),
    ],
)
def test_bad_inputs_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
