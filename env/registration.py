"""Registers the Marquee environments with Gymnasium (imported by ``env/__init__``)."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "marquee/MovieRec-v0"
MAX_EPISODE_STEPS = 50


def register_envs() -> None:
    """Register ``marquee/MovieRec-v0`` once (idempotent).

    Pass ``world=...`` (a SimulationWorld or a saved world folder) to ``gymnasium.make`` to
    share one world between environments; without it the bundled ml-latest-small world is
    built once per process.
    """
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="env.movie_rec_env:MovieRecEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )


register_envs()
