"""GET /v1/ab: arms, shares and live per-arm counters from Redis; read-protected on request."""

from __future__ import annotations

from pathlib import Path

import redis

from features.graph.local import LocalGraphStore
from tests.serving.conftest import AUTH, make_client

AB = {
    "salt": "t",
    "arms": [
        {"name": "left", "policy": "popularity", "share": 0.5},
        {"name": "right", "policy": "popularity", "share": 0.5},
    ],
}


def test_live_view_counts_slates_users_feedback_and_reward(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, redis_cp, ab=AB) as api:
        empty = api.get("/v1/ab").json()
        assert empty["mode"] == "split"
        assert [(a["name"], a["share"], a["served_slates"]) for a in empty["arms"]] == [
            ("left", 0.5, 0),
            ("right", 0.5, 0),
        ]
        assert empty["arms"][0]["acceptance"] is None
        served = {}
        for i in range(20):
            body = api.get(f"/v1/users/u{i}/recommendations?k=2").json()
            served[f"u{i}"] = body
        api.get("/v1/users/u0/recommendations?k=2")  # a second slate for u0
        first = served["u0"]
        events = [
            {
                "event_id": "e1",
                "type": "rated",
                "rating": 5.0,
                "recommendation_id": first["recommendation_id"],
            },
            {
                "event_id": "e2",
                "type": "skipped",
                "recommendation_id": served["u1"]["recommendation_id"],
            },
            {"event_id": "e3", "type": "click", "recommendation_id": "no-such-slate"},
        ]
        assert api.post("/v1/feedback", json=events, headers=AUTH).status_code == 200
        api.post("/v1/feedback", json=events[:1], headers=AUTH)  # a repeat counts once
        view = {a["name"]: a for a in api.get("/v1/ab").json()["arms"]}
    assert sum(a["served_slates"] for a in view.values()) == 21
    assert sum(a["users"] for a in view.values()) == 20
    assert sum(a["feedback_events"] for a in view.values()) == 2  # the unknown slate is not
    arm0, arm1 = first["arm"], served["u1"]["arm"]
    assert view[arm0]["accepted_slates"] == 1
    assert view[arm0]["acceptance"] == 1 / view[arm0]["served_slates"]
    rewards = {arm0: 1.0, arm1: -0.1} if arm0 != arm1 else {arm0: 0.9}
    for arm, total in rewards.items():
        assert abs(view[arm]["mean_reward"] * view[arm]["served_slates"] - total) < 1e-9


def test_live_view_is_read_protected_when_reads_are(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    with make_client(tmp_path, store, redis_cp, ab=AB, protect_reads=True) as api:
        assert api.get("/v1/ab").status_code == 401
        assert api.get("/v1/ab", headers=AUTH).status_code == 200
