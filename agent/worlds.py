"""The simulation world kept in the home folder: what training builds and serving ranks with.

A trained policy only makes sense with the embeddings it was trained on, so the world is saved
once under ``<home>/models/world`` and both ``marquee train`` and the service load it from there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from env.world import SimulationWorld
from features.graph.factory import opened_store
from marquee.home import Home

logger = logging.getLogger(__name__)


class NoRatingsError(ValueError):
    """The graph holds no ratings, so there is nothing to simulate users from."""


def world_dir(home: Home) -> Path:
    return home.world_dir


def load_or_build_world(
    home: Home,
    rebuild: bool = False,
    slate_features: tuple[str, ...] = (),
    slate_feature_reach: float = 1.0,
) -> SimulationWorld:
    """The saved world, or one built from the home's graph (then saved) when there is none or
    ``rebuild`` is asked for, with ``slate_features`` and their reach
    (env.world.SimulationWorld.build)."""
    folder = world_dir(home)
    if folder.exists() and not rebuild:
        return SimulationWorld.load(folder)
    with opened_store(home) as store:
        if not store.counts().get("rated", 0):
            raise NoRatingsError("the graph holds no ratings: run `marquee ingest movielens` first")
        logger.info("building the simulation world from %s", home.graph_dir)
        world = SimulationWorld.from_store(
            store, slate_features=slate_features, slate_feature_reach=slate_feature_reach
        )
    world.save(folder)
    return world
