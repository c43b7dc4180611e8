"""SB3 callbacks: episode metrics to MLflow and periodic checkpoints for resuming."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

logger = logging.getLogger(__name__)


class MLflowMetricsCallback(BaseCallback):
    """Logs train/* metrics from finished episodes (needs a Monitor/RecordEpisodeStatistics
    wrapper or ``episode`` in info) every ``log_every`` steps to the active MLflow run."""

    def __init__(self, log_every: int = 1_000, window: int = 50) -> None:
        super().__init__()
        self.log_every = log_every
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.history: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is not None:
                self.returns.append(float(ep["r"]))
                self.lengths.append(int(ep["l"]))
        if self.num_timesteps % self.log_every == 0 and self.returns:
            mean_r = float(np.mean(self.returns))
            self.history.append((self.num_timesteps, mean_r))
            metrics = {
                "train/episode_return": mean_r,
                "train/episode_length": float(np.mean(self.lengths)),
            }
            metrics.update(_sb3_losses(self.model))
            if mlflow.active_run() is not None:
                mlflow.log_metrics(metrics, step=self.num_timesteps)
        return True


def _sb3_losses(model: Any) -> dict[str, float]:
    """The latest actor/critic losses SB3 recorded in its logger, renamed train/*."""
    values = getattr(getattr(model, "logger", None), "name_to_value", {}) or {}
    out = {}
    for key in ("train/actor_loss", "train/critic_loss"):
        if key in values:
            out[key] = float(values[key])
    return out


class CheckpointCallback(BaseCallback):
    """Every ``every`` steps saves the model and its replay buffer to ``directory`` (atomically:
    write then rename), so a killed run resumes from the last checkpoint."""

    def __init__(self, directory: Path, every: int = 5_000, save_buffer: bool = True) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.every = every
        self.save_buffer = save_buffer

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            save_checkpoint(self.model, self.directory, save_buffer=self.save_buffer)
        return True


def save_checkpoint(model: Any, directory: Path, *, save_buffer: bool = True) -> Path:
    """Write ``model.zip`` (and ``buffer.pkl``) into ``directory`` atomically; returns the zip."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp_zip = directory / "model.tmp.zip"
    model.save(tmp_zip)
    if save_buffer and hasattr(model, "save_replay_buffer"):
        tmp_buf = directory / "buffer.tmp.pkl"
        model.save_replay_buffer(tmp_buf)
        tmp_buf.replace(directory / "buffer.pkl")
    final = directory / "model.zip"
    tmp_zip.replace(final)
    logger.info("checkpoint at step %d in %s", model.num_timesteps, directory)
    return final
