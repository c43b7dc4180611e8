"""Compare policies in the simulator on the same held-out users with common random numbers.

Every policy plays the same episodes: for seed s and episode j, the same user and the same
reset seed. Per policy: mean return per episode with a 95% confidence interval over seeds
(Student t on the per-seed means), hit rate (steps where the user chose something), mean
rating of chosen movies, catalogue coverage and diversity within the slate.

Because the episodes are shared, two policies' per-seed means move together (a seed of long
sessions is long for every policy), so their own intervals overlap even when one wins on every
seed. ``paired_differences`` gives the interval of the per-seed difference instead, the test
common random numbers are for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from agent.evaluation.ab_stats import Difference, paired_difference
from agent.policies import SlatePolicy
from env.movie_rec_env import MovieRecEnv
from env.world import SimulationWorld

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyReport:
    """One policy's figures over all evaluation episodes."""

    policy: str
    mean_return: float
    ci95_low: float
    ci95_high: float
    seed_returns: list[float]
    hit_rate: float
    mean_rating: float
    coverage: float
    diversity: float
    mean_regret: float
    episodes: int
    steps: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; needs at least two values."""
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] < 2:
        raise ValueError("a confidence interval needs at least two seeds")
    half = stats.t.ppf(0.5 + level / 2, x.shape[0] - 1) * x.std(ddof=1) / np.sqrt(x.shape[0])
    return float(x.mean() - half), float(x.mean() + half)


@dataclass(frozen=True)
class PairedDifference:
    """``policy``'s per-seed mean return minus ``reference``'s over the same episodes
    (``agent.evaluation.ab_stats.paired_difference``: estimate, 95% interval, p-value), and
    the number of seeds it won."""

    policy: str
    reference: str
    difference: Difference
    seeds_won: int

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "reference": self.reference,
            **self.difference.as_dict(),
            "seeds_won": self.seeds_won,
        }


def paired_differences(
    reports: Sequence[PolicyReport], reference: PolicyReport
) -> list[PairedDifference]:
    """Every other report's per-seed return minus ``reference``'s (module doc)."""
    out = []
    for r in reports:
        if r is reference:
            continue
        if len(r.seed_returns) != len(reference.seed_returns):
            raise ValueError(
                f"{r.policy} has {len(r.seed_returns)} seeds, {reference.policy} "
                f"{len(reference.seed_returns)}: paired differences need the same episodes"
            )
        diff = paired_difference(reference.seed_returns, r.seed_returns)
        won = sum(a > b for a, b in zip(r.seed_returns, reference.seed_returns, strict=True))
        out.append(PairedDifference(r.policy, reference.policy, diff, won))
    return out


def _diversity(emb: np.ndarray, rows: np.ndarray) -> float:
    """1 - mean pairwise cosine similarity of the slate's item embeddings."""
    v = emb[rows].astype(np.float64)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sim = v @ v.T
    n = v.shape[0]
    if n < 2:
        return 0.0
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def evaluate_policies(
    policies: Sequence[SlatePolicy],
    world: SimulationWorld,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes_per_seed: int = 50,
    max_steps: int = 50,
    split: str = "test",
    on_episode: Callable[[], None] | None = None,
    **env_kwargs: object,
) -> list[PolicyReport]:
    """Play every policy on the same (user, seed) episodes and summarise each."""
    if len(seeds) < 2:
        raise ValueError("evaluate with at least two seeds (five for the reported intervals)")
    env = MovieRecEnv(world, split=split, **env_kwargs)  # type: ignore[arg-type]
    users = world.users(split)
    reports = []
    for policy in policies:
        seed_returns: list[float] = []
        hits = steps = 0
        ratings: list[float] = []
        regrets: list[float] = []
        shown: set[int] = set()
        diversity: list[float] = []
        for seed in seeds:
            pick = np.random.default_rng(seed)
            episode_users = users[pick.integers(users.shape[0], size=episodes_per_seed)]
            returns = []
            for j, user in enumerate(episode_users):
                episode_seed = seed * 100_003 + j
                obs, _ = env.reset(seed=episode_seed, options={"user": str(user)})
                policy_rng = np.random.default_rng(episode_seed)
                total = 0.0
                for _ in range(max_steps):
                    ctx = env.slate_context(policy_rng)
                    slate = policy.select(obs, ctx)
                    obs, reward, terminated, _, info = env.step_slate(slate)
                    total += reward
                    steps += 1
                    shown.update(int(r) for r in slate)
                    diversity.append(_diversity(env.world.embeddings.vectors, slate))
                    regrets.append(float(info["regret"]))
                    if info["chosen"] >= 0:
                        hits += 1
                        ratings.append(float(info["rating"]))
                    if terminated:
                        break
                returns.append(total)
                if on_episode is not None:
                    on_episode()
            seed_returns.append(float(np.mean(returns)))
        low, high = confidence_interval(seed_returns)
        reports.append(
            PolicyReport(
                policy=policy.name,
                mean_return=float(np.mean(seed_returns)),
                ci95_low=low,
                ci95_high=high,
                seed_returns=seed_returns,
                hit_rate=hits / max(steps, 1),
                mean_rating=float(np.mean(ratings)) if ratings else float("nan"),
                coverage=len(shown) / world.catalog.n_movies,
                diversity=float(np.mean(diversity)) if diversity else 0.0,
                mean_regret=float(np.mean(regrets)) if regrets else 0.0,
                episodes=len(seeds) * episodes_per_seed,
                steps=steps,
            )
        )
        logger.info("evaluated %s: mean return %.3f", policy.name, reports[-1].mean_return)
    return reports
