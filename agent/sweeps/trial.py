"""One trial of an experiment: simulate a policy, or train an agent and simulate it.

A pure function of (world, trial) that returns plain metrics, so it runs the same as a Ray task
on any machine or in this process. Trials track nothing themselves: the runner logs each as an
MLflow child run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import fields
from typing import Any

import numpy as np

from agent.evaluation.ab_simulation import episode_schedule, play
from agent.policies import SlatePolicy
from env.movie_rec_env import MovieRecEnv
from env.user_model import UserModelConfig
from env.world import SimulationWorld

from .config import Trial

logger = logging.getLogger(__name__)

ENV_SETTINGS = ("slate_size", "max_candidates", "candidate_hops", "history_size")
RUN_SETTINGS = ("policy", "users", "max_steps", "split", "timesteps", "n_envs")
USER_PREFIX = "user."


def _policy(name: str) -> SlatePolicy:
    from agent.baselines.simple import BASELINES
    from agent.evaluation.weakened import WeakenedPolicy

    if name.startswith("weakened:"):
        strength, _, base = name[len("weakened:") :].partition(":")
        return WeakenedPolicy(_policy(base), float(strength))
    if name not in BASELINES:
        raise ValueError(f"unknown policy {name!r}: use a baseline ({', '.join(BASELINES)})")
    return BASELINES[name]()


def env_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """The environment's settings from a trial's: env arguments and ``user.*`` fields."""
    user_fields = {f.name for f in fields(UserModelConfig)}
    user = {}
    kwargs: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ENV_SETTINGS:
            kwargs[key] = value
        elif key.startswith(USER_PREFIX) and key[len(USER_PREFIX) :] in user_fields:
            user[key[len(USER_PREFIX) :]] = value
    if user:
        kwargs["user_config"] = UserModelConfig(**user)
    return kwargs


def check_settings(kind: str, settings: dict[str, Any]) -> None:
    """Refuse settings no trial of ``kind`` reads (a typo would otherwise be silently ignored)."""
    from agent.config import AgentConfig

    agent_fields = {f.name for f in fields(AgentConfig)} - {"seed"} if kind == "train" else set()
    known = set(ENV_SETTINGS) | set(RUN_SETTINGS) | agent_fields
    for key in settings:
        if key in known or key.startswith(USER_PREFIX):
            continue
        raise ValueError(f"unknown setting {key!r} for a {kind} experiment")


def _train(world: SimulationWorld, settings: dict[str, Any], seed: int) -> SlatePolicy:
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env

    import env.registration  # noqa: F401  (registers the environment id)
    from agent.config import AgentConfig
    from agent.factory import build_agent, set_torch_threads
    from agent.policies import AgentPolicy
    from agent.wrappers import ActionPenalty
    from env.registration import ENV_ID

    names = {f.name for f in fields(AgentConfig)}
    config = AgentConfig(**{k: v for k, v in settings.items() if k in names}, seed=seed)
    set_torch_threads(config.torch_threads)
    kwargs = env_kwargs(settings)
    venv = make_vec_env(
        lambda: ActionPenalty(
            gym.make(ENV_ID, world=world, split="train", **kwargs), config.action_penalty
        ),
        n_envs=int(settings.get("n_envs", 4)),
        seed=seed,
    )
    model = build_agent(venv, config)
    model.learn(int(settings.get("timesteps", 10_000)))
    venv.close()
    return AgentPolicy(model, name=f"{config.algo}-seed{seed}")


def run_trial(world: SimulationWorld, kind: str, trial: Trial) -> dict[str, float]:
    """Run one trial and return its metrics (module doc)."""
    start = time.perf_counter()
    s = trial.settings
    if kind == "train":
        policy = _train(world, s, trial.seed)
    else:
        policy = _policy(str(s.get("policy", "most-popular")))
    split = str(s.get("split", "test"))
    env = MovieRecEnv(world, split=split, **env_kwargs(s))
    schedule = episode_schedule(world, split, [trial.seed], int(s.get("users", 50)))
    log = play(policy, env, schedule, max_steps=int(s.get("max_steps", 50)))
    steps = max(int(np.sum(log.steps)), 1)
    metrics = {
        "mean_return": float(np.mean(log.returns)),
        "hit_rate": float(np.sum(log.hits) / steps),
        "mean_rating": float(np.mean(log.ratings)) if log.ratings else float("nan"),
        "coverage": len(log.shown) / world.catalog.n_movies,
        "episodes": float(len(log.returns)),
        "seconds": time.perf_counter() - start,
    }
    logger.info("trial %s: mean return %.3f", trial.key, metrics["mean_return"])
    return metrics
