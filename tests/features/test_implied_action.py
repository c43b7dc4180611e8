"""features.implied_action: the action a Plackett-Luce draw implies is unbiased around the
actor's, points toward the action a slate was really drawn from, is bounded by its prior, and
refuses bad inputs by name."""

from __future__ import annotations

import numpy as np
import pytest

from features.implied_action import implied_action
from features.ranking import candidate_scores, rank

N, D, K, TAU = 60, 3, 8, 1.0


def _world(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, D)), rng.normal(size=N)  # embeddings, retriever base


def _implied(action: np.ndarray, drawn_from: np.ndarray, seed: int, sd: float) -> np.ndarray:
    """The action implied by a slate drawn with ``drawn_from``, read as if ``action`` drew it."""
    emb, base = _world()
    at = np.arange(N)
    slate = rank(drawn_from, at, emb, K, TAU, np.random.default_rng(seed), base)
    _, scores = candidate_scores(action, at, emb, base)
    return implied_action(action, emb, scores, slate.indices, TAU, 1.0, sd)


def test_the_implied_action_is_centred_on_the_actors_own_when_it_drew_the_slate() -> None:
    a = np.array([0.2, -0.1, 0.0])
    draws = np.stack([_implied(a, a, s, sd=0.5) for s in range(400)])
    assert draws.dtype == np.float32
    assert float(draws.std(axis=0).min()) > 0.02  # the draws vary: the critic sees exploration
    np.testing.assert_allclose(draws.mean(axis=0), a, atol=0.03)  # the score has mean zero


def test_slates_drawn_from_another_action_imply_a_step_toward_it() -> None:
    a = np.zeros(D)
    for direction in np.eye(D):
        shifted = 0.5 * direction
        draws = np.stack([_implied(a, shifted, s, sd=0.5) for s in range(300)])
        step = draws.mean(axis=0) - a
        assert float(step @ direction) > 0.1  # toward the action the slates came from
        across = step - (step @ direction) * direction
        assert float(step @ direction) > 2 * float(np.abs(across).max())


def test_the_prior_bounds_the_step_and_no_information_keeps_the_action() -> None:
    a = np.array([0.9, -0.9, 0.0])
    small = np.stack([_implied(a, np.zeros(D), s, sd=0.05) for s in range(200)])
    assert float(np.abs(small - a).max()) < 0.1  # shrunk to the prior's scale
    big = np.stack([_implied(a, np.zeros(D), s, sd=5.0) for s in range(200)])
    assert np.all(np.abs(big) <= 1.0) and (np.abs(big) == 1.0).any()  # clipped to the actor's box
    emb, base = _world()
    _, scores = candidate_scores(a, np.arange(N), emb, base)
    for sd, residual, order in ((0.0, 1.0, [1, 2]), (0.5, 0.0, [1, 2]), (0.5, 1.0, [])):
        kept = implied_action(a, emb, scores, order, TAU, residual, sd)
        np.testing.assert_array_equal(kept, a.astype(np.float32))


BAD = [
    ({"features": np.zeros((N, D + 1))}, "features must be a"),
    ({"features": np.zeros(N)}, "features must be a"),
    ({"temperature": 0.0}, "temperature must be"),
    ({"temperature": float("nan")}, "temperature must be"),
    ({"residual": 1.5}, "residual weight"),
    ({"sd": -0.1}, "sd must be"),
    ({"sd": float("inf")}, "sd must be"),
    ({"order": [0, N]}, "out of range"),
    ({"order": [-1]}, "out of range"),
    ({"order": [3, 3]}, "each candidate once"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_inputs_are_refused_by_name(change: dict[str, object], message: str) -> None:
    emb, base = _world()
    a = np.zeros(D)
    _, scores = candidate_scores(a, np.arange(N), emb, base)
    kwargs: dict[str, object] = {
        "action": a,
        "features": emb,
        "scores": scores,
        "order": [0, 1, 2],
        "temperature": TAU,
        "residual": 1.0,
        "sd": 0.5,
    }
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        implied_action(**kwargs)  # type: ignore[arg-type]
