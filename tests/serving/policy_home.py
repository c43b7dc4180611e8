"""A Marquee home with a real trained policy, for the policy-serving and learner tests.

A small synthetic graph (300 movies) in a LocalGraphStore, the simulation world built from it
and saved where ``marquee train`` saves it, and a tiny DDPG trained for a few hundred steps by
agent.training.train and registered as "champion" in an MLflow SQLite registry in the home.
Built once per test session (training and MLflow set-up take seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.training import TrainConfig, train
from agent.worlds import world_dir
from env.world import SimulationWorld
from features.graph.local import LocalGraphStore
from features.importers.synthetic import generate_synthetic
from marquee.home import Home


@dataclass(frozen=True)
class TrainedHome:
    home: Home
    store: LocalGraphStore
    world: SimulationWorld
    zip_path: Path  # the trained policy (also registered as version 1, "champion")


_CACHE: list[TrainedHome] = []


def trained_home(factory: pytest.TempPathFactory) -> TrainedHome:
    """The session's trained home (built on first call)."""
    if _CACHE:
        return _CACHE[0]
    home = Home(factory.mktemp("policy-home")).ensure()
    batch = generate_synthetic(
        movies=300, people=600, users=80, ratings_per_user=25, genres=8, tags=40, seed=3
    )
    store = LocalGraphStore()
    store.upsert(batch)
    world = SimulationWorld.from_store(store, dim=8, factors=4, seed=0)
    world.save(world_dir(home))
    config = TrainConfig(
        agent=AgentConfig(
            features_dim=32,
            net_arch=[32, 32],
            batch_size=32,
            buffer_size=2_000,
            learning_starts=100,
        ),
        timesteps=300,
        n_envs=1,
        eval_every=10**9,
        eval_episodes=1,
        checkpoint_every=10**9,
        aliases=("champion",),
    )
    result = train(home, world, config)
    assert result.version == 1
    _CACHE.append(TrainedHome(home, store, world, result.model_path))
    return _CACHE[0]
