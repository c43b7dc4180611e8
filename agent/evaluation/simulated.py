"""Compare policies in the simulator on the same held-out users with common random numbers.

Every policy plays the same episodes: for seed s and episode j, the same user and the same
reset seed. Per policy: mean return per episode with a 95% confidence interval over seeds
(Student t on the per-seed means), hit rate (steps where the user chose something), mean
rating of chosen movies, catalogue coverage and diversity within the slate.

Because the episodes are shared, two policies' per-seed means move together (a seed of long
sessions is long for every policy), so their own intervals overlap even when one wins on every
seed. ``paired_differences`` gives the interval of the per-seed difference instead, the test
common random numbers are for.

Two estimators of a policy's mean return per episode over the held-out users, the same
quantity:

- "simple": each seed draws its users at random (with replacement), each episode is played until
  the simulated user leaves (a coin after every slate) and a seed's figure is the mean of the
  episodes' summed rewards. Cheap; what training's evaluations use.
- "stratified" (the reports' default) removes the two largest sources of variance that are not
  the policy's doing. Each seed's episodes cover the users as evenly as their number allows
  (whole passes in a seeded order, the last pass a random subset) and a seed's figure averages
  each user's returns first, so which users a seed drew no longer moves it (about 70% of a
  return's variance on ml-latest-small is between users). And the user is kept to
  ``max_steps``, each slate's reward weighted by the probability they were still there (the
  product of 1 - leave probability over the slates before): the expected return over the
  leaving coins, given the rest of the episode (conditional Monte Carlo).

Hit rate, rating, coverage, diversity and regret count the session as played in both (under
"stratified" its leaving coins come from a stream of their own), and ``played_seed_returns``
gives the summed rewards of those sessions beside the stratified figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
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
    estimator: str
    played_seed_returns: list[float]
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


ESTIMATORS = ("stratified", "simple")
LEAVE_STREAM = 7  # the leaving coins' own stream under "stratified": (episode seed, 7)
EPISODE_SEED_STRIDE = 100_003  # episode j of seed s resets with seed s * stride + j


def episode_users(
    users: npt.NDArray[np.str_], seed: int, n: int, estimator: str
) -> npt.NDArray[np.str_]:
    """The users of one seed's ``n`` episodes: drawn with replacement ("simple"), or whole
    passes over the users in a seeded order and a random subset for the rest ("stratified")."""
    rng = np.random.default_rng(seed)
    if estimator == "simple":
        return users[rng.integers(users.shape[0], size=n)]
    passes, rest = divmod(n, users.shape[0])
    order = [rng.permutation(users.shape[0]) for _ in range(passes + 1)]
    return users[np.concatenate([*order[:passes], order[passes][:rest]])]


def user_mean(users: npt.NDArray[np.str_], returns: Sequence[float]) -> float:
    """The mean over users of each user's mean return: each user counts once."""
    _, inverse = np.unique(users, return_inverse=True)
    totals = np.bincount(inverse, weights=np.asarray(returns, dtype=np.float64))
    return float((totals / np.bincount(inverse)).mean())


def evaluate_policies(
    policies: Sequence[SlatePolicy],
    world: SimulationWorld,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes_per_seed: int = 50,
    max_steps: int = 50,
    split: str = "test",
    estimator: str = "stratified",
    on_episode: Callable[[], None] | None = None,
    **env_kwargs: object,
) -> list[PolicyReport]:
    """Play every policy on the same (user, seed) episodes and summarise each; ``estimator``
    is "stratified" or "simple" (module docstring)."""
    if len(seeds) < 2:
        raise ValueError("evaluate with at least two seeds (five for the reported intervals)")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    stratified = estimator == "stratified"
    env = MovieRecEnv(
        world,
        split=split,
        users_leave=not stratified,
        **env_kwargs,  # type: ignore[arg-type]
    )
    users = world.users(split)
    schedule = {s: episode_users(users, s, episodes_per_seed, estimator) for s in seeds}
    reports = []
    for policy in policies:
        seed_returns: list[float] = []
        played_seed_returns: list[float] = []
        hits = steps = 0
        ratings: list[float] = []
        regrets: list[float] = []
        shown: set[int] = set()
        diversity: list[float] = []
        for seed in seeds:
            weighted_returns, played_returns = [], []
            for j, user in enumerate(schedule[seed]):
                episode_seed = seed * EPISODE_SEED_STRIDE + j
                obs, _ = env.reset(seed=episode_seed, options={"user": str(user)})
                policy_rng = np.random.default_rng(episode_seed)
                leave_rng = np.random.default_rng((episode_seed, LEAVE_STREAM))
                played = weighted = 0.0
                survival = 1.0
                present = True
                for _ in range(max_steps):
                    ctx = env.slate_context(policy_rng)
                    slate = policy.select(obs, ctx)
                    obs, reward, terminated, _, info = env.step_slate(slate)
                    weighted += survival * reward
                    survival *= 1.0 - float(info["leave_probability"])
                    if present:
                        played += reward
                        steps += 1
                        shown.update(int(r) for r in slate)
                        diversity.append(_diversity(env.world.embeddings.vectors, slate))
                        regrets.append(float(info["regret"]))
                        if info["chosen"] >= 0:
                            hits += 1
                            ratings.append(float(info["rating"]))
                        if stratified:
                            present = leave_rng.random() >= info["leave_probability"]
                    if terminated:  # only under "simple": the env's own coin
                        break
                weighted_returns.append(weighted)
                played_returns.append(played)
                if on_episode is not None:
                    on_episode()
            if stratified:
                seed_returns.append(user_mean(schedule[seed], weighted_returns))
            else:
                seed_returns.append(float(np.mean(played_returns)))
            played_seed_returns.append(float(np.mean(played_returns)))
        low, high = confidence_interval(seed_returns)
        reports.append(
            PolicyReport(
                policy=policy.name,
                mean_return=float(np.mean(seed_returns)),
                ci95_low=low,
                ci95_high=high,
                seed_returns=seed_returns,
                estimator=estimator,
                played_seed_returns=played_seed_returns,
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
