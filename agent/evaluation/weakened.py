"""A deliberately weakened copy of a policy: a known, tunable difference to detect.

Each slate position of the base policy's slate is, with probability ``strength``, replaced by
a candidate drawn uniformly from those not on the slate. Strength 0 is the base policy itself;
strength 1 is close to random. Used to measure how many users interleaving and A/B splits need
to tell a champion from a worse copy of itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.policies import Rows, SlateContext, SlatePolicy


class WeakenedPolicy:
    """The base policy's slate with a share of its positions swapped for random candidates."""

    def __init__(self, base: SlatePolicy, strength: float) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        self.base = base
        self.strength = strength
        self.name = f"{base.name}-weakened-{strength:g}"

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        slate = np.array(self.base.select(obs, ctx), dtype=np.int64)
        swap = np.asarray(ctx.rng.random(slate.shape[0]) < self.strength)
        spare = np.setdiff1d(ctx.candidates, slate)
        n = min(int(swap.sum()), spare.shape[0])
        if n:
            slate[np.flatnonzero(swap)[:n]] = ctx.rng.choice(spare, size=n, replace=False)
        return slate
