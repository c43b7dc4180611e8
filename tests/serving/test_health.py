"""Health, readiness, metrics and the web page."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from features.graph.local import LocalGraphStore
from serving.app import create_app
from tests.serving.conftest import AUTH, make_settings


def test_health_and_ready(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "redis": "ok",
        "arms": {"default": "popularity"},  # the default arm's champion is not trained yet
        "policies": {"champion": "no policy registry yet (nothing trained): serving popularity"},
        "worker": os.getpid(),  # the process that answered (TestClient: this one)
    }


def test_metrics_count_requests_feedback_and_buffer(api: TestClient) -> None:
    api.get("/v1/users/fan/recommendations?k=2")
    event = {"event_id": "m1", "type": "click", "user": "fan", "movie": "3"}
    assert api.post("/v1/feedback", json=event, headers=AUTH).status_code == 200
    text = api.get("/metrics").text
    assert 'marquee_recommendations_served_total{arm="default"} 1.0' in text
    assert 'marquee_feedback_events_total{type="click"} 1.0' in text
    assert (
        'marquee_http_request_seconds_count{method="GET",'
        'route="/v1/users/{user}/recommendations",status="200"} 1.0'
    ) in text
    assert "marquee_replay_buffer_size 0.0" in text
    assert "marquee_feedback_spooled 0.0" in text


def test_web_page(api: TestClient) -> None:
    res = api.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert 'href="/users/fan"' in res.text  # the pick-a-user page (tests/serving/web)


def test_embedded_redis_is_the_default(tmp_path: Path, store: LocalGraphStore) -> None:
    """No MARQUEE_REDIS_URL: the app starts its own Redis, with its data in the home folder."""
    settings = make_settings(tmp_path, "emb", redis_url=None)
    with TestClient(create_app(settings, store=store)) as api:
        assert api.get("/readyz").json()["redis"] == "ok"
        event = {"event_id": "x1", "type": "play", "user": "fan", "movie": "3"}
        assert api.post("/v1/feedback", json=event, headers=AUTH).json()["new"] == 1
    assert (tmp_path / "home" / "buffer" / "redis.db").exists()  # saved on shutdown
    with TestClient(create_app(settings, store=store)) as api:  # and loaded again
        assert api.post("/v1/feedback", json=event, headers=AUTH).json()["new"] == 0
