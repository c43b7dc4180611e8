"""The choice model's weights: recovered by maximum likelihood, and better than the original
rating-only model on real held-out choices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from env.calibration import fit_choice, fit_logit_weights
from env.choice import CalibratedChoice, MultinomialLogitChoice
from env.world import SimulationWorld


def _simulated_choices(w: tuple[float, float], n: int, seed: int) -> list[np.ndarray]:
    """Slates of 10 with two features; the chosen option is drawn from the logit with weights
    ``w`` and moved to column 0."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 10)), rng.normal(size=(n, 10))
    u = w[0] * a + w[1] * b
    p = np.exp(u - u.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    pick = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    order = np.argsort(np.arange(10)[None, :] != pick[:, None], axis=1, kind="stable")
    return [np.take_along_axis(a, order, 1), np.take_along_axis(b, order, 1)]


@pytest.mark.parametrize("truth", [(0.7, 1.3), (2.0, 0.0), (-0.5, 0.4)])
def test_maximum_likelihood_recovers_known_weights(truth: tuple[float, float]) -> None:
    fitted = fit_logit_weights(_simulated_choices(truth, 20_000, seed=1))
    assert fitted == pytest.approx(list(truth), abs=0.06)


def test_weights_need_equally_shaped_tables() -> None:
    with pytest.raises(ValueError, match="equally shaped"):
        fit_logit_weights([np.zeros((3, 10)), np.zeros((3, 9))])


@pytest.mark.slow
def test_calibrated_choice_beats_rating_only_on_held_out_users(
    ml_world: SimulationWorld,
) -> None:
    fit = fit_choice(ml_world.catalog.ratings, ml_world.catalog.n_movies, seed=0)
    held = fit.heldout
    assert held["calibrated"]["log_likelihood"] > held["rating only (original)"]["log_likelihood"]
    assert held["calibrated"]["log_likelihood"] > held["uniform"]["log_likelihood"]
    assert held["calibrated"]["top1"] > held["rating only (original)"]["top1"]
    assert fit.w_propensity > 0


def test_calibrated_choice_probabilities() -> None:
    choice = CalibratedChoice(w_rating=1.0, w_propensity=1.0, w_position=0.0, w_nothing=0.0)
    p = choice.probabilities([3.5, 3.5], propensity=[0.0, np.log(3.0)])
    assert p == pytest.approx([1 / 5, 3 / 5, 1 / 5])
    bored = choice.probabilities([3.5, 3.5], propensity=[0.0, 0.0], boredom=[0.0, 1.0])
    assert bored[0] > bored[1]
    first = CalibratedChoice(w_position=1.0).probabilities([4.0, 4.0])
    assert first[0] > first[1]  # the position effect favours the top of the slate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"w_position": -1.0}, "w_position must be >= 0"),
        ({"w_boredom": -0.1}, "w_boredom must be >= 0"),
        ({"w_rating": float("nan")}, "w_rating must be finite"),
    ],
)
def test_calibrated_choice_bad_weights(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CalibratedChoice(**kwargs)


def test_mismatched_features_are_refused() -> None:
    with pytest.raises(ValueError, match="must match utilities"):
        CalibratedChoice().probabilities([3.0, 4.0], propensity=[0.0])


def test_original_choice_ignores_propensity() -> None:
    mnl = MultinomialLogitChoice()
    assert mnl.probabilities([4.0, 3.0], propensity=[-9.0, 9.0]) == pytest.approx(
        mnl.probabilities([4.0, 3.0])
    )


def test_calibration_samples_users_past_its_cap() -> None:
    rng = np.random.default_rng(0)
    users, movies = 60, 80
    rows = [
        (f"u{u}", int(m), float(rng.integers(1, 6)), int(t))
        for u in range(users)
        for t, m in enumerate(rng.choice(movies, 15, replace=False))
    ]
    ratings = pd.DataFrame(rows, columns=["user", "movie", "rating", "timestamp"])
    full = fit_choice(ratings, movies, seed=0)
    assert full.fit_events + full.heldout_events == users * 3  # the last 20% of 15 each
    assert fit_choice(ratings, movies, max_users=users, seed=0) == full  # at the cap: all
    capped = fit_choice(ratings, movies, max_users=20, seed=0)
    assert capped.fit_events + capped.heldout_events == 20 * 3
