"""Data stored under the key names of versions before Redis Cluster support moves to the
hash-tagged names when the service opens Redis, keeping values and TTLs, never overwriting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import redis

from agent.buffers.hash_tag import FEEDBACK, RECLOG, tag
from agent.buffers.redis_ring import RedisRing, ring_prefix
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import RecLog
from serving.redis_migration import migrate_legacy_keys
from serving.wiring import open_redis
from tests.serving.conftest import make_settings


def _old_data(client: redis.Redis, p: str) -> None:
    """What an older version left: a seen id, a stream event, a ring, one logged slate."""
    client.zadd(f"{p}:feedback:seen", {"old-1": 1})
    client.sadd(f"{p}:feedback:ids", "older-0")
    client.xadd(f"{p}:feedback:events", {"id": "old-1", "e": "{}"})
    client.hset(f"{p}:buffer:meta", mapping={"obs_dim": 2, "action_dim": 1, "capacity": 10})
    client.set(f"{p}:buffer:count", 1)
    blob = np.arange(7, dtype=np.float32).tobytes()  # obs 2, next 2, action 1, reward, done
    client.hset(f"{p}:buffer:data", "0", blob)
    client.hset(
        f"{p}:rec:r1",
        mapping={"user": "u", "arm": "a", "version": "v", "slate": '["m"]', "t": "5.0"},
    )
    client.expire(f"{p}:rec:r1", 3600)
    client.lpush(f"{p}:recs:u", "r1")
    client.hset(f"{p}:recidx:u", "m", "r1@5.0")
    client.hset(f"{p}:recslates:u", "r1", '["m"]')
    client.zadd(f"{p}:reclog:order", {"r1": 5.0})
    client.hincrby(f"{p}:ab:served", "a", 1)


def test_old_keys_move_to_tagged_names(tmp_path: Path, redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    _old_data(client, prefix)
    handle = open_redis(make_settings(tmp_path, prefix), client)  # what the service does
    assert handle.client is client
    assert not list(client.scan_iter(match=f"{prefix}:*"))  # nothing left under old names
    fb = RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60))
    assert fb.count() == 2 and fb.stream_length() == 1
    ring = RedisRing(client, ring_prefix(prefix), obs_dim=2, action_dim=1, capacity=10)
    assert ring.total() == 1 and ring.get(np.array([0])).action[0, 0] == 4.0
    log = RecLog(client, prefix, 60)
    found = log.find("u", "m")
    assert found is not None and found.id == "r1" and log.count() == 1
    assert 0 < client.ttl(f"{tag(prefix, RECLOG)}:rec:r1") <= 3600  # type: ignore[operator]
    assert client.hget(f"{tag(prefix, RECLOG)}:ab:served", "a") == b"1"
    again = migrate_legacy_keys(client, prefix)  # a second start: nothing to do
    assert (again.moved, again.kept) == (0, 0)


def test_a_taken_new_name_is_never_overwritten(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    _old_data(client, prefix)
    new_seen = f"{tag(prefix, FEEDBACK)}:seen"
    client.zadd(new_seen, {"new-1": 2})  # a newer process wrote here first
    done = migrate_legacy_keys(client, prefix)
    assert done.kept == 1 and done.moved == 11  # 12 old keys
    assert client.zrange(new_seen, 0, -1) == [b"new-1"]
    assert client.zrange(f"{prefix}:feedback:seen", 0, -1) == [b"old-1"]  # left, not lost
