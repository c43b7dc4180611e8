"""Training-time wrappers: reward shaping that SB3 sees but evaluation does not."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class ActionPenalty(gym.Wrapper[Any, Any, Any, Any]):
    """Subtracts ``weight * mean(a**2)`` from each reward.

    The ranking e . a ignores the action's scale, but the critic learns Q roughly linear in a,
    so without a penalty the actor's tanh saturates at the corners of [-1, 1]^d and stops
    depending on the state. A small quadratic cost keeps actions inside the box. Evaluation
    plays the bare environment, so reported returns carry no penalty.
    """

    def __init__(self, env: gym.Env[Any, Any], weight: float) -> None:
        super().__init__(env)
        if weight < 0:
            raise ValueError(f"action penalty weight must be >= 0, got {weight}")
        self.weight = weight

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        penalty = self.weight * float(np.mean(np.square(action)))
        info = {**info, "action_penalty": penalty}
        return obs, float(reward) - penalty, terminated, truncated, info
