"""AgentConfig: every setting of the DDPG/TD3 agent in one dataclass, logged whole to MLflow.

The defaults were chosen by measurement on marquee/MovieRec-v0 (see README, "Agent defaults").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class AgentConfig:
    """Settings for building and training the agent."""

    algo: Literal["ddpg", "td3"] = "ddpg"
    features_dim: int = 128
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    learning_rate: float = 3e-4
    batch_size: int = 128
    buffer_size: int = 200_000
    learning_starts: int = 1_000
    gamma: float = 0.5
    tau: float = 0.005
    train_freq: int = 4
    gradient_steps: int = 1
    n_steps: int = 1  # n-step returns (SB3's own n_steps)
    action_noise_sigma: float = 0.2
    action_penalty: float = 0.5
    seed: int = 0
    torch_threads: int = 1

    def as_params(self) -> dict[str, Any]:
        """Flat params for MLflow (lists as strings)."""
        return {k: (str(v) if isinstance(v, list) else v) for k, v in asdict(self).items()}
