"""Feedback's graph writes off the request (serving.feedback.graph_writer): a burst becomes one
upsert after the delay, in arrival order; flush and close write what is queued; and in the
running app a rating posted with a delay set answers before the graph has it and is not offered
again once written."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import UpsertReport
from serving.app import create_app
from serving.feedback.graph_writer import BackgroundHistory
from serving.schemas.feedback import FeedbackEvent
from tests.serving.conftest import AUTH, build_store, make_settings
from tests.serving.policy_home import TrainedHome, trained_home

WHEN = datetime(2024, 5, 1, tzinfo=UTC)


def _rating(n: int, movie: str, stars: float, user: str = "fan") -> FeedbackEvent:
    return FeedbackEvent.model_validate(
        {
            "event_id": f"e{n}",
            "type": "rated",
            "user": user,
            "movie": movie,
            "rating": stars,
            "timestamp": WHEN,
        }
    )


def _counting(
    store: LocalGraphStore, monkeypatch: pytest.MonkeyPatch, fail_first: bool = False
) -> list[int]:
    """Count ``store``'s upserts (the first refused when ``fail_first``)."""
    calls: list[int] = []
    original = store.upsert

    def upsert(batch: GraphBatch) -> UpsertReport:
        calls.append(1)
        if fail_first and len(calls) == 1:
            raise OSError("disk full")
        return original(batch)

    monkeypatch.setattr(store, "upsert", upsert)
    return calls


def _rated(store: LocalGraphStore, user: str = "fan") -> dict[str, float]:
    return {
        n.key: float(n.attrs["rating"])  # type: ignore[arg-type]
        for n in store.neighbours(VertexKind.USER, user, EdgeKind.RATED, "out")
    }


def test_a_burst_is_one_upsert_after_the_delay_in_arrival_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = build_store()
    upserts = _counting(store, monkeypatch)
    reported: list[list[str]] = []
    history = BackgroundHistory(store, lambda users: reported.append(list(users)), delay=0.3)
    try:
        assert history.apply([_rating(1, "3", 2.0)]) == []  # queued: no users yet
        history.apply_new([_rating(2, "3", 4.5), _rating(3, "4", 1.0)], [True, True])
        assert "3" not in _rated(store) and history.pending() > 0  # not written yet
        assert history.flush(timeout=30)
        assert len(upserts) == 1 and reported == [["fan"]]
        rated = _rated(store)
        assert rated["3"] == 4.5 and rated["4"] == 1.0  # the later rating of "3" won
    finally:
        history.close()


def test_close_writes_what_is_queued_and_refuses_more() -> None:
    store = build_store()
    history = BackgroundHistory(store, delay=60.0)  # close must not wait the delay out
    history.apply([_rating(1, "3", 3.0)])
    started = time.monotonic()
    history.close()
    assert time.monotonic() - started < 30 and _rated(store)["3"] == 3.0
    with pytest.raises(RuntimeError, match="closed"):
        history.apply([_rating(2, "4", 3.0)])


def test_a_refusing_store_does_not_stop_the_writer(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = build_store()
    _counting(store, monkeypatch, fail_first=True)
    history = BackgroundHistory(store, delay=0.0)
    try:
        history.apply([_rating(1, "3", 3.0)])
        assert history.flush(timeout=30) and "3" not in _rated(store)
        history.apply([_rating(2, "4", 3.5)])
        assert history.flush(timeout=30) and _rated(store)["4"] == 3.5
    finally:
        history.close()
    assert "not written to the graph" in caplog.text


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay"):
        BackgroundHistory(build_store(), delay=-1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return trained_home(tmp_path_factory)


def test_the_app_answers_before_the_write_and_the_movie_goes_once_written(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    trained.store.save(tmp_path / "graph")
    store = LocalGraphStore(tmp_path / "graph")
    settings = make_settings(
        tmp_path,
        prefix,
        home=trained.home.root,
        temperature=0.0,
        feedback_graph_delay_seconds=30.0,
    )
    user = str(trained.world.catalog.users[2])
    with TestClient(create_app(settings, store=store, redis_client=client)) as api:
        first: dict[str, Any] = api.get(f"/v1/users/{user}/recommendations?k=10").json()
        movie = first["items"][0]["movie"]
        event = {
            "event_id": "bg-1",
            "type": "rated",
            "rating": 5.0,
            "user": user,
            "movie": movie,
            "recommendation_id": first["recommendation_id"],
        }
        assert api.post("/v1/feedback", json=event, headers=AUTH).json()["new"] == 1
        assert movie not in _rated(store, user)  # answered; the write waits its delay
        history = api.app.state.services.history  # type: ignore[attr-defined]
        assert isinstance(history, BackgroundHistory) and history.flush(timeout=60)
        assert movie in _rated(store, user)
        deadline = time.monotonic() + 120
        while True:  # the precomputer recomputes the reported user
            items = api.get(f"/v1/users/{user}/recommendations?k=10").json()["items"]
            if movie not in [i["movie"] for i in items]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
