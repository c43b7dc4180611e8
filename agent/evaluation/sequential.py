"""Group-sequential efficacy boundaries: look at an A/B test before its planned end without
raising the false-win rate.

A test planned for ``n`` units per arm is analysed at ``looks`` equally spaced fractions of
``n``. Checking ``z >= 1.96`` at every look would declare a win by chance far more often than
5%; instead each look spends part of the one-sided level by the Lan-DeMets O'Brien-Fleming
spending function, ``alpha(t) = 2 (1 - Phi(Phi^-1(1 - alpha / 2) / sqrt(t)))``, and its
boundary is the z that makes the probability of first crossing there (under no difference,
given no earlier crossing) equal to the level spent since the last look. Early looks get high
boundaries (about 4.3 at a quarter of the data), the last one stays close to the fixed test's
(2.01 instead of 1.96 for four looks), so a large true win can stop early at little cost in
power. One look is the fixed-horizon test itself.

The crossing probabilities come from the canonical joint distribution of the z statistics
(a Brownian motion observed at the information fractions), integrated on a grid: a
deterministic computation, no sampling. The same integration under a true difference gives a
plan's power (``power``) and the plan size that reaches a wanted power (``plan_size``), with
the autopilot's futility stop (a challenger not ahead at an interim look from
``futility_from`` of the plan on is stopped) counted against it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

GRID = 2001  # points (odd: Simpson's rule) of the density grid per look
TAIL = 9.0  # the grid reaches this many standard deviations below zero


def obrien_fleming_spent(t: float, alpha: float) -> float:
    """One-sided level spent by information fraction ``t`` (Lan-DeMets O'Brien-Fleming)."""
    if not 0.0 < t <= 1.0:
        raise ValueError(f"information fraction must be in (0, 1], got {t}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(2.0 * stats.norm.sf(stats.norm.isf(alpha / 2.0) / math.sqrt(t)))


@lru_cache(maxsize=64)
def efficacy_boundaries(looks: int, alpha: float) -> tuple[float, ...]:
    """The z boundary at each of ``looks`` equally spaced looks for a one-sided test at level
    ``alpha`` (for the usual two-sided 5% test's win side: ``alpha = 0.025``)."""
    if looks < 1:
        raise ValueError(f"looks must be >= 1, got {looks}")
    fractions = [(k + 1) / looks for k in range(looks)]
    spent = [obrien_fleming_spent(t, alpha) for t in fractions]
    bounds = [float(stats.norm.isf(spent[0]))]
    # density of the B-value S = Z sqrt(t) over the paths that have not crossed yet
    grid = np.linspace(-TAIL * math.sqrt(fractions[0]), bounds[0] * math.sqrt(fractions[0]), GRID)
    density = stats.norm.pdf(grid, scale=math.sqrt(fractions[0]))
    for k in range(1, looks):
        weights = density * _simpson_weights(grid)
        t, sd = fractions[k], math.sqrt(fractions[k] - fractions[k - 1])
        b = _boundary(grid, weights, t, sd, spent[k] - spent[k - 1])
        bounds.append(b)
        if k + 1 < looks:  # carry the non-crossing density to the next look
            nxt = np.linspace(-TAIL * math.sqrt(t), b * math.sqrt(t), GRID)
            density = (stats.norm.pdf((nxt[:, None] - grid[None, :]) / sd) / sd) @ weights
            grid = nxt
    return tuple(bounds)


def _boundary(grid: np.ndarray, weights: np.ndarray, t: float, sd: float, target: float) -> float:
    """The z at information ``t`` that paths still below every earlier boundary (``weights``
    on ``grid``, an increment of ``sd`` away) cross with probability ``target``."""

    def excess(z: float) -> float:
        return float(np.sum(weights * stats.norm.sf((z * math.sqrt(t) - grid) / sd))) - target

    return float(optimize.brentq(excess, -5.0, 12.0, xtol=1e-10))


def _simpson_weights(grid: np.ndarray) -> np.ndarray:
    """Composite Simpson weights of an evenly spaced grid with an odd number of points."""
    h = float(grid[1] - grid[0])
    w = np.ones(grid.shape[0])
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return w * h / 3.0


def power(drift: float, looks: int, alpha: float, *, futility_from: float | None = None) -> float:
    """Probability that a test whose z at the planned end has mean ``drift`` crosses an
    efficacy boundary of ``efficacy_boundaries(looks, alpha)`` at some look. With
    ``futility_from``, an interim look at or past that fraction stops a path whose z is not
    above 0 (agent.promotion's futility rule), which costs some power."""
    if not np.isfinite(drift):
        raise ValueError(f"drift must be finite, got {drift}")
    if futility_from is not None and not 0.0 < futility_from <= 1.0:
        raise ValueError(f"futility_from must be in (0, 1], got {futility_from}")
    bounds = efficacy_boundaries(looks, alpha)
    won, grid, weights, last = 0.0, np.zeros(1), np.ones(1), 0.0
    for k, b in enumerate(bounds):
        t = (k + 1) / looks
        sd = math.sqrt(t - last)
        mean = grid + drift * (t - last)  # the B-value S = Z sqrt(t) drifts by drift * t
        top = b * math.sqrt(t)
        won += float(np.sum(weights * stats.norm.sf((top - mean) / sd)))
        if k + 1 == looks:
            break
        stop_futile = futility_from is not None and t >= futility_from
        low = 0.0 if stop_futile else drift * t - TAIL * math.sqrt(t)
        if low >= top:
            break
        nxt = np.linspace(low, top, GRID)
        density = (stats.norm.pdf((nxt[:, None] - mean[None, :]) / sd) / sd) @ weights
        grid, weights, last = nxt, density * _simpson_weights(nxt), t
    return float(min(max(won, 0.0), 1.0))


def plan_size(
    z_at: float,
    n_at: float,
    looks: int,
    alpha: float,
    *,
    target: float = 0.8,
    futility_from: float | None = None,
) -> int:
    """Units (slates per arm, interleaved slates, users) a group-sequential plan needs for
    power ``target``, given that the difference of interest reaches a mean z of ``z_at`` at
    ``n_at`` units (z grows with the square root of the units)."""
    if not (np.isfinite(z_at) and z_at > 0):
        raise ValueError(f"z_at must be a positive z, got {z_at}")
    if not n_at > 0:
        raise ValueError(f"n_at must be positive, got {n_at}")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target power must be in (0, 1), got {target}")
    drift = _required_drift(looks, alpha, target, futility_from)
    return math.ceil(n_at * (drift / z_at) ** 2)


@lru_cache(maxsize=64)
def _required_drift(looks: int, alpha: float, target: float, futility_from: float | None) -> float:
    """The end-of-plan mean z at which the test has power ``target``: it does not depend on
    the measured z, so sizing several rules of one test solves it once."""

    def short(drift: float) -> float:
        return power(drift, looks, alpha, futility_from=futility_from) - target

    if short(1e-6) >= 0:
        raise ValueError(f"target power {target} is not above the test's level: any plan has it")
    return float(optimize.brentq(short, 1e-6, 40.0, xtol=1e-8))


def z_score(estimate: float, p_value: float) -> float:
    """The signed z of a two-sided test's p-value (Welch's t at large samples is a z)."""
    if not np.isfinite(estimate) or not np.isfinite(p_value):
        return float("nan")
    z = float(stats.norm.isf(max(min(p_value, 1.0), 1e-300) / 2.0))
    return z if estimate > 0 else (-z if estimate < 0 else 0.0)
