"""The state feature extractor plugged into SB3 through ``features_extractor_class``.

Marquee's state mixes scales (pooled embeddings, their products, affinities, path-count
features), so the extractor normalises each state with LayerNorm before one dense layer.
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class StateExtractor(BaseFeaturesExtractor):
    """LayerNorm, then Linear + ReLU to ``features_dim`` features."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        n_in = int(observation_space.shape[0])
        self.net = nn.Sequential(nn.LayerNorm(n_in), nn.Linear(n_in, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)
