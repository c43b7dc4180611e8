"""One reward scale for the simulator and for real feedback."""

from __future__ import annotations

import pytest

from env.reward import RatingReward
from features.reward import (
    ABANDONED_EARLY,
    NO_CHOICE_PENALTY,
    WATCHED_POSITIVE,
    feedback_reward,
    rating_reward,
)


@pytest.mark.parametrize("rating", [0.5, 1.0, 2.5, 3.0, 3.5, 5.0])
def test_simulated_and_real_ratings_are_worth_the_same(rating: float) -> None:
    assert RatingReward()(rating) == feedback_reward("rated", rating) == rating_reward(rating)
    assert rating_reward(rating) == (rating - 3.0) / 2.0


def test_the_simulator_penalises_an_ignored_slate() -> None:
    assert RatingReward()(None) == NO_CHOICE_PENALTY < 0


@pytest.mark.parametrize(
    ("kind", "completion", "expected"),
    [
        ("watched", None, 1.0),
        ("watched", WATCHED_POSITIVE, 1.0),
        ("watched", ABANDONED_EARLY - 1.0, -0.2),
        ("watched", 50.0, 0.1),
        ("click", None, 0.05),
        ("play", None, 0.1),
        ("skipped", None, -0.1),
        ("not_interested", None, -1.0),
    ],
)
def test_feedback_without_a_rating(kind: str, completion: float | None, expected: float) -> None:
    assert feedback_reward(kind, completion=completion) == pytest.approx(expected)


def test_unknown_kinds_and_ratingless_ratings_are_refused() -> None:
    with pytest.raises(ValueError, match="needs a rating"):
        feedback_reward("rated")
    with pytest.raises(ValueError, match="no reward"):
        feedback_reward("shrugged")
