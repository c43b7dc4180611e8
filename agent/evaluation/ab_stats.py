"""Statistics for comparing two policy versions: paired and Welch differences, power, SRM.

Shared by the simulated A/B (paired per-user differences under common random numbers), the
online report (Welch's test on independent arms) and interleaving (a one-sample preference
test). Every function is a pure function of its inputs, so a report reproduces exactly from the
same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

ALPHA = 0.05
POWER = 0.8
SRM_ALPHA = 0.001  # a sample-ratio mismatch is a bug, not a finding: flag only clear ones
LIFTS = (0.02, 0.05, 0.10)


@dataclass(frozen=True)
class Difference:
    """An estimated difference (B - A) with its 95% interval and two-sided p-value."""

    estimate: float
    ci95_low: float
    ci95_high: float
    p_value: float
    n: int
    test: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _floats(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    return x


def one_sample(values: npt.ArrayLike, level: float = 0.95, test: str = "t") -> Difference:
    """Student-t interval and p-value for the mean of ``values`` against 0."""
    x = _floats(values)
    n = x.shape[0]
    if n < 2:
        raise ValueError("a test needs at least two values")
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(n))
    if se == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return Difference(mean, mean, mean, p, n, test)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return Difference(mean, mean - half, mean + half, p, n, test)


def paired_difference(a: npt.ArrayLike, b: npt.ArrayLike, level: float = 0.95) -> Difference:
    """Mean of b - a over paired units (the same simulated user and seed in both arms)."""
    x, y = _floats(a), _floats(b)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape[0]} and {y.shape[0]}")
    return one_sample(y - x, level, test="paired t")


def welch(a: npt.ArrayLike, b: npt.ArrayLike, level: float = 0.95) -> Difference:
    """Welch's unequal-variance t-test of mean(b) - mean(a), with its interval."""
    x, y = _floats(a), _floats(b)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("Welch's test needs at least two values per arm")
    va, vb = x.var(ddof=1) / x.shape[0], y.var(ddof=1) / y.shape[0]
    diff = float(y.mean() - x.mean())
    se = float(np.sqrt(va + vb))
    n = x.shape[0] + y.shape[0]
    if se == 0.0:
        return Difference(diff, diff, diff, 1.0 if diff == 0.0 else 0.0, n, "welch")
    dof = (va + vb) ** 2 / (va**2 / max(x.shape[0] - 1, 1) + vb**2 / max(y.shape[0] - 1, 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, dof))
    return Difference(diff, diff - half, diff + half, p, n, "welch")


def proportion_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sound for small n and rates near 0 or 1)."""
    if n <= 0:
        return (0.0, 1.0)
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def users_needed(
    sd: float, delta: float, *, alpha: float = ALPHA, power: float = POWER, arms: int = 1
) -> int:
    """Units needed to detect a mean difference ``delta`` (two-sided normal approximation).

    ``arms=1``: a one-sample or paired design, n = ((z_a + z_b) sd / delta)^2 units in all.
    ``arms=2``: two independent arms of equal size with per-unit sd ``sd`` each; the returned
    figure is the total over both arms, 2 * 2 * ((z_a + z_b) sd / delta)^2."""
    if delta == 0 or not np.isfinite(delta):
        return int(np.iinfo(np.int64).max)
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    per_arm = (z * sd / abs(delta)) ** 2
    if arms == 1:
        return int(np.ceil(max(per_arm, 2.0)))
    if arms == 2:
        return int(2 * np.ceil(max(2 * per_arm, 2.0)))
    raise ValueError(f"arms must be 1 or 2, got {arms}")


@dataclass(frozen=True)
class PowerRow:
    """Users needed to detect one relative lift of the baseline arm's mean."""

    lift: float
    delta: float
    paired_users: int
    ab_users: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def power_table(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    lifts: Sequence[float] = LIFTS,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
) -> list[PowerRow]:
    """For each relative lift of A's mean: the users needed with a paired design (common random
    numbers, the sd of the per-user differences) and with an online A/B split (independent
    users per arm, the pooled per-user sd of the two arms; total over both arms)."""
    x, y = _floats(a), _floats(b)
    base = abs(float(x.mean()))
    sd_diff = float((y - x).std(ddof=1)) if x.shape == y.shape else float("nan")
    sd_arm = float(np.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2))
    rows = []
    for lift in lifts:
        delta = lift * base
        rows.append(
            PowerRow(
                lift=lift,
                delta=delta,
                paired_users=users_needed(sd_diff, delta, alpha=alpha, power=power, arms=1),
                ab_users=users_needed(sd_arm, delta, alpha=alpha, power=power, arms=2),
            )
        )
    return rows


@dataclass(frozen=True)
class SRMCheck:
    """Sample-ratio-mismatch check: chi-square of observed assignment counts against the
    configured shares. ``ok`` is False when p < alpha: the split is broken and no verdict
    should be drawn from it."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    alpha: float
    ok: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def srm_check(
    counts: Mapping[str, int], shares: Mapping[str, float], alpha: float = SRM_ALPHA
) -> SRMCheck:
    """Chi-square goodness of fit of ``counts`` per arm to the configured ``shares``."""
    if set(counts) - set(shares):
        raise ValueError(f"counts for arms without a configured share: {set(counts) - set(shares)}")
    names = sorted(shares)
    total_share = float(sum(shares[n] for n in names))
    if total_share <= 0 or any(shares[n] < 0 for n in names):
        raise ValueError("shares must be non-negative and not all zero")
    observed = np.array([int(counts.get(n, 0)) for n in names], dtype=np.float64)
    total = float(observed.sum())
    expected = np.array([total * shares[n] / total_share for n in names])
    live = expected > 0
    if total == 0 or live.sum() < 2:
        return SRMCheck(
            {n: int(c) for n, c in zip(names, observed, strict=True)},
            {n: float(e) for n, e in zip(names, expected, strict=True)},
            0.0,
            1.0,
            alpha,
            not bool(observed[~live].sum()),
        )
    if observed[~live].sum() > 0:  # traffic reached an arm configured to get none
        chi2, p = float("inf"), 0.0
    else:
        res = stats.chisquare(observed[live], expected[live])
        chi2, p = float(res.statistic), float(res.pvalue)
    return SRMCheck(
        observed={n: int(c) for n, c in zip(names, observed, strict=True)},
        expected={n: float(e) for n, e in zip(names, expected, strict=True)},
        chi2=chi2,
        p_value=p,
        alpha=alpha,
        ok=p >= alpha,
    )


def bootstrap_interval(
    terms: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    studentized: bool = False,
) -> tuple[float, float]:
    """Bootstrap interval of mean(terms) (or sum(terms) / sum(weights) when weights are given:
    a self-normalised mean), resampling units with replacement, seeded.

    Percentile by default; ``studentized`` (means only) gives the bootstrap-t interval, which
    follows the skew of heavy-tailed terms (importance-weighted rewards) better: each resample's
    t = (mean* - mean) / se*, and the interval is mean - t*_(1+level)/2 se ...
    mean - t*_(1-level)/2 se."""
    x = _floats(terms)
    w = None if weights is None else _floats(weights)
    n = x.shape[0]
    if n < 2:
        raise ValueError("a bootstrap needs at least two units")
    if studentized and w is not None:
        raise ValueError("the studentized bootstrap is for plain means")
    rng = np.random.default_rng(seed)
    stats_: list[npt.NDArray[np.float64]] = []
    chunk = max(1, 2_000_000 // n)
    mean, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(n))
    for start in range(0, resamples, chunk):
        idx = rng.integers(n, size=(min(chunk, resamples - start), n))
        if w is None:
            sample = x[idx]
            m = sample.mean(axis=1)
            if studentized:
                se_star = sample.std(axis=1, ddof=1) / np.sqrt(n)
                m = (m - mean) / np.where(se_star > 0, se_star, np.nan)
            stats_.append(m)
        else:
            den = w[idx].sum(axis=1)
            stats_.append(x[idx].sum(axis=1) / np.where(den == 0, np.nan, den))
    values = np.concatenate(stats_)
    values = values[np.isfinite(values)]
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    if studentized:
        if se == 0.0:
            return mean, mean
        return float(mean - hi * se), float(mean - lo * se)
    return float(lo), float(hi)
