"""POST /v1/feedback: validation, auth, idempotency, and the join into replay transitions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from agent.buffers.hash_tag import FEEDBACK, tag
from agent.buffers.redis_ring import RedisRing, ring_prefix
from features.graph.local import LocalGraphStore
from features.graph.store import GraphStore
from serving.ab import Arm
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import RecLog
from serving.recommender import RecommendationResult, Recommender, ScoredItem
from tests.serving.conftest import AUTH, TOKEN, make_client

GOOD = {"event_id": "ev-1", "type": "rated", "user": "fan", "movie": "3", "rating": 4.5}


def _stored(cp: tuple[redis.Redis, str]) -> int:
    client, prefix = cp
    return int(client.zcard(f"{tag(prefix, FEEDBACK)}:seen"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({**GOOD, "type": "loved"}, ["body", "type"], "Input should be 'click', 'play', 'watched'"),
        ({**GOOD, "rating": 7}, ["body", "rating"], "Input should be less than or equal to 5"),
        ({**GOOD, "rating": 0}, ["body", "rating"], "Input should be greater than or equal to 0.5"),
        ({**GOOD, "rating": 3.3}, ["body"], "rating 3.3 is not a multiple of 0.5"),
        ({**GOOD, "rating": None}, ["body"], "a 'rated' event needs a rating from 0.5 to 5"),
        ({**GOOD, "movie": "999999"}, ["body", "movie"], "unknown movie '999999': no such movie"),
        ({**GOOD, "colour": "red"}, ["body", "colour"], "Extra inputs are not permitted"),
        (
            {k: v for k, v in GOOD.items() if k != "event_id"},
            ["body", "event_id"],
            "Field required",
        ),
        ({**GOOD, "event_id": ""}, ["body", "event_id"], "String should have at least 1 character"),
        (
            {"event_id": "x", "type": "click", "user": "fan"},
            ["body"],
            "feedback needs a recommendation_id or both user and movie",
        ),
        (
            {"event_id": "x", "type": "watched", "user": "fan", "movie": "3"},
            ["body"],
            "a 'watched' event needs completion",
        ),
        (
            {"event_id": "x", "type": "watched", "user": "fan", "movie": "3", "completion": 120},
            ["body", "completion"],
            "Input should be less than or equal to 100",
        ),
        (
            [GOOD, {**GOOD, "event_id": "ev-2", "movie": "nope"}],
            ["body", 1, "movie"],
            "unknown movie 'nope'",
        ),
        ([], ["body"], "the list of events is empty"),
        (
            "just a string",
            ["body"],
            "body must be a feedback event (a JSON object) or a list of them",
        ),
        ([GOOD] * 1001, ["body"], "at most 1000 events per request, got 1001"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    api: TestClient, server_cp: tuple[redis.Redis, str], body: Any, loc: list[Any], message: str
) -> None:
    res = api.post("/v1/feedback", json=body, headers=AUTH)
    assert res.status_code == 422, res.text
    details = res.json()["detail"]
    assert any(d["loc"] == loc and message in d["msg"] for d in details), details
    assert _stored(server_cp) == 0  # all or nothing: the valid event of a bad batch is not kept


def test_malformed_json_is_refused(api: TestClient) -> None:
    res = api.post(
        "/v1/feedback",
        content=b'{"event_id": ',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["msg"].startswith("body is not valid JSON")


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "missing bearer token"),
        ({"Authorization": "Basic abc"}, 401, "missing bearer token"),
        ({"Authorization": "Bearer wrong-token"}, 401, "invalid bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401, "invalid bearer token"),
        ({"Authorization": f"bearer {TOKEN}"}, 200, ""),
    ],
)
def test_writes_need_the_token(
    api: TestClient,
    server_cp: tuple[redis.Redis, str],
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    res = api.post("/v1/feedback", json=GOOD, headers=headers)
    assert res.status_code == status, res.text
    if status != 200:
        assert message in res.json()["detail"]
        assert TOKEN not in res.text and "wrong-token" not in res.text
        assert _stored(server_cp) == 0


def test_writes_refused_without_a_configured_token(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, server_cp, api_token=None) as api:
        res = api.post("/v1/feedback", json=GOOD, headers=AUTH)
    assert res.status_code == 403
    assert "none is configured (MARQUEE_API_TOKEN)" in res.json()["detail"]


def test_same_event_twice_is_stored_once(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, redis_cp) as api:
        first = api.post("/v1/feedback", json=GOOD, headers=AUTH).json()
        again = api.post(
            "/v1/feedback", json=[GOOD, GOOD, {**GOOD, "event_id": "ev-2"}], headers=AUTH
        )
    assert first == {"received": 1, "new": 1, "spooled": False}
    assert again.json() == {"received": 3, "new": 1, "spooled": False}
    assert _stored(redis_cp) == 2
    client, prefix = redis_cp
    fb = RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60))
    assert [e.event_id for e in fb.events()] == ["ev-1", "ev-2"]
    assert next(iter(fb.events())).rating == 4.5


class StatefulRecommender:
    """Stands in for the DDPG recommender: a state per user, a fixed action, and s' = s + the
    rating for a rated movie, s + 1 for a movie only seen, s for no movie."""

    policy_version = "test-v1"

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        items = [
            ScoredItem(movie=m, score=1.0 / (i + 1), propensity=0.5)
            for i, m in enumerate(["3", "6", "7"][:k])
        ]
        return RecommendationResult(
            items=items,
            policy_version=self.policy_version,
            state=np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
            action=np.array([0.5, -0.5], dtype=np.float32),
        )

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        if movie is None:
            return state
        return state + (rating if rating is not None else 1.0)


def _stateful(arm: Arm, store: GraphStore) -> Recommender:
    return StatefulRecommender()


def test_feedback_becomes_transitions_once(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, redis_cp, factory=_stateful) as api:
        rec = api.get("/v1/users/fan/recommendations?k=3").json()
        rid = rec["recommendation_id"]
        events = [
            {
                "event_id": "t1",
                "type": "rated",
                "recommendation_id": rid,
                "movie": "6",
                "rating": 5,
            },
            {
                "event_id": "t2",
                "type": "not_interested",
                "user": "fan",
                "movie": "7",
            },  # matched by user
            {"event_id": "t3", "type": "skipped", "recommendation_id": rid},  # the slate as a whole
            {
                "event_id": "t4",
                "type": "click",
                "recommendation_id": rid,
                "movie": "1",
            },  # not shown
            {
                "event_id": "t5",
                "type": "click",
                "recommendation_id": "expired-or-unknown",
                "movie": "3",
            },
            {
                "event_id": "t6",
                "type": "rated",
                "user": "fan",
                "movie": "3",
                "rating": 4,
                "timestamp": "2020-01-01T00:00:00Z",
            },  # happened before the slate was served: not a reaction to it
        ]
        assert api.post("/v1/feedback", json=events, headers=AUTH).json() == {
            "received": 6,
            "new": 6,
            "spooled": False,
        }
        assert api.post("/v1/feedback", json=events, headers=AUTH).json() == {
            "received": 6,
            "new": 0,
            "spooled": False,
        }
        assert "marquee_replay_buffer_size 3.0" in api.get("/metrics").text
    client, prefix = redis_cp
    ring = RedisRing(client, ring_prefix(prefix), obs_dim=4, action_dim=2, capacity=100_000)
    assert ring.total() == 3  # t1, t2, t3; the repeat added nothing
    got = ring.get(np.arange(3))
    np.testing.assert_array_equal(got.obs, np.tile([1, 2, 3, 4], (3, 1)))
    # t1 rated 5 (the rating reaches s'), t2 dismissed (seen), t3 the slate as a whole
    np.testing.assert_array_equal(got.next_obs, [[6, 7, 8, 9], [2, 3, 4, 5], [1, 2, 3, 4]])
    np.testing.assert_array_equal(got.action, np.tile([0.5, -0.5], (3, 1)))
    np.testing.assert_allclose(got.reward, [1.0, -1.0, -0.1])
    np.testing.assert_array_equal(got.done, [0, 0, 0])
