"""The swappable parts: choice model, boredom and leaving, ratings and rewards."""

from __future__ import annotations

import numpy as np
import pytest

from env.choice import MultinomialLogitChoice
from env.reward import RatingReward, draw_rating
from env.user_model import SimulatedUser, UserModelConfig
from env.world import SimulationWorld
from features.state import UserHistory


def test_choice_probabilities_and_nothing_option() -> None:
    c = MultinomialLogitChoice(temperature=0.5, no_choice_utility=3.0)
    p = c.probabilities([4.0, 3.0])
    e = np.exp(np.array([4.0, 3.0, 3.0]) / 0.5)
    assert np.allclose(p, e / e.sum())
    assert (
        MultinomialLogitChoice(temperature=0.0).choose([2.0, 3.0], np.random.default_rng()) is None
    )
    assert (
        MultinomialLogitChoice(temperature=0.0).choose([2.0, 4.0, 4.0], np.random.default_rng())
        == 1
    )


def test_choice_sampling_follows_probabilities() -> None:
    c = MultinomialLogitChoice(temperature=1.0, no_choice_utility=0.0)
    rng = np.random.default_rng(2)
    picks = [c.choose([1.0, 0.0], rng) for _ in range(20000)]
    freq = np.array([picks.count(0), picks.count(1), picks.count(None)]) / len(picks)
    assert np.allclose(freq, c.probabilities([1.0, 0.0]), atol=0.015)


def test_bad_choice_temperature() -> None:
    with pytest.raises(ValueError, match="choice temperature must be finite and >= 0, got -1"):
        MultinomialLogitChoice(temperature=-1)


def test_boredom_lowers_utility_then_recovers(tiny_world: SimulationWorld) -> None:
    cat = tiny_world.catalog
    cfg = UserModelConfig(
        boredom_shown=0.0, boredom_watched=0.5, boredom_recovery=0.5, boredom_weight=2.0
    )
    user = SimulatedUser(
        "u1",
        tiny_world.model.predict_user(0),
        tiny_world.genre_matrix,
        UserHistory(cat.n_movies),
        cfg,
    )
    m5, m6, m7 = cat.index_of(["m5", "m6", "m7"])  # m5, m6 in genre b; m7 in c
    before = user.utility(np.array([m5, m7]))
    user.observe(np.array([m6, m7]), chosen=int(m6))
    after = user.utility(np.array([m5, m7]))
    assert after[0] == pytest.approx(before[0] - 2.0 * 0.5)  # b's boredom is 0.5
    assert after[1] == pytest.approx(before[1])
    user.observe(np.array([m7]), chosen=None)
    assert user.utility(np.array([m5]))[0] == pytest.approx(before[0] - 2.0 * 0.25)


def test_leave_probability() -> None:
    cfg = UserModelConfig(leave_base=0.1, leave_no_choice=0.2, leave_boredom=0.5)
    user = SimulatedUser("u", np.zeros(2), np.eye(2), UserHistory(2), cfg)
    assert user.leave_probability(True) == pytest.approx(0.1)
    user.boredom = np.array([0.4, 0.0])
    assert user.leave_probability(False) == pytest.approx(0.1 + 0.2 + 0.5 * 0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boredom_weight": -1.0}, "UserModelConfig.boredom_weight must be >= 0, got -1.0"),
        ({"leave_base": 1.5}, r"UserModelConfig.leave_base must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_user_config(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UserModelConfig(**kwargs)


def test_ratings_are_half_stars_in_range() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([draw_rating(u, 0.8, rng) for u in np.linspace(-1, 7, 400)])
    assert draws.min() == 0.5 and draws.max() == 5.0
    assert np.all(draws * 2 == np.round(draws * 2))
    assert draw_rating(3.74, 0.0, rng) == 3.5


def test_reward() -> None:
    assert RatingReward()(5.0) == 1.0 and RatingReward()(0.5) == -1.25
    assert RatingReward(no_choice_penalty=-0.3)(None) == -0.3
