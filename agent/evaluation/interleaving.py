"""Team-draft interleaving, and how many users it needs against an A/B split in the simulator.

Team draft (Radlinski, Kurup and Joachims 2008): the two rankers take turns, like captains
picking teams; the one with fewer picks so far (a coin decides ties) adds its best item not yet
on the slate. Every item remembers its team, and a chosen item credits that team. Each user
sees both rankers at once, so the comparison is within the user and the between-user variance
that swamps an A/B split cancels out: a household's few users can then tell two versions apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from agent.evaluation.ab_simulation import episode_schedule, play
from agent.evaluation.ab_stats import Difference, one_sample, users_needed, welch
from agent.policies import SlatePolicy
from env.movie_rec_env import MovieRecEnv
from env.world import SimulationWorld

logger = logging.getLogger(__name__)

TEAM_A, TEAM_B = 0, 1


def team_draft(
    ranking_a: Sequence[int] | npt.NDArray[np.int64],
    ranking_b: Sequence[int] | npt.NDArray[np.int64],
    k: int,
    rng: np.random.Generator,
) -> tuple[list[int], list[int]]:
    """Interleave two rankings (best first) into at most ``k`` distinct items; returns the
    items and, for each, its team (TEAM_A or TEAM_B)."""
    rankings = ([int(x) for x in ranking_a], [int(x) for x in ranking_b])
    items: list[int] = []
    teams: list[int] = []
    taken: set[int] = set()
    cursor = [0, 0]
    picks = [0, 0]
    while len(items) < k:
        left = [any(x not in taken for x in rankings[t][cursor[t] :]) for t in (TEAM_A, TEAM_B)]
        if not any(left):
            break
        if picks[TEAM_A] != picks[TEAM_B]:
            team = TEAM_A if picks[TEAM_A] < picks[TEAM_B] else TEAM_B
        else:
            team = TEAM_A if rng.random() < 0.5 else TEAM_B
        if not left[team]:
            team = 1 - team
        ranking = rankings[team]
        while ranking[cursor[team]] in taken:
            cursor[team] += 1
        item = ranking[cursor[team]]
        items.append(item)
        teams.append(team)
        taken.add(item)
        picks[team] += 1
    return items, teams


def credit(teams: Sequence[int], chosen_position: int | None) -> int | None:
    """The team credited for a choice at ``chosen_position`` (None: nothing chosen)."""
    return None if chosen_position is None else int(teams[chosen_position])


@dataclass(frozen=True)
class Preference:
    """Per-user interleaving outcomes: wins for B, wins for A, ties, and the mean preference
    (+1 for a user whose choices credited B more often, -1 for A, 0 for a tie) with its CI."""

    wins_b: int
    wins_a: int
    ties: int
    preference: Difference

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def preference(credits_a: npt.ArrayLike, credits_b: npt.ArrayLike) -> Preference:
    """Summarise per-user credit counts into wins, losses, ties and the preference test."""
    a = np.asarray(credits_a, dtype=np.int64)
    b = np.asarray(credits_b, dtype=np.int64)
    score = np.sign(b - a).astype(np.float64)
    return Preference(
        wins_b=int((score > 0).sum()),
        wins_a=int((score < 0).sum()),
        ties=int((score == 0).sum()),
        preference=one_sample(score, test="interleaving preference t"),
    )


def play_interleaved(
    policy_a: SlatePolicy,
    policy_b: SlatePolicy,
    env: MovieRecEnv,
    schedule: Sequence[tuple[str, int]],
    *,
    max_steps: int = 50,
    on_episode: Callable[[], None] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every scheduled user sees team-draft slates of A and B; returns per-user credits."""
    credits_a, credits_b = [], []
    for user, episode_seed in schedule:
        obs, _ = env.reset(seed=episode_seed, options={"user": user})
        rng_a, rng_b, rng_draft = (
            np.random.default_rng([episode_seed, stream]) for stream in (1, 2, 3)
        )
        won = [0, 0]
        for _ in range(max_steps):
            ranking_a = policy_a.select(obs, env.slate_context(rng_a))
            ranking_b = policy_b.select(obs, env.slate_context(rng_b))
            items, teams = team_draft(ranking_a, ranking_b, env.slate_size, rng_draft)
            obs, _, terminated, _, info = env.step_slate(items)
            if info["chosen"] >= 0:
                team = credit(teams, items.index(int(info["chosen"])))
                won[team] += 1  # type: ignore[index]
            if terminated:
                break
        credits_a.append(won[TEAM_A])
        credits_b.append(won[TEAM_B])
        if on_episode is not None:
            on_episode()
    return np.asarray(credits_a), np.asarray(credits_b)


@dataclass(frozen=True)
class Sensitivity:
    """Users needed (alpha 0.05, power 0.8) to detect B vs A by interleaving and by an A/B
    split of the same users, from the same simulated users; ``ratio`` = A/B over interleaving."""

    policy_a: str
    policy_b: str
    users: int
    interleaving: Preference
    interleaving_users_needed: int
    ab_difference: Difference
    ab_users_needed: int
    ratio: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def sensitivity(
    policy_a: SlatePolicy,
    policy_b: SlatePolicy,
    world: SimulationWorld,
    *,
    users: int = 100,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    max_steps: int = 50,
    split: str = "test",
    on_episode: Callable[[], None] | None = None,
    **env_kwargs: object,
) -> Sensitivity:
    """Measure both designs on the same scheduled users.

    A/B: each arm's per-user return; the users needed for a split (independent users per
    arm, total over both) follow from the arms' pooled sd and the measured difference.
    Interleaving: each user's preference sign; the users needed follow from its mean and sd.
    """
    schedule = episode_schedule(world, split, seeds, users)
    env = MovieRecEnv(world, split=split, **env_kwargs)  # type: ignore[arg-type]
    credits_a, credits_b = play_interleaved(
        policy_a, policy_b, env, schedule, max_steps=max_steps, on_episode=on_episode
    )
    pref = preference(credits_a, credits_b)
    score = np.sign(credits_b - credits_a).astype(np.float64)
    n_interleave = users_needed(float(score.std(ddof=1)), pref.preference.estimate)
    log_a = play(policy_a, env, schedule, max_steps=max_steps, on_episode=on_episode)
    log_b = play(policy_b, env, schedule, max_steps=max_steps, on_episode=on_episode)
    ra, rb = np.asarray(log_a.returns), np.asarray(log_b.returns)
    ab = welch(ra, rb)
    pooled_sd = float(np.sqrt((ra.var(ddof=1) + rb.var(ddof=1)) / 2))
    n_ab = users_needed(pooled_sd, ab.estimate, arms=2)
    result = Sensitivity(
        policy_a=policy_a.name,
        policy_b=policy_b.name,
        users=len(schedule),
        interleaving=pref,
        interleaving_users_needed=n_interleave,
        ab_difference=ab,
        ab_users_needed=n_ab,
        ratio=n_ab / max(n_interleave, 1),
    )
    logger.info(
        "interleaving needs %d users, A/B %d (ratio %.1f)", n_interleave, n_ab, result.ratio
    )
    return result
