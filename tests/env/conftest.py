"""Worlds for the environment tests: the bundled ml-latest-small (built once per session) and a
tiny hand-made one whose world model we choose."""

from __future__ import annotations

import numpy as np
import pytest

from env.world import SimulationWorld
from env.world_model import WorldModel
from features.embeddings import ItemEmbeddings
from tests.features.catalog_fixtures import tiny_catalog

# User u1's taste in the tiny world: predicted rating = 3 + ITEM_SCORE (mu 3, no biases).
ITEM_SCORE = {
    "m1": 0.5,
    "m2": 1.5,
    "m3": -1.0,
    "m4": 1.0,
    "m5": 0.2,
    "m6": 1.8,
    "m7": 0.9,
    "m8": 1.2,
}


def make_tiny_world() -> SimulationWorld:
    cat = tiny_catalog()
    emb = ItemEmbeddings.fit(cat, dim=3)
    users = np.array(["u1", "u2", "u3", "u4"])
    q = np.array([[ITEM_SCORE[k], 0.0] for k in cat.movie_keys])
    p = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.5, 0.5]])
    model = WorldModel(
        mu=3.0,
        user_keys=users,
        user_bias=np.zeros(4),
        item_bias=np.zeros(cat.n_movies),
        user_factors=p,
        item_factors=q,
    )
    return SimulationWorld(cat, emb, model, users[:3], users[3:], {"tiny": True})


@pytest.fixture
def tiny_world() -> SimulationWorld:
    return make_tiny_world()
