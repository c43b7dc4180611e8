"""A fixed-capacity ring of transitions (s, a, r, s', done) kept in Redis, free of torch.

The service pushes transitions built from real feedback and the learner samples them, from
different processes, so the ring lives entirely in Redis. This module is the one place that
knows its keys (``RingKeys``, under ``ring_prefix(service prefix)``) and its push script:

- ``<ring>:meta``  hash: obs_dim, action_dim, capacity (set once; every opener must agree)
- ``<ring>:count`` integer: how many transitions were ever pushed
- ``<ring>:data``  hash: slot (count % capacity) -> packed float32 bytes

``<ring>`` is the ring's prefix with a Redis Cluster hash tag (agent.buffers.hash_tag): the
service's ring is ``{<service prefix>:feedback}:buffer``, in the feedback store's slot; a prefix
given without a tag is wrapped in one, so the three keys always share a slot.

A transition packs as float32 ``[obs, next_obs, action, reward, done]``. Pushes run in one Lua
script (INCR then HSET), so concurrent writers never share a slot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from agent.buffers.hash_tag import FEEDBACK, ensure_tag, tag

log = logging.getLogger(__name__)

# A Lua function that other scripts embed, so that a transition can be pushed in the same
# atomic script as other writes (the feedback store stores an event and its transition at once).
RING_PUSH_LUA = """
local function ring_push(count_key, data_key, capacity, blob)
  local i = redis.call('INCR', count_key) - 1
  redis.call('HSET', data_key, tostring(i % capacity), blob)
  return i
end
"""

_PUSH_SCRIPT = (
    RING_PUSH_LUA
    + """
local capacity = tonumber(ARGV[1])
local last = -1
for j = 2, #ARGV do
  last = ring_push(KEYS[1], KEYS[2], capacity, ARGV[j])
end
return last
"""
)


def ring_prefix(prefix: str) -> str:
    """The ring's key prefix under a service's Redis prefix (``MARQUEE_REDIS_PREFIX``): in the
    feedback store's hash slot, whose script pushes transitions."""
    return f"{tag(prefix, FEEDBACK)}:buffer"


@dataclass(frozen=True)
class RingKeys:
    """The Redis keys of the ring at ``prefix`` (module doc)."""

    prefix: str

    @property
    def base(self) -> str:
        """The prefix with a hash tag (the one given, else the prefix wrapped in braces)."""
        return ensure_tag(self.prefix)

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    @property
    def count(self) -> str:
        return f"{self.base}:count"

    @property
    def data(self) -> str:
        return f"{self.base}:data"

    def stored_capacity(self, client: redis.Redis) -> int | None:
        """The capacity the ring was made with, or None before it exists."""
        stored = client.hget(self.meta, "capacity")
        return int(stored) if stored is not None else None  # type: ignore[arg-type]

    def size(self, client: redis.Redis) -> int:
        """Transitions held (0 before the first one), without knowing the dimensions."""
        pipe = client.pipeline(transaction=False)
        pipe.hget(self.meta, "capacity")
        pipe.get(self.count)
        cap, count = pipe.execute()
        return 0 if cap is None or count is None else min(int(count), int(cap))


class RingConfigError(ValueError):
    """The ring in Redis was created with other dimensions or capacity than the caller's."""


@dataclass(frozen=True)
class Transitions:
    """A batch of transitions as float32 arrays: obs (n, d), action (n, a), reward (n,), ..."""

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    done: np.ndarray


class RedisRing:
    """The ring at ``prefix`` in ``client``; creates its metadata on first use.

    With ``adopt_capacity`` an existing ring's capacity wins over ``capacity`` (the service
    uses this so that the learner, which creates the ring, decides its size).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        obs_dim: int,
        action_dim: int,
        capacity: int,
        adopt_capacity: bool = False,
    ) -> None:
        if obs_dim < 1 or action_dim < 1:
            raise RingConfigError(f"ring {prefix!r}: obs_dim and action_dim must be >= 1")
        if capacity < 1:
            raise RingConfigError(f"ring {prefix!r}: capacity must be >= 1, got {capacity}")
        self.client = client
        self.prefix = prefix
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.capacity = capacity
        self.keys = RingKeys(prefix)
        self.meta_key = self.keys.meta
        self.count_key = self.keys.count
        self.data_key = self.keys.data
        self.width = 2 * obs_dim + action_dim + 2
        self._push = client.register_script(_PUSH_SCRIPT)
        if adopt_capacity:  # a ring that already exists keeps the capacity it was made with
            stored = self.keys.stored_capacity(client)
            if stored is not None:
                self.capacity = stored
        self._check_meta()

    def _check_meta(self) -> None:
        wanted = {"obs_dim": self.obs_dim, "action_dim": self.action_dim, "capacity": self.capacity}
        pipe = self.client.pipeline(transaction=True)
        for name, value in wanted.items():
            pipe.hsetnx(self.meta_key, name, value)
        pipe.hgetall(self.meta_key)
        stored = pipe.execute()[-1]
        have = {k.decode(): int(v) for k, v in stored.items()}
        wrong = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
        if wrong:
            detail = ", ".join(
                f"{k}: Redis has {h}, caller wants {w}" for k, (h, w) in wrong.items()
            )
            raise RingConfigError(
                f"replay ring {self.prefix!r} exists with other settings ({detail})"
            )

    def pack(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        done: bool,
    ) -> bytes:
        """One transition as the bytes the ring stores; checks the dimensions."""
        o = np.asarray(obs, dtype=np.float32).reshape(-1)
        n = np.asarray(next_obs, dtype=np.float32).reshape(-1)
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if o.size != self.obs_dim or n.size != self.obs_dim:
            raise RingConfigError(
                f"ring {self.prefix!r}: observation has {o.size}/{n.size} values, "
                f"expected {self.obs_dim}"
            )
        if a.size != self.action_dim:
            raise RingConfigError(
                f"ring {self.prefix!r}: action has {a.size} values, expected {self.action_dim}"
            )
        tail = np.array([reward, 1.0 if done else 0.0], dtype=np.float32)
        return np.concatenate([o, n, a, tail]).tobytes()

    def push_packed(self, blobs: Sequence[bytes]) -> int:
        """Append packed transitions; returns the index of the last one (-1 if none)."""
        if not blobs:
            return -1
        return int(self._push(keys=[self.count_key, self.data_key], args=[self.capacity, *blobs]))

    def push(self, batch: Transitions) -> int:
        """Append a batch of transitions atomically (one script call)."""
        blobs = [
            self.pack(
                batch.obs[i], batch.next_obs[i], batch.action[i], batch.reward[i], batch.done[i]
            )
            for i in range(len(batch.reward))
        ]
        return self.push_packed(blobs)

    def total(self) -> int:
        """Transitions ever pushed (the ring keeps the last ``capacity`` of them)."""
        value = self.client.get(self.count_key)
        return int(value) if value is not None else 0

    def size(self) -> int:
        """Transitions currently held."""
        return min(self.total(), self.capacity)

    def get(self, slots: np.ndarray) -> Transitions:
        """The transitions in the given slots (each in [0, size))."""
        raw: list[bytes | None] = self.client.hmget(  # type: ignore[assignment]
            self.data_key, [str(int(s)) for s in slots]
        )
        missing = [int(s) for s, blob in zip(slots, raw, strict=True) if blob is None]
        if missing:
            raise KeyError(f"ring {self.prefix!r}: slots {missing[:5]} are empty")
        flat = np.frombuffer(b"".join(b for b in raw if b is not None), dtype=np.float32).reshape(
            len(raw), self.width
        )
        d, a = self.obs_dim, self.action_dim
        return Transitions(
            obs=flat[:, :d].copy(),
            next_obs=flat[:, d : 2 * d].copy(),
            action=flat[:, 2 * d : 2 * d + a].copy(),
            reward=flat[:, 2 * d + a].copy(),
            done=flat[:, 2 * d + a + 1].copy(),
        )

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement."""
        size = self.size()
        if size == 0:
            raise ValueError(f"ring {self.prefix!r} is empty: nothing to sample")
        gen = rng if rng is not None else np.random.default_rng()
        return self.get(gen.integers(0, size, size=batch_size))

    def clear(self) -> None:
        """Drop every transition (the metadata stays)."""
        self.client.delete(self.count_key, self.data_key)
