"""The closed loop's home: a graph, the simulation world built from it, a champion policy.

``synthetic`` (the CI default) is a small seeded graph (features.importers.synthetic), built
and trained in seconds; ``movielens`` is the bundled ml-latest-small with the calibrated
simulator the README's figures use. The champion is trained in that world by agent.training
for ``champion_steps`` (few: a deliberately weak champion; many: a strong one) and registered
as both ``champion`` and ``challenger`` (so both A/B arms serve it until the learner registers
a new challenger).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.config import AgentConfig
from agent.training import TrainConfig, train
from env.world import SimulationWorld
from features.graph.batch import GraphBatch
from features.graph.factory import opened_store
from features.graph.schema import EdgeKind, VertexKind, slug
from marquee.home import Home

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HomeSpec:
    """What to build: the data set, its size (synthetic) and the champion's training."""

    dataset: str = "synthetic"  # or "movielens"
    movies: int = 300
    users: int = 120
    ratings_per_user: int = 25
    champion_steps: int = 300
    plex_users: int = 0  # users renamed "plex-<key>": their feedback goes through the webhook
    seed: int = 0


USER_EDGES = (EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)


def as_plex_users(batch: GraphBatch, n: int) -> GraphBatch:
    """The batch with its first ``n`` users keyed as the Plex sync and webhooks key a Plex
    account (serving.plex.ids.user_key: "plex-" + the account name's slug), so that those
    people's webhook deliveries name the same user the service serves."""
    users = batch.vertices.get(VertexKind.USER)
    if n <= 0 or users is None:
        return batch
    rename = {k: f"plex-{slug(k)}" for k in users["key"].astype(str).head(n)}
    batch.vertices[VertexKind.USER] = users.assign(key=users["key"].replace(rename))
    for kind in USER_EDGES:
        frame = batch.edges.get(kind)
        if frame is not None:
            batch.edges[kind] = frame.assign(src=frame["src"].astype(str).replace(rename))
    return batch


def build_home(home: Home, spec: HomeSpec) -> tuple[SimulationWorld, int]:
    """Import the graph, build and save the world, train and register the champion; returns
    the world and the champion's registry version."""
    home.ensure()
    with opened_store(home) as store:
        if spec.dataset == "synthetic":
            from features.importers.synthetic import generate_synthetic

            batch = generate_synthetic(
                movies=spec.movies,
                people=2 * spec.movies,
                users=spec.users,
                ratings_per_user=spec.ratings_per_user,
                genres=8,
                tags=40,
                seed=spec.seed,
            )
            store.upsert(as_plex_users(batch, spec.plex_users))
            world = SimulationWorld.from_store(store, dim=8, factors=4, seed=spec.seed)
            agent = AgentConfig(
                features_dim=32,
                net_arch=[32, 32],
                batch_size=32,
                buffer_size=5_000,
                learning_starts=min(100, spec.champion_steps),
                seed=spec.seed,
            )
        elif spec.dataset == "movielens":
            from features.datasets import bundled_movielens
            from features.importers.movielens import load_movielens

            store.upsert(as_plex_users(load_movielens(bundled_movielens()), spec.plex_users))
            world = SimulationWorld.from_store(store, seed=spec.seed)
            agent = AgentConfig(learning_starts=min(1_000, spec.champion_steps), seed=spec.seed)
        else:
            raise ValueError(f"dataset must be 'synthetic' or 'movielens', not {spec.dataset!r}")
    world.save(home.world_dir)
    config = TrainConfig(
        agent=agent,
        timesteps=spec.champion_steps,
        n_envs=1,
        eval_every=10**9,
        eval_episodes=1,
        checkpoint_every=10**9,
        aliases=("champion", "challenger"),
        run_name="online-loop-champion",
    )
    result = train(home, world, config)
    if result.version is None:
        raise RuntimeError("the champion was not registered")
    log.info("champion: version %d after %d steps", result.version, spec.champion_steps)
    return world, int(result.version)
