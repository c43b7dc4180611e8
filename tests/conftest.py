"""Fixtures shared across packages."""

from __future__ import annotations

import pytest

from env.world import SimulationWorld


@pytest.fixture(scope="session")
def ml_world() -> SimulationWorld:
    """The simulation world of the bundled ml-latest-small, built once per test session."""
    return SimulationWorld.from_movielens()
