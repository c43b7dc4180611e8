"""Ratings and rewards: how a chosen movie is rated, and what that is worth to the agent.

A chosen movie's rating is drawn around the user's true utility for it (world-model prediction
minus boredom) with Gaussian noise, rounded to half stars and clipped to 0.5..5, as MovieLens
ratings are. The reward is features.reward's scale, the one real feedback is rewarded on:
(rating - 3) / 2, in [-1.25, 1]; choosing nothing costs a small penalty so that ignored slates
are worse than neutral ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from env.world_model import RATING_MAX, RATING_MIN
from features.reward import NO_CHOICE_PENALTY, rating_reward


def draw_rating(utility: float, noise: float, rng: np.random.Generator) -> float:
    """A half-star rating around ``utility`` with N(0, noise^2) noise, clipped to 0.5..5."""
    raw = utility + (float(rng.normal(0.0, noise)) if noise > 0 else 0.0)
    return float(np.clip(np.round(raw * 2.0) / 2.0, RATING_MIN, RATING_MAX))


@dataclass(frozen=True)
class RatingReward:
    """Reward (rating - 3) / 2 for a rated pick; ``no_choice_penalty`` when nothing is picked."""

    no_choice_penalty: float = NO_CHOICE_PENALTY

    def __call__(self, rating: float | None) -> float:
        if rating is None:
            return float(self.no_choice_penalty)
        return rating_reward(rating)
