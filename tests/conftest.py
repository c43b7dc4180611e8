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
def _no_leaked_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; clear it so one test's MLflow
    store never leaks into the next test's home folder. Cleared again after the test: a
    module-scoped fixture of the next module runs before this one does."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
