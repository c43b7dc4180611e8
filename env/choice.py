"""Choice models: which movie of a slate, if any, the simulated user picks.

Both are multinomial logits over the slate plus a "choose nothing" option; they differ in what
makes a movie attractive.

- ``MultinomialLogitChoice`` (the original): utility is the user's rating utility alone
  (predicted rating minus boredom), P(i) = exp(u_i / T) / (exp(u_0 / T) + sum_j exp(u_j / T)).
  With the defaults a movie the user would rate 3.5 is as attractive as doing nothing.
- ``CalibratedChoice``: u_i = w_rating (rating utility_i - 3.5) + w_propensity p_i
  - w_boredom b_i - w_position log2(1 + position_i), nothing = w_nothing, where b_i is the
  user's boredom with the movie's genres (``env.user_model``). p_i is the consumption propensity
  (``env.consumption``): people pick what they know of and what people like them watch, not
  only what they would rate highly. w_rating, w_propensity and w_boredom are fitted by maximum
  likelihood on real next interactions (``env.calibration``, boredom replayed over the real
  watch sequences). Fitted on ml-latest-small, w_boredom is negative: real people pick *more*
  of the genres they have just watched, so in a calibrated world recent genres attract (the
  default 2.0 is the old prior, kept for worlds built without calibration). The position
  effect and the "nothing" utility are priors, not fitted: rating logs record what people
  chose, never what they were shown, so neither is identified by them.

Temperature 0 (MultinomialLogitChoice) is the deterministic limit: the best option wins (the
first on ties, and a movie over "nothing" on a tie).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]


class ChoiceModel(Protocol):
    """Probabilities over a slate's positions and "nothing" (the last entry)."""

    def probabilities(
        self,
        utilities: npt.ArrayLike,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> Vector: ...

    def choose(
        self,
        utilities: npt.ArrayLike,
        rng: np.random.Generator,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> int | None: ...


def _softmax(u: Vector) -> Vector:
    z = u - u.max()
    e = np.exp(z)
    return np.asarray(e / e.sum())


def _draw(p: Vector, rng: np.random.Generator) -> int | None:
    """Inverse-CDF draw (one uniform); None for the last entry, "nothing"."""
    pick = min(int(np.searchsorted(np.cumsum(p), rng.random(), side="right")), p.shape[0] - 1)
    return None if pick == p.shape[0] - 1 else pick


@dataclass(frozen=True)
class MultinomialLogitChoice:
    """Softmax over rating utilities and "nothing" (module doc); ignores propensity."""

    temperature: float = 0.5
    no_choice_utility: float = 3.5

    def __post_init__(self) -> None:
        if self.temperature < 0 or not np.isfinite(self.temperature):
            raise ValueError(f"choice temperature must be finite and >= 0, got {self.temperature}")

    def probabilities(
        self,
        utilities: npt.ArrayLike,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> Vector:
        """(k + 1,) probabilities: one per slate position, the last for "nothing" (boredom is
        already inside the rating utilities)."""
        u = np.append(np.asarray(utilities, dtype=np.float64), self.no_choice_utility)
        if self.temperature == 0:
            p = np.zeros_like(u)
            p[int(np.argmax(u))] = 1.0
            return p
        return _softmax(u / self.temperature)

    def choose(
        self,
        utilities: npt.ArrayLike,
        rng: np.random.Generator,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> int | None:
        """The chosen slate position, or None for "nothing"."""
        p = self.probabilities(utilities)
        if self.temperature == 0:
            pick = int(np.argmax(p))
            return None if pick == p.shape[0] - 1 else pick
        return _draw(p, rng)


# Rating utility at which the rating term is zero (the old model's "nothing" level).
RATING_PIVOT = 3.5


@dataclass(frozen=True)
class CalibratedChoice:
    """Conditional logit on rating utility, consumption propensity and position (module doc).

    Defaults are the weights fitted on ml-latest-small (``env.calibration``); a world built
    with ``calibrate=True`` carries its own fitted weights.
    """

    w_rating: float = 0.055
    w_propensity: float = 0.196
    w_position: float = 0.3
    w_boredom: float = 2.0
    w_nothing: float = 0.5

    def __post_init__(self) -> None:
        for name in ("w_rating", "w_propensity", "w_position", "w_boredom", "w_nothing"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"CalibratedChoice.{name} must be finite")
        if self.w_position < 0:
            raise ValueError(f"w_position must be >= 0, got {self.w_position}")

    def utilities(
        self,
        utilities: npt.ArrayLike,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> Vector:
        """Slate utilities (without "nothing") in logit units."""
        r = np.asarray(utilities, dtype=np.float64)
        p = np.zeros_like(r) if propensity is None else np.asarray(propensity, dtype=np.float64)
        b = np.zeros_like(r) if boredom is None else np.asarray(boredom, dtype=np.float64)
        if p.shape != r.shape or b.shape != r.shape:
            raise ValueError(
                f"propensity {p.shape} and boredom {b.shape} must match utilities {r.shape}"
            )
        pos = np.log2(1.0 + np.arange(r.shape[0], dtype=np.float64))
        return np.asarray(
            self.w_rating * (r - RATING_PIVOT)
            + self.w_propensity * p
            - self.w_boredom * b
            - self.w_position * pos
        )

    def probabilities(
        self,
        utilities: npt.ArrayLike,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> Vector:
        """(k + 1,) probabilities: one per slate position, the last for "nothing"."""
        u = self.utilities(utilities, propensity, boredom)
        return _softmax(np.append(u, self.w_nothing))

    def choose(
        self,
        utilities: npt.ArrayLike,
        rng: np.random.Generator,
        propensity: npt.ArrayLike | None = None,
        boredom: npt.ArrayLike | None = None,
    ) -> int | None:
        return _draw(self.probabilities(utilities, propensity, boredom), rng)
