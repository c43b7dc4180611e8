"""Feedback joins the user's history in the graph (serving.feedback.graph_history): what each
event writes, and, in the running app with a trained policy, that a movie rated through
``POST /v1/feedback`` or a Plex webhook is not offered again and the user's state changes;
duplicates and slate-level events change nothing; a store that refuses the write never fails
the request; events spooled while Redis is down are written too."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import UpsertReport
from serving.app import create_app
from serving.feedback.graph_history import FeedbackHistory
from serving.reclog import RecLog
from serving.schemas.feedback import FeedbackEvent
from tests.serving.conftest import AUTH, build_store, make_client, make_settings
from tests.serving.policy_home import TrainedHome, trained_home

SECRET = "hook-secret-for-graph-tests"
WHEN = datetime(2024, 5, 1, tzinfo=UTC)


def _event(n: int, kind: str, user: str | None = "fan", movie: str | None = "3", **kw: Any) -> Any:
    return FeedbackEvent.model_validate(
        {"event_id": f"e{n}", "type": kind, "user": user, "movie": movie, "timestamp": WHEN, **kw}
    )


def _edges(store: LocalGraphStore, user: str) -> dict[str, set[str]]:
    return {
        kind.value: {n.key for n in store.neighbours(VertexKind.USER, user, kind, "out")}
        for kind in (EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)
    }


# "fan" rated 1 and 2 in the fixture graph; 3 is new to them
@pytest.mark.parametrize(
    ("event", "kind", "attrs"),
    [
        (_event(1, "rated", rating=2.5), "rated", {"rating": 2.5}),
        (_event(2, "watched", completion=40.0), "watched", {"completion": 40.0}),
        (_event(3, "not_interested"), "not_interested", {}),
        (_event(4, "click"), "watched", {"completion": 0.0}),
        (_event(5, "play"), "watched", {"completion": 0.0}),
        (_event(6, "skipped"), "not_interested", {}),
    ],
)
def test_each_event_kind_writes_its_edge(event: FeedbackEvent, kind: str, attrs: dict) -> None:
    store = build_store()
    reported: list[list[str]] = []
    history = FeedbackHistory(store, on_changed=lambda users: reported.append(list(users)))
    assert history.apply([event]) == ["fan"] and reported == [["fan"]]
    (edge,) = [
        n for n in store.neighbours(VertexKind.USER, "fan", EdgeKind(kind), "out") if n.key == "3"
    ]
    assert edge.attrs["timestamp"] == int(WHEN.timestamp())
    for name, value in attrs.items():
        assert edge.attrs[name] == pytest.approx(value)


@pytest.mark.parametrize(
    "event",
    [
        _event(1, "click", movie="1"),  # only marks seen, and "fan" rated it already
        _event(2, "skipped", movie="2"),
        _event(3, "click", movie=None, recommendation_id="r1"),  # the slate as a whole
        _event(4, "rated", movie="not-in-graph", rating=4.0),  # a Plex item never synced
        _event(5, "rated", user=None, recommendation_id="gone", rating=4.0),  # user unknown
    ],
)
def test_events_that_change_no_history_write_nothing(event: FeedbackEvent) -> None:
    store = build_store()
    before = store.revision()
    history = FeedbackHistory(store, on_changed=pytest.fail, user_of=lambda rec_id: None)
    assert history.apply([event]) == []
    assert store.revision() is before


def test_one_upsert_per_call_a_new_user_and_a_user_from_the_slate_log() -> None:
    store = build_store()
    calls: list[GraphBatch] = []
    upsert = store.upsert

    def counting(batch: GraphBatch) -> UpsertReport:
        calls.append(batch)
        return upsert(batch)

    store.upsert = counting  # type: ignore[method-assign]
    history = FeedbackHistory(store, user_of={"r7": "u2"}.get)
    events = [
        _event(1, "rated", user="newcomer", movie="4", rating=5.0),
        _event(2, "watched", user="newcomer", movie="5", completion=95.0),
        _event(3, "rated", user=None, movie="8", recommendation_id="r7", rating=1.0),
        _event(4, "rated", movie="4", rating=4.0),
    ]
    assert history.apply(events) == ["fan", "newcomer", "u2"]
    assert len(calls) == 1
    assert store.vertex(VertexKind.USER, "newcomer") == {"key": "newcomer", "name": "newcomer"}
    assert _edges(store, "newcomer") == {"rated": {"4"}, "watched": {"5"}, "not_interested": set()}
    assert "8" in _edges(store, "u2")["rated"] and "4" in _edges(store, "fan")["rated"]
    counts = store.counts()
    calls.clear()
    assert history.apply(events[1:2]) == []  # the same watch again: nothing changes
    assert store.counts() == counts and len(calls) == 1


class RefusingStore(LocalGraphStore):
    """A graph whose folder cannot be written (a read-only mount, a full disk)."""

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        raise PermissionError(13, "Permission denied", "/home/graph/data-x")


def test_a_store_that_refuses_the_write_is_logged_and_the_feedback_still_stored(
    tmp_path: Path, server_cp: tuple[redis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = RefusingStore()
    store._state = build_store().state  # the fixture graph, behind a refusing upsert
    with make_client(tmp_path, store, server_cp) as api, caplog.at_level(logging.WARNING):
        event = {"event_id": "x1", "type": "rated", "user": "fan", "movie": "3", "rating": 4.0}
        res = api.post("/v1/feedback", json=event, headers=AUTH)
    assert res.status_code == 200 and res.json()["new"] == 1
    assert "not written to the graph (PermissionError" in caplog.text


def test_events_spooled_while_redis_is_down_are_written(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, server_cp) as api:
        services = api.app.state.services  # type: ignore[attr-defined]
        services.breaker.trip(redis.ConnectionError("down for the test"))
        event = {"event_id": "s1", "type": "rated", "user": "fan", "movie": "3", "rating": 4.0}
        res = api.post("/v1/feedback", json=event, headers=AUTH)
        assert res.status_code == 202 and res.json()["spooled"]
    assert "3" in _edges(store, "fan")["rated"]


# --- the running app with a trained policy -------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return trained_home(tmp_path_factory)


def _app(tmp_path: Path, trained: TrainedHome, cp: tuple[redis.Redis, str]) -> Any:
    client, prefix = cp
    trained.store.save(tmp_path / "graph")
    store = LocalGraphStore(tmp_path / "graph")  # a copy, memory-mapped: the tests write to it
    settings = make_settings(
        tmp_path, prefix, home=trained.home.root, temperature=0.0, plex_webhook_secret=SECRET
    )
    return create_app(settings, store=store, redis_client=client), store


def _wait_recomputed(api: TestClient, at_least: int) -> None:
    """Until the precomputer has recomputed ``at_least`` changed users and has none waiting."""
    deadline = time.monotonic() + 120
    while True:
        status = api.get("/readyz").json().get("precompute") or {}
        if status.get("recomputed", 0) >= at_least and status.get("changes_waiting") == 0:
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def _slate(api: TestClient, user: str) -> dict[str, Any]:
    body = api.get(f"/v1/users/{user}/recommendations?k=10").json()
    assert body["items"], body
    return body  # type: ignore[no-any-return]


def _state(client: redis.Redis, prefix: str, body: dict[str, Any]) -> np.ndarray:
    logged = RecLog(client, prefix, 60).get(body["recommendation_id"])
    assert logged is not None and logged.state is not None
    return logged.state


def test_a_rating_posted_to_the_api_is_not_offered_again_and_changes_the_state(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    app, store = _app(tmp_path, trained, server_cp)
    user = str(trained.world.catalog.users[2])
    with TestClient(app) as api:
        first = _slate(api, user)
        assert not first["cold_start"]
        movie = first["items"][0]["movie"]
        event = {
            "event_id": "loop-1",
            "type": "rated",
            "rating": 5.0,
            "recommendation_id": first["recommendation_id"],
            "user": user,
            "movie": movie,
        }
        assert api.post("/v1/feedback", json=event, headers=AUTH).json()["new"] == 1
        assert movie in _edges(store, user)["rated"]
        _wait_recomputed(api, 1)  # the user was reported to the precomputer
        after = _slate(api, user)
        assert movie not in [item["movie"] for item in after["items"]]
        assert not np.array_equal(_state(client, prefix, first), _state(client, prefix, after))

        # the same event again is a duplicate: nothing is written, nobody recomputed
        revision = store.revision()
        recomputed = api.get("/readyz").json()["precompute"]["recomputed"]
        assert api.post("/v1/feedback", json=event, headers=AUTH).json()["new"] == 0
        # an event on the slate as a whole changes no history
        slate_event = {
            "event_id": "loop-2",
            "type": "click",
            "recommendation_id": first["recommendation_id"],
        }
        assert api.post("/v1/feedback", json=slate_event, headers=AUTH).json()["new"] == 1
        assert store.revision() is revision
        status = api.get("/readyz").json()["precompute"]
        assert status["recomputed"] == recomputed and status["changes_waiting"] == 0
        again = _slate(api, user)
        np.testing.assert_array_equal(_state(client, prefix, after), _state(client, prefix, again))


def _plex_rate(account: str, store: LocalGraphStore, movie: str, stars: float) -> dict[str, Any]:
    meta = store.vertex(VertexKind.MOVIE, movie) or {}
    return {
        "event": "media.rate",
        "user": True,
        "owner": False,
        "rating": round(stars * 2),
        "Account": {"id": 7, "title": account},
        "Metadata": {
            "librarySectionType": "movie",
            "type": "movie",
            "ratingKey": f"rk-{movie}",
            "title": meta["title"],
            "year": meta["year"],
            "lastRatedAt": 1_700_000_000,
        },
    }


def test_a_plex_webhook_rating_is_not_offered_again(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    app, store = _app(tmp_path, trained, server_cp)
    user = "plex-alice"  # a Plex account the graph does not know yet
    with TestClient(app) as api:
        first = _slate(api, user)
        movie = first["items"][0]["movie"]
        payload = json.dumps(_plex_rate("Alice", store, movie, 4.5))

        def deliver() -> dict[str, Any]:
            res = api.post(
                "/v1/plex/webhook", params={"secret": SECRET}, files={"payload": (None, payload)}
            )
            assert res.status_code == 200, res.text
            return res.json()  # type: ignore[no-any-return]

        assert deliver()["stored"] == 1
        assert store.vertex(VertexKind.USER, user) is not None  # made, as the card actions do
        assert _edges(store, user)["rated"] == {movie}
        assert movie not in [item["movie"] for item in _slate(api, user)["items"]]
        revision = store.revision()
        assert deliver()["stored"] == 0  # Plex redelivers: stored once, written once
        assert store.revision() is revision


def test_ratings_join_the_history_in_arrival_order() -> None:
    """As the learner's s' has it: each new rating is the user's latest, even when it came in
    the same second as the one before, or carries an older time."""
    store = build_store()  # "fan" rated 1 at t=1000 and 2 at t=1001
    history = FeedbackHistory(store)
    old = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)  # t=300, before both
    events = [
        _event(1, "rated", movie="4", rating=4.0),
        _event(2, "rated", movie="3", rating=2.0),  # the same second as the one before
        _event(3, "rated", movie="5", rating=3.0, timestamp=old),
    ]
    history.apply(events)
    found = store.user_movies("fan")
    order = [str(m) for _, m in sorted(zip(found.timestamps, found.rated, strict=True))]
    assert order == ["1", "2", "4", "3", "5"]
    when = int(WHEN.timestamp())
    assert sorted(found.timestamps)[2:] == [when, when + 1, when + 2]
