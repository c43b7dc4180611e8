"""The one home folder that holds everything Marquee keeps: graph, models, tracking, buffer.

Chosen by ``--home``, else ``MARQUEE_HOME``, else a per-user data folder (platformdirs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class Home:
    """Paths inside the home folder. Nothing is created until ``ensure`` is called."""

    root: Path
    tracking_override: str | None = None  # MLFLOW_TRACKING_URI when the home was resolved

    @property
    def graph_dir(self) -> Path:
        return self.root / "graph"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def world_dir(self) -> Path:
        """The trained world: the simulator's files and the ranking bundle the service loads
        (features.bundle), kept together since a policy is only valid with its embeddings."""
        return self.models_dir / "world"

    @property
    def tracking_dir(self) -> Path:
        return self.root / "tracking"

    @property
    def tracking_uri(self) -> str:
        """MLflow's embedded default, a SQLite file, unless MLFLOW_TRACKING_URI was set when the
        home was resolved (read once: mlflow.set_tracking_uri itself writes that variable)."""
        return self.tracking_override or f"sqlite:///{self.tracking_dir / 'mlflow.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.tracking_dir / "artifacts"

    @property
    def buffer_dir(self) -> Path:
        return self.root / "buffer"

    def ensure(self) -> Home:
        for d in (self.root, self.graph_dir, self.models_dir, self.tracking_dir, self.buffer_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    """The home folder: ``explicit`` if given, else $MARQUEE_HOME, else the user data folder."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or None
    if explicit:
        return Home(Path(explicit).expanduser().resolve(), tracking)
    env = os.environ.get("MARQUEE_HOME")
    if env:
        return Home(Path(env).expanduser().resolve(), tracking)
    return Home(Path(platformdirs.user_data_dir("marquee", appauthor=False)), tracking)
