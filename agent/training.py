"""Train a policy in the simulator: SB3's own loop, MLflow tracking, checkpoints, registry.

The run logs its whole configuration as params, train/* and eval/* metrics, checkpoints as
artifacts, and registers the final policy as a new version of the registered model. A run
killed part way resumes from its last checkpoint (model, replay buffer, MLflow run id).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mlflow
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env

from agent.callbacks import CheckpointCallback, MLflowMetricsCallback, save_checkpoint
from agent.config import AgentConfig
from agent.evaluation.simulated import evaluate_policies
from agent.factory import Agent, build_agent, load_agent, set_torch_threads
from agent.policies import AgentPolicy
from agent.registry import PolicyRegistry, configure_tracking
from agent.wrappers import ActionPenalty
from env.registration import ENV_ID
from env.world import SimulationWorld
from marquee.home import Home

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """A training run: the agent's settings plus the run's own."""

    agent: AgentConfig = field(default_factory=AgentConfig)
    timesteps: int = 60_000
    n_envs: int = 4
    max_episode_steps: int = 50
    eval_every: int = 5_000
    eval_episodes: int = 30
    checkpoint_every: int = 5_000
    experiment: str = "marquee"
    run_name: str = "train"
    register: bool = True
    aliases: tuple[str, ...] = ("challenger",)

    def as_params(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k != "agent"}
        flat["aliases"] = ",".join(self.aliases)
        return {**flat, **{f"agent.{k}": v for k, v in self.agent.as_params().items()}}


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_path: Path
    version: int | None
    timesteps: int
    eval_curve: list[tuple[int, float]]
    seconds: float  # the whole call: world env setup, MLflow, the loop, the final evaluation
    learn_seconds: float = 0.0  # the learning loop alone (SB3's learn)
    learned_steps: int = 0  # env steps taken in that loop (less than timesteps on resume)


class EvalCallback(BaseCallback):
    """Every ``every`` steps plays the current actor on fresh episodes of the *training*
    users (test users stay untouched for `marquee evaluate`), logs eval/* and keeps the best
    actor so far in ``best_path``: DDPG's returns swing between evaluations, so the final
    policy is the best one seen, chosen without looking at held-out users."""

    def __init__(
        self, world: SimulationWorld, every: int, episodes: int, best_path: Path | None = None
    ) -> None:
        super().__init__()
        self.world = world
        self.every = every
        self.episodes = episodes
        self.best_path = best_path
        self.best = float("-inf")
        self.curve: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            self.record()
        return True

    def record(self) -> float:
        report = evaluate_policies(
            [AgentPolicy(self.model)],
            self.world,
            seeds=(1_000, 1_001),
            episodes_per_seed=self.episodes,
            split="train",
            estimator="simple",  # cheap (episodes end when the user leaves), as trained since
        )[0]
        self.curve.append((self.num_timesteps, report.mean_return))
        if self.best_path is not None and report.mean_return > self.best:
            self.best = report.mean_return
            self.model.save(self.best_path)
        if mlflow.active_run() is not None:
            mlflow.log_metrics(
                {
                    "eval/mean_return": report.mean_return,
                    "eval/hit_rate": report.hit_rate,
                    "eval/mean_rating": report.mean_rating,
                },
                step=self.num_timesteps,
            )
        return report.mean_return


def checkpoint_dir(home: Home, run_name: str) -> Path:
    return home.models_dir / "checkpoints" / run_name


def train(
    home: Home,
    world: SimulationWorld,
    config: TrainConfig,
    *,
    resume: bool = False,
    on_steps: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train (or resume) a policy; returns where it went and how it did."""
    import time

    start = time.perf_counter()
    set_torch_threads(config.agent.torch_threads)
    home.ensure()
    ckpt = checkpoint_dir(home, config.run_name)
    venv = make_vec_env(
        lambda: ActionPenalty(
            gym.make(ENV_ID, world=world, split="train"), config.agent.action_penalty
        ),
        n_envs=config.n_envs,
        seed=config.agent.seed,
    )
    run_id: str | None = None
    model: Agent
    if resume and (ckpt / "model.zip").exists():
        model = load_agent(str(ckpt / "model.zip"), env=venv, algo=config.agent.algo)
        if (ckpt / "buffer.pkl").exists():
            model.load_replay_buffer(ckpt / "buffer.pkl")
        meta = json.loads((ckpt / "run.json").read_text()) if (ckpt / "run.json").exists() else {}
        run_id = meta.get("run_id")
        logger.info("resuming from step %d (%s)", model.num_timesteps, ckpt)
    else:
        model = build_agent(venv, config.agent)
    configure_tracking(home.tracking_uri, home.artifacts_dir, config.experiment)
    remaining = max(0, config.timesteps - model.num_timesteps)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else config.run_name) as run:
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / "run.json").write_text(json.dumps({"run_id": run.info.run_id}))
        if run_id is None:
            mlflow.log_params(config.as_params())
        evaluator = EvalCallback(
            world, config.eval_every, config.eval_episodes, best_path=ckpt / "best.zip"
        )
        callbacks: list[BaseCallback] = [
            MLflowMetricsCallback(log_every=max(config.n_envs, 500)),
            CheckpointCallback(ckpt, every=config.checkpoint_every),
            evaluator,
        ]
        if on_steps is not None:
            callbacks.append(_StepHook(on_steps))
        loop_start, steps_before = time.perf_counter(), int(model.num_timesteps)
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=not resume)
        learn_seconds = time.perf_counter() - loop_start
        learned_steps = int(model.num_timesteps) - steps_before
        final_return = evaluator.record()
        save_checkpoint(model, ckpt)
        model_path = ckpt / "best.zip"
        mlflow.log_artifact(str(model_path), artifact_path="checkpoints")
        seconds = time.perf_counter() - start
        mlflow.log_metrics(
            {
                "train/seconds": seconds,
                "eval/final_return": final_return,
                "eval/best_return": evaluator.best,
            }
        )
        version = None
        if config.register:
            version = PolicyRegistry(home.tracking_uri).register(
                model_path, algo=config.agent.algo, aliases=config.aliases
            )
    venv.close()
    return TrainResult(
        run_id=run.info.run_id,
        model_path=model_path,
        version=version,
        timesteps=int(model.num_timesteps),
        eval_curve=evaluator.curve,
        seconds=seconds,
        learn_seconds=learn_seconds,
        learned_steps=learned_steps,
    )


class _StepHook(BaseCallback):
    def __init__(self, fn: Callable[[int], None]) -> None:
        super().__init__()
        self.fn = fn

    def _on_step(self) -> bool:
        self.fn(int(np.asarray(self.training_env.num_envs)))
        return True
