"""Choice model: which movie of a slate, if any, the simulated user picks.

A multinomial logit over the slate's utilities plus a "choose nothing" option with its own
utility: P(i) = exp(u_i / T) / (exp(u_0 / T) + sum_j exp(u_j / T)). Utilities are in rating
points (predicted rating minus boredom), so with the defaults a movie the user would rate 3.5
is as attractive as doing nothing, and temperature 0.5 makes a one-star gap a ~7:1 preference.
Temperature 0 is the deterministic limit: the best option wins (the first on ties, and a
movie over "nothing" on a tie).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class MultinomialLogitChoice:
    """Softmax choice among slate movies and "nothing" (module doc)."""

    temperature: float = 0.5
    no_choice_utility: float = 3.5

    def __post_init__(self) -> None:
        if self.temperature < 0 or not np.isfinite(self.temperature):
            raise ValueError(f"choice temperature must be finite and >= 0, got {self.temperature}")

    def probabilities(self, utilities: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(k + 1,) probabilities: one per slate position, the last for "nothing"."""
        u = np.append(np.asarray(utilities, dtype=np.float64), self.no_choice_utility)
        if self.temperature == 0:
            p = np.zeros_like(u)
            p[int(np.argmax(u))] = 1.0
            return p
        z = (u - u.max()) / self.temperature
        e = np.exp(z)
        return np.asarray(e / e.sum())

    def choose(self, utilities: npt.ArrayLike, rng: np.random.Generator) -> int | None:
        """The chosen slate position, or None for "nothing"."""
        p = self.probabilities(utilities)
        if self.temperature == 0:
            pick = int(np.argmax(p))
        else:  # inverse-CDF draw: one uniform, as fast as it gets
            pick = min(
                int(np.searchsorted(np.cumsum(p), rng.random(), side="right")), p.shape[0] - 1
            )
        return None if pick == p.shape[0] - 1 else pick
