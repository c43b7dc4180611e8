"""Fixtures shared across packages."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from env.world import SimulationWorld


@pytest.fixture(scope="session")
def ml_world() -> SimulationWorld:
    """The simulation world of the bundled ml-latest-small, built once per test session."""
    return SimulationWorld.from_movielens()


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri() -> Iterator[None]:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; clear it so one test's MLflow
    store never leaks into the next test's home folder. Cleared again after the test: a
    module-scoped fixture of the next module runs before this one does. Not through
    monkeypatch: its undo would put back the value a module-scoped fixture had set (a trained
    home registers its policy), leaking it into the next module (test_admin's registry)."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
