"""Group-sequential boundaries: the published O'Brien-Fleming (Lan-DeMets) values, the
false-win rate they hold over several looks where a fixed 1.96 at every look does not, and bad
inputs named."""

from __future__ import annotations

import numpy as np
import pytest

from agent.evaluation.sequential import efficacy_boundaries, obrien_fleming_spent, z_score

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


def _crossing_rate(bounds: tuple[float, ...], paths: int = 200_000, seed: int = 0) -> float:
    """Share of null z-paths at equally spaced looks that cross some look's boundary."""
    looks = len(bounds)
    steps = np.random.default_rng(seed).standard_normal((paths, looks)) * np.sqrt(1 / looks)
    t = np.arange(1, looks + 1) / looks
    z = np.cumsum(steps, axis=1) / np.sqrt(t)
    return float(np.mean((z >= np.asarray(bounds)).any(axis=1)))


def test_the_boundaries_hold_the_false_win_rate_where_naive_looks_do_not() -> None:
    rate = _crossing_rate(efficacy_boundaries(4, 0.025))
    assert rate == pytest.approx(0.025, abs=0.0015)  # 200,000 paths: sd 0.00035
    naive = _crossing_rate((1.96,) * 4)
    assert naive > 0.05  # looking four times at 1.96 doubles the false wins


def test_spending_reaches_alpha_at_the_end_and_little_early() -> None:
    assert obrien_fleming_spent(1.0, 0.025) == pytest.approx(0.025)
    assert obrien_fleming_spent(0.25, 0.025) < 1e-4


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
    ],
)
def test_bad_inputs_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
