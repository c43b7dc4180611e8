"""A simulated A/B of two policies on the same held-out users, with common random numbers.

Both arms play the same (user, reset seed) episodes, scheduled as
agent.evaluation.simulated.evaluate_policies schedules its "simple" estimator's, so the
per-episode returns are paired: their difference has far less variance than two independent
samples, and the report gives both the paired interval and how many users an online
(unpaired) split would need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

from agent.evaluation.ab_stats import LIFTS, Difference, PowerRow, paired_difference, power_table
from agent.evaluation.simulated import EPISODE_SEED_STRIDE, episode_users
from agent.policies import SlatePolicy
from env.movie_rec_env import MovieRecEnv
from env.world import SimulationWorld

logger = logging.getLogger(__name__)


def episode_schedule(
    world: SimulationWorld, split: str, seeds: Sequence[int], users_per_seed: int
) -> list[tuple[str, int]]:
    """(user key, episode seed) for every episode: per seed, users drawn with
    default_rng(seed) from the split, episode j reset with seed * stride + j."""
    users = world.users(split)
    schedule: list[tuple[str, int]] = []
    for seed in seeds:
        drawn = episode_users(users, seed, users_per_seed, "simple")
        schedule.extend((str(u), seed * EPISODE_SEED_STRIDE + j) for j, u in enumerate(drawn))
    return schedule


@dataclass
class EpisodeLog:
    """Per-episode outcomes of one policy over a schedule."""

    policy: str
    returns: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    ratings: list[float] = field(default_factory=list)
    shown: set[int] = field(default_factory=set)


def play(
    policy: SlatePolicy,
    env: MovieRecEnv,
    schedule: Sequence[tuple[str, int]],
    *,
    max_steps: int = 50,
    on_episode: Callable[[], None] | None = None,
) -> EpisodeLog:
    """Run ``policy`` on every scheduled episode; the policy's own randomness is seeded by
    the episode seed too, so a rerun reproduces every number."""
    log = EpisodeLog(policy.name)
    for user, episode_seed in schedule:
        obs, _ = env.reset(seed=episode_seed, options={"user": user})
        policy_rng = np.random.default_rng(episode_seed)
        total, hits, steps = 0.0, 0, 0
        for _ in range(max_steps):
            slate = policy.select(obs, env.slate_context(policy_rng))
            obs, reward, terminated, _, info = env.step_slate(slate)
            total += reward
            steps += 1
            log.shown.update(int(r) for r in slate)
            if info["chosen"] >= 0:
                hits += 1
                log.ratings.append(float(info["rating"]))
            if terminated:
                break
        log.returns.append(total)
        log.hits.append(hits)
        log.steps.append(steps)
        if on_episode is not None:
            on_episode()
    return log


@dataclass(frozen=True)
class ArmSummary:
    """One arm's figures over all its episodes."""

    arm: str
    policy: str
    mean_return: float
    hit_rate: float
    mean_rating: float
    coverage: float
    episodes: int
    steps: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def summarise(arm: str, log: EpisodeLog, n_movies: int) -> ArmSummary:
    steps = int(np.sum(log.steps))
    return ArmSummary(
        arm=arm,
        policy=log.policy,
        mean_return=float(np.mean(log.returns)),
        hit_rate=float(np.sum(log.hits) / max(steps, 1)),
        mean_rating=float(np.mean(log.ratings)) if log.ratings else float("nan"),
        coverage=len(log.shown) / n_movies,
        episodes=len(log.returns),
        steps=steps,
    )


@dataclass(frozen=True)
class ABSimulation:
    """The simulated A/B: both arms, their paired difference (B - A) and a power table."""

    a: ArmSummary
    b: ArmSummary
    difference: Difference
    relative_lift: float
    power: list[PowerRow]
    seeds: list[int]
    users_per_seed: int
    split: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def simulate_ab(
    policy_a: SlatePolicy,
    policy_b: SlatePolicy,
    world: SimulationWorld,
    *,
    users: int = 100,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    max_steps: int = 50,
    split: str = "test",
    lifts: Sequence[float] = LIFTS,
    on_episode: Callable[[], None] | None = None,
    **env_kwargs: object,
) -> ABSimulation:
    """Play A and B on the same scheduled users and compare their per-episode returns."""
    if users < 2:
        raise ValueError("simulate at least two users per seed")
    schedule = episode_schedule(world, split, seeds, users)
    env = MovieRecEnv(world, split=split, **env_kwargs)  # type: ignore[arg-type]
    log_a = play(policy_a, env, schedule, max_steps=max_steps, on_episode=on_episode)
    log_b = play(policy_b, env, schedule, max_steps=max_steps, on_episode=on_episode)
    ra: npt.NDArray[np.float64] = np.asarray(log_a.returns)
    rb: npt.NDArray[np.float64] = np.asarray(log_b.returns)
    diff = paired_difference(ra, rb)
    base = float(ra.mean())
    n_movies = world.catalog.n_movies
    result = ABSimulation(
        a=summarise("A", log_a, n_movies),
        b=summarise("B", log_b, n_movies),
        difference=diff,
        relative_lift=diff.estimate / abs(base) if base != 0 else float("nan"),
        power=power_table(ra, rb, lifts),
        seeds=list(seeds),
        users_per_seed=users,
        split=split,
    )
    logger.info(
        "simulated A/B %s vs %s: difference %.4f [%.4f, %.4f], p = %.3g",
        policy_a.name,
        policy_b.name,
        diff.estimate,
        diff.ci95_low,
        diff.ci95_high,
        diff.p_value,
    )
    return result
