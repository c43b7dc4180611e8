"""The choice model's weights: recovered by maximum likelihood, and better than the original
rating-only model on real held-out choices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from env.calibration import fit_choice, fit_logit_weights
from env.choice import CalibratedChoice, MultinomialLogitChoice
from env.movie_rec_env import MovieRecEnv
from env.user_model import UserModelConfig, replay_boredom
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


@pytest.mark.slow
def test_calibrated_world_fits_boredom_on_real_sequences(ml_world: SimulationWorld) -> None:
    """The world's choice and users carry the boredom fitted on ml-latest-small, which says
    people pick more of what they just watched, and the fit explains held-out choices better."""
    fit = ml_world.settings["choice_fit"]
    assert ml_world.settings["choice"]["w_boredom"] == fit["w_boredom"] < 0
    choice = ml_world.choice_model()
    assert isinstance(choice, CalibratedChoice)
    assert choice.w_boredom == fit["w_boredom"]
    assert ml_world.user_config().boredom_weight == fit["rating_boredom"]
    held = fit["heldout"]
    assert held["calibrated with boredom"]["log_likelihood"] > held["calibrated"]["log_likelihood"]
    env = MovieRecEnv(ml_world, split="test")
    assert env.user_config == ml_world.user_config()


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
        ({"w_boredom": float("inf")}, "w_boredom must be finite"),
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


def test_replayed_boredom_follows_the_simulated_dynamics() -> None:
    """Each event sees the state before it: recovery then +watched per genre, clipped to 1,
    starting afresh for each user."""
    config = UserModelConfig(boredom_recovery=0.5, boredom_watched=0.6)
    genres = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    states = replay_boredom(["a", "a", "a", "b"], genres, config)
    assert states == pytest.approx(
        np.array([[0.0, 0.0], [0.6, 0.0], [0.9, 0.0], [0.0, 0.0]])  # 0.3 + 0.6; new user
    )
    clipped = replay_boredom(["a"] * 4, np.ones((4, 1)), UserModelConfig(boredom_watched=0.6))
    assert clipped[:, 0] == pytest.approx([0.0, 0.6, 1.0, 1.0])


def _genre_sequences(streak: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Users who watch ``streak`` movies of one genre before switching to the other (1:
    alternating every movie); 2 genres of 60 movies each."""
    rng = np.random.default_rng(seed)
    genres = np.zeros((120, 2))
    genres[:60, 0] = genres[60:, 1] = 1.0
    rows = []
    for u in range(150):
        g0 = int(rng.integers(2))
        seen = rng.permutation(60)
        for t in range(30):
            g = (g0 + t // streak) % 2
            rows.append((f"u{u}", int(g * 60 + seen[t]), float(rng.integers(1, 6)), t))
    return pd.DataFrame(rows, columns=["user", "movie", "rating", "timestamp"]), genres


@pytest.mark.parametrize(("streak", "sign"), [(10, -1.0), (1, 1.0)])
def test_boredom_weight_takes_the_sign_of_real_sequences(streak: int, sign: float) -> None:
    """People who keep to a genre give a negative boredom weight (recent genres attract);
    people who alternate, a positive one (recent genres repel)."""
    ratings, genres = _genre_sequences(streak, seed=0)
    fit = fit_choice(ratings, 120, seed=0, genres=genres)
    assert fit.w_boredom is not None and np.sign(fit.w_boredom) == sign
    held = fit.heldout
    assert held["calibrated with boredom"]["log_likelihood"] > held["calibrated"]["log_likelihood"]
    assert fit_choice(ratings, 120, seed=0).w_boredom is None  # no genres: not fitted


def test_boredom_rating_cost_is_fitted_from_ratings_that_fall_in_a_streak() -> None:
    """Ratings that fall the longer a genre streak runs give boredom a rating cost; random
    ratings give none (the cost is never negative)."""
    ratings, genres = _genre_sequences(10, seed=0)
    noisy = fit_choice(ratings, 120, seed=0, genres=genres)
    state = replay_boredom(
        ratings["user"].to_numpy(), genres[ratings["movie"].to_numpy()], UserModelConfig()
    )
    bored = (state * genres[ratings["movie"].to_numpy()]).sum(axis=1)
    ratings["rating"] = np.clip(4.5 - 2.0 * bored, 0.5, 5.0)
    tired = fit_choice(ratings, 120, seed=0, genres=genres)
    assert tired.rating_boredom is not None and tired.rating_boredom > 0.2, noisy.rating_boredom
    assert noisy.rating_boredom is not None and noisy.rating_boredom < tired.rating_boredom / 2
    assert tired.rating_rmse is not None
    assert tired.rating_rmse["world model minus fitted boredom"] < tired.rating_rmse["world model"]
