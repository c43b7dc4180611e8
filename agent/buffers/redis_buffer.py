"""RedisReplayBuffer: an SB3 ReplayBuffer whose transitions live in Redis.

Pass it to DDPG/TD3 as ``replay_buffer_class`` so the learner samples what the service pushes
from real feedback (serving.feedback.store writes the same ring, see agent.buffers.redis_ring):

    DDPG("MlpPolicy", env, replay_buffer_class=RedisReplayBuffer,
         replay_buffer_kwargs={"redis_url": "redis://localhost:6379/0",
                               "prefix": ring_prefix("marquee")})

``redis_url`` may name a single server or any node of a Redis Cluster (agent.buffers.redis_client).

Only flat Box observations and actions are supported; ``optimize_memory_usage`` is not.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import redis
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from agent.buffers.redis_client import client_from_url
from agent.buffers.redis_ring import RedisRing, Transitions, ring_prefix

log = logging.getLogger(__name__)


class RedisReplayBuffer(ReplayBuffer):
    """A replay buffer of capacity ``buffer_size`` transitions kept in a Redis ring.

    ``redis_url`` or ``client`` names the server; ``prefix`` the ring's keys (the service and
    the learner must use the same). ``clear=True`` empties the ring first.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: Any = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
        prefix: str = ring_prefix("marquee"),
        clear: bool = False,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("RedisReplayBuffer does not support optimize_memory_usage=True")
        if not isinstance(observation_space, spaces.Box) or not isinstance(
            action_space, spaces.Box
        ):
            raise ValueError(
                "RedisReplayBuffer needs Box observation and action spaces, got "
                f"{type(observation_space).__name__} and {type(action_space).__name__}"
            )
        if (redis_url is None) == (client is None):
            raise ValueError("RedisReplayBuffer needs exactly one of redis_url or client")
        # Skip ReplayBuffer.__init__: it would allocate buffer_size numpy rows we never use.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.client = client if client is not None else client_from_url(redis_url or "")
        obs_dim = int(np.prod(self.obs_shape))
        self.ring = RedisRing(
            self.client, prefix, obs_dim=obs_dim, action_dim=self.action_dim, capacity=buffer_size
        )
        if clear:
            self.ring.clear()
        self._sync()

    def _sync(self) -> None:
        """Refresh SB3's ``pos``/``full`` view from the shared ring."""
        total = self.ring.total()
        self.full = total >= self.buffer_size
        self.pos = total % self.buffer_size

    def size(self) -> int:
        return self.ring.size()

    def reset(self) -> None:
        self.ring.clear()
        self._sync()

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        n = self.n_envs
        done_arr = np.asarray(done, dtype=np.float32).reshape(n)
        if self.handle_timeout_termination:  # a time-limit cut is not a true terminal state
            timeouts = np.array(
                [bool(info.get("TimeLimit.truncated", False)) for info in infos], dtype=np.float32
            )
            done_arr = done_arr * (1.0 - timeouts)
        self.ring.push(
            Transitions(
                obs=np.asarray(obs, dtype=np.float32).reshape(n, -1),
                action=np.asarray(action, dtype=np.float32).reshape(n, self.action_dim),
                next_obs=np.asarray(next_obs, dtype=np.float32).reshape(n, -1),
                reward=np.asarray(reward, dtype=np.float32).reshape(n),
                done=done_arr,
            )
        )
        self._sync()

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        size = self.ring.size()
        if size == 0:
            raise ValueError(f"replay ring {self.ring.prefix!r} is empty: nothing to sample")
        return self._get_samples(np.random.randint(0, size, size=batch_size), env=env)

    def _get_samples(
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        t = self.ring.get(batch_inds)
        shape = (len(batch_inds), *self.obs_shape)
        obs = self._normalize_obs(t.obs.reshape(shape), env)
        next_obs = self._normalize_obs(t.next_obs.reshape(shape), env)
        assert isinstance(obs, np.ndarray) and isinstance(next_obs, np.ndarray)  # Box spaces
        data = (
            obs,
            t.action,
            next_obs,
            t.done.reshape(-1, 1),
            self._normalize_reward(t.reward.reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*(self.to_torch(x) for x in data))
