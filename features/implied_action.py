"""The action a Plackett-Luce slate implies: what the online learner is taught the slate was.

A service that samples its slates (temperature > 0) explores around the actor's action a at
every request, but the action it logs is a itself, a function of the state alone, so an
off-policy critic (``marquee learn``) never sees which nearby action a better slate came from.
The slate's draw does say it: under ``features.ranking``'s scores
``s_i = base_i + w x_i . a`` (x_i the candidate's embedding and slate features, w the user's
residual weight) and a Plackett-Luce draw at temperature tau, the score of the drawn order is

    grad_a log P(slate | a) = (w / tau) sum_j (x_{o_j} - E_j[x]),

E_j the softmax expectation over the candidates still left at position j; minus its Hessian
(the draw's observed information) is F = (w / tau)^2 sum_j Cov_j[x]. Read the draw as coming
from a perturbed action a + d with a Gaussian prior d ~ N(0, sd^2 I) (the exploration
``features.ranker.explore`` would add); one Newton step from d = 0 gives the posterior mean

    d* = (F + I / sd^2)^-1 grad_a log P,

and ``implied_action`` returns a + d*, clipped to the actor's [-1, 1]. Over draws it centres
on a (the score has mean zero; F varies a little with the draw), its spread is at most sd per
direction and shrinks where the draw says little (a peaked softmax, w near 0), and it points
toward the candidates the draw favoured beyond what a expected. The slate, its propensities
and what is served are unchanged; only what the learner is told changes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def implied_action(
    action: npt.ArrayLike,
    features: npt.ArrayLike,
    scores: npt.ArrayLike,
    order: npt.ArrayLike,
    temperature: float,
    residual: float,
    sd: float,
) -> npt.NDArray[np.float32]:
    """a + d* (module doc) for the slate ``order`` (positions into the candidates) drawn from
    softmax(``scores`` / ``temperature``) without replacement; ``features`` is the candidates'
    (n, len(a)) matrix the action weighs. ``sd`` 0, ``residual`` 0 or an empty slate: ``action``
    itself (the draw says nothing of it)."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    x = np.asarray(features, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    picks = np.asarray(order, dtype=np.int64).reshape(-1)
    if x.ndim != 2 or x.shape != (s.shape[0], a.shape[0]):
        raise ValueError(
            f"features must be a (candidates, action) = ({s.shape[0]}, {a.shape[0]}) array, "
            f"got shape {x.shape}"
        )
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual weight must be in [0, 1], got {residual}")
    if not (np.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite number >= 0, got {sd}")
    if picks.size and (picks.min() < 0 or picks.max() >= s.shape[0]):
        raise ValueError(f"slate position out of range [0, {s.shape[0]})")
    if np.unique(picks).size != picks.size:
        raise ValueError("a Plackett-Luce slate holds each candidate once")
    if sd == 0 or residual == 0 or picks.size == 0:
        return a.astype(np.float32)
    logits = s / temperature
    left = np.ones(s.shape[0], dtype=bool)
    score = np.zeros_like(a)
    info = np.zeros((a.shape[0], a.shape[0]))
    for pick in picks:
        z = logits[left]
        p = np.exp(z - z.max())
        p /= p.sum()
        rest = x[left]
        mean = p @ rest
        centred = rest - mean
        score += x[pick] - mean
        info += (centred * p[:, None]).T @ centred
        left[pick] = False
    scale = residual / temperature
    precision = scale * scale * info + np.eye(a.shape[0]) / (sd * sd)
    step = np.linalg.solve(precision, scale * score)
    return np.clip(a + step, -1.0, 1.0).astype(np.float32)
