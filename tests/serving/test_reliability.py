"""Reliability: many concurrent feedback events, and Redis dying and coming back mid-stream."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from agent.buffers.hash_tag import FEEDBACK, RECLOG, tag
from features.graph.local import LocalGraphStore
from serving.app import create_app
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import RecLog
from tests.serving.conftest import AUTH, make_client, make_settings
from tests.serving.redis_server import any_redis_binary, redis_server

N_EVENTS = 10_000
MOVIES = [str(i) for i in range(1, 9)]


def _event(i: int) -> dict[str, Any]:
    return {"event_id": f"e{i}", "type": "click", "user": f"u{i % 97}", "movie": MOVIES[i % 8]}


@pytest.mark.slow
def test_ten_thousand_concurrent_events_stored_exactly_once(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    # every event once, 1,000 of them a second time, in shuffled requests of 1-10 events each
    ids = list(range(N_EVENTS)) + random.Random(1).sample(range(N_EVENTS), 1_000)
    random.Random(2).shuffle(ids)
    requests: list[list[dict[str, Any]]] = []
    pos = 0
    rng = random.Random(3)
    while pos < len(ids):
        size = rng.randint(1, 10)
        requests.append([_event(i) for i in ids[pos : pos + size]])
        pos += size
    with make_client(tmp_path, store, redis_cp) as api:

        def post(batch: list[dict[str, Any]]) -> int:
            res = api.post("/v1/feedback", json=batch, headers=AUTH)
            assert res.status_code == 200, res.text
            return int(res.json()["new"])

        with ThreadPoolExecutor(max_workers=16) as pool:
            new = sum(pool.map(post, requests))
    client, prefix = redis_cp
    assert new == N_EVENTS
    assert client.zcard(f"{tag(prefix, FEEDBACK)}:seen") == N_EVENTS
    assert client.xlen(f"{tag(prefix, FEEDBACK)}:events") == N_EVENTS
    stored = [
        e.event_id for e in RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60)).events()
    ]
    assert sorted(stored) == sorted(f"e{i}" for i in range(N_EVENTS))


def test_redis_outage_spools_feedback_and_replays_it(
    tmp_path: Path, store: LocalGraphStore
) -> None:
    with redis_server(tmp_path / "redis", binary=any_redis_binary()) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        settings = make_settings(
            tmp_path, "outage", redis_url=server.url, spool_replay_seconds=3600.0
        )  # the background replay stays out of the way; the test replays explicitly
        app = create_app(settings, store=store)
        with TestClient(app) as api:
            sent = 0

            def send(n: int, spooled: bool = False) -> list[dict[str, Any]]:
                nonlocal sent
                out = []
                for _ in range(n):
                    body = _event(sent)
                    res = api.post("/v1/feedback", json=body, headers=AUTH)
                    assert res.status_code == (202 if spooled else 200), res.text
                    assert res.json() == {"received": 1, "new": 1, "spooled": spooled}
                    out.append(body)
                    sent += 1
                return out

            send(50)
            server.stop()  # Redis dies mid-stream
            down = send(50, spooled=True)  # in the fsynced spool: 202
            api.post(
                "/v1/feedback", json=down[:10], headers=AUTH
            )  # retried deliveries, spooled again
            rec = api.get("/v1/users/fan/recommendations?k=3")
            assert rec.status_code == 200 and len(rec.json()["items"]) == 3
            assert rec.json()["logged"] is False  # served, degraded
            ready = api.get("/readyz").json()
            assert ready["status"] == "degraded" and ready["redis"] == "unreachable"
            assert "ConnectionError" in ready["reason"]  # the breaker is open, and says why
            assert "marquee_feedback_spooled 60.0" in api.get("/metrics").text
            assert "marquee_replay_buffer_size NaN" in api.get("/metrics").text

            server.start()  # Redis is back (same port, its AOF kept the first 50)
            assert client.zcard("{outage:feedback}:seen") == 50
            send(1, spooled=True)  # the breaker stays open until the background probe
            sink = app.state.services.sink
            assert sink.replay() == 51  # what the replay loop does: PING, close, replay
            send(49)
            assert client.zcard("{outage:feedback}:seen") == 150
            assert "marquee_feedback_spooled 0.0" in api.get("/metrics").text
            assert api.get("/v1/users/fan/recommendations?k=3").json()["logged"] is True
        fb = RedisFeedbackStore(client, "outage", RecLog(client, "outage", 60))
        ids = [e.event_id for e in fb.events()]
        assert sorted(ids) == sorted(f"e{i}" for i in range(150))  # none lost, none doubled
        client.close()


def test_open_breaker_serves_pages_and_slates_without_touching_redis(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    """While the breaker is open (a hung Redis), the user pages are served like the API's
    slates: at once and unlogged, instead of each waiting out the Redis timeout."""
    client, prefix = server_cp

    def logged() -> int:
        return sum(1 for _ in client.scan_iter(match=f"{tag(prefix, RECLOG)}:rec:*"))

    with make_client(tmp_path, store, server_cp) as api:
        assert api.get("/users/fan").status_code == 200 and logged() == 1
        api.app.state.services.breaker.trip(redis.TimeoutError("Timeout reading from socket"))  # type: ignore[attr-defined]
        assert api.get("/users/fan").status_code == 200
        assert api.get("/users/fan/cards?n=1").status_code == 200
        body = api.get("/v1/users/fan/recommendations").json()
        assert body["logged"] is False
        assert logged() == 1


def test_webhook_deliveries_while_the_breaker_is_open_are_spooled_with_202(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    """Like /v1/feedback: with Redis hung the delivery goes to the fsynced spool at once, the
    answer says so (202, spooled), and the event reaches Redis once the breaker closes."""
    from tests.serving.plex.test_webhook import payload

    client, prefix = server_cp
    body = payload("media.scrobble", viewOffset=4_500_000, lastViewedAt=1_700_000_000)
    files = {"payload": (None, json.dumps(body))}
    with make_client(tmp_path, store, server_cp) as api:
        services = api.app.state.services  # type: ignore[attr-defined]
        services.breaker.trip(redis.TimeoutError("Timeout reading from socket"))
        res = api.post("/v1/plex/webhook", files=files, headers=AUTH)
        assert res.status_code == 202, res.text
        assert res.json() == {"event": "media.scrobble", "events": 1, "stored": 1, "spooled": True}
        assert services.sink.pending() == 1
        assert services.sink.replay() == 1  # the background loop's probe + replay
        assert services.sink.pending() == 0
        assert api.post("/v1/plex/webhook", files=files, headers=AUTH).json()["stored"] == 0
    assert client.zcard(f"{tag(prefix, FEEDBACK)}:seen") == 1
