"""Build SB3's DDPG (or TD3) for Marquee, extended only through SB3's own hooks."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DDPG, TD3
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise

from agent.config import AgentConfig
from agent.extractor import StateExtractor

logger = logging.getLogger(__name__)

Agent = DDPG | TD3


def set_torch_threads(n: int) -> None:
    """Pin torch's intra-op threads: small MLPs on 2 cores run fastest on one thread."""
    th.set_num_threads(max(1, n))


def build_agent(
    env: gym.Env[Any, Any] | Any,
    config: AgentConfig,
    *,
    replay_buffer_class: type[ReplayBuffer] | None = None,
    replay_buffer_kwargs: dict[str, Any] | None = None,
) -> Agent:
    """A fresh DDPG/TD3 agent for ``env`` (a gym env or a VecEnv) with ``config``."""
    set_torch_threads(config.torch_threads)
    shape = env.action_space.shape
    if not shape:
        raise ValueError("the agent needs a Box action space")
    n_actions = int(np.prod(shape))
    noise = NormalActionNoise(np.zeros(n_actions), config.action_noise_sigma * np.ones(n_actions))
    cls = TD3 if config.algo == "td3" else DDPG
    n_steps = config.n_steps
    if n_steps > 1 and replay_buffer_class is None:
        # Name SB3's own n-step buffer explicitly: a saved model then records the buffer with its
        # n_steps and gamma, and loading it does not warn that ``n_steps`` is ignored.
        replay_buffer_class = NStepReplayBuffer
        replay_buffer_kwargs = {**(replay_buffer_kwargs or {}), "n_steps": n_steps}
        replay_buffer_kwargs["gamma"] = config.gamma
        n_steps = 1
    policy_kwargs = {
        "features_extractor_class": StateExtractor,
        "features_extractor_kwargs": {"features_dim": config.features_dim},
        "net_arch": list(config.net_arch),
    }
    model = cls(
        "MlpPolicy",
        env,
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        n_steps=n_steps,
        action_noise=noise,
        replay_buffer_class=replay_buffer_class,
        replay_buffer_kwargs=replay_buffer_kwargs,
        policy_kwargs=policy_kwargs,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    quiet_logger(model)
    logger.info("built %s with %s", cls.__name__, config.as_params())
    return model


def quiet_logger(model: Agent) -> None:
    """Give the model a logger with no outputs: SB3's default one makes an empty SB3-<time>
    folder in the temp directory on every ``learn``; Marquee logs through MLflow instead."""
    model.set_logger(Logger(folder=None, output_formats=[]))


def load_agent(path: str, env: Any | None = None, algo: str = "ddpg") -> Agent:
    """Load a saved agent zip (SB3's format)."""
    cls = TD3 if algo == "td3" else DDPG
    model = cls.load(path, env=env, device="cpu")
    quiet_logger(model)
    return model
