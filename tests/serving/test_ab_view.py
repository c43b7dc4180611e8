"""GET /v1/ab: arms, shares and live per-arm counters from Redis; read-protected on request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import redis

from features.graph.local import LocalGraphStore
from serving.ab import INTERLEAVE
from serving.ab_interleaving import build_interleaving_report
from serving.ab_report import read_feedback, read_served
from serving.reclog import RecLog
from serving.recommender import RecommendationResult, ScoredItem
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


class _Ranked:
    """An arm's recommender that always ranks the same graph movies (best first)."""

    def __init__(self, movies: list[str], version: str) -> None:
        self.movies, self.policy_version = movies, version

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        items = [ScoredItem(m, 1.0 - i / 10, 0.5) for i, m in enumerate(self.movies[:k])]
        return RecommendationResult(items, self.policy_version, state=np.zeros(2, np.float32))

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        return state


RANKED = {
    "a": _Ranked(["1", "2", "3", "4"], "ddpg-v6"),
    "b": _Ranked(["5", "6", "3", "7"], "ddpg-v7"),
}
INTERLEAVED = {"mode": "interleave", "arms": [{"name": n, "policy": n} for n in RANKED]}


def test_interleave_mode_serves_both_arms_in_one_slate_and_credits_the_chosen_team(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = redis_cp
    factory = lambda arm, _store: RANKED[arm.name]  # noqa: E731
    with make_client(tmp_path, store, redis_cp, factory, ab=INTERLEAVED) as api:
        slates = [api.get(f"/v1/users/u{i}/recommendations?k=4").json() for i in range(3)]
        first = slates[0]
        assert first["arm"] == INTERLEAVE and first["policy_version"] == "ddpg-v6|ddpg-v7"
        teams = [item["arm"] for item in first["items"]]
        assert sorted(teams) == ["a", "a", "b", "b"]
        for item in first["items"]:  # each item remembers its team and the team's version
            assert item["movie"] in RANKED[item["arm"]].movies
            assert item["policy_version"] == RANKED[item["arm"]].policy_version
        logged = RecLog(client, prefix, 3600).get(first["recommendation_id"])
        assert logged is not None and list(logged.teams) == teams
        assert logged.state is None  # an interleaved slate makes no training transition
        chosen_b = next(i["movie"] for i in first["items"] if i["arm"] == "b")
        passed_a = next(i["movie"] for i in first["items"] if i["arm"] == "a")
        rid = first["recommendation_id"]
        events = [
            {"event_id": "e1", "type": "rated", "rating": 5.0, "recommendation_id": rid,
             "movie": chosen_b},
            {"event_id": "e2", "type": "skipped", "recommendation_id": rid, "movie": passed_a},
        ]  # fmt: skip
        assert api.post("/v1/feedback", json=events, headers=AUTH).status_code == 200
        view = api.get("/v1/ab").json()
    assert view["mode"] == "interleave"
    arms = {a["name"]: a for a in view["arms"]}
    assert [arms[n]["served_slates"] for n in ("a", "b")] == [3, 3]  # every slate shows both
    assert [arms[n]["users"] for n in ("a", "b")] == [3, 3]
    assert (arms["b"]["feedback_events"], arms["b"]["accepted_slates"]) == (1, 1)
    assert (arms["a"]["feedback_events"], arms["a"]["accepted_slates"]) == (1, 0)
    assert abs(arms["b"]["mean_reward"] * 3 - 1.0) < 1e-9
    report = build_interleaving_report(
        read_served(client, prefix), read_feedback(client, prefix), ("a", "b")
    )
    assert (report.slates, report.users, report.users_with_choices) == (3, 3, 1)
    assert [(t.arm, t.versions, t.credited_choices) for t in report.teams] == [
        ("a", ["ddpg-v6"], 0),
        ("b", ["ddpg-v7"], 1),
    ]
    assert report.verdict == "inconclusive"  # one user with a choice says too little


def test_an_arm_against_another_interleaves_only_its_own_users(
    tmp_path: Path, store: LocalGraphStore, redis_cp: tuple[redis.Redis, str]
) -> None:
    """Split mode, "b" against "a": b's users get team-draft slates of both (no training
    transition), a's users plain slates of a (with their state)."""
    client, prefix = redis_cp
    factory = lambda arm, _store: RANKED[arm.name]  # noqa: E731
    ab = {
        "salt": "t",
        "arms": [
            {"name": "a", "policy": "a", "share": 0.5},
            {"name": "b", "policy": "b", "share": 0.5, "against": "a"},
        ],
    }
    with make_client(tmp_path, store, redis_cp, factory, ab=ab) as api:
        slates = [api.get(f"/v1/users/u{i}/recommendations?k=4").json() for i in range(12)]
    log = RecLog(client, prefix, 3600)
    by_arm = {s["arm"] for s in slates}
    assert by_arm == {"a", "b"}
    for body in slates:
        logged = log.get(body["recommendation_id"])
        assert logged is not None
        if body["arm"] == "a":
            assert body["policy_version"] == "ddpg-v6"
            assert [i["movie"] for i in body["items"]] == RANKED["a"].movies
            assert logged.teams == () and logged.state is not None
        else:
            assert body["policy_version"] == "ddpg-v6|ddpg-v7"
            assert sorted(i["arm"] for i in body["items"]) == ["a", "a", "b", "b"]
            assert list(logged.teams) == [i["arm"] for i in body["items"]]
            assert logged.state is None  # an interleaved slate makes no training transition
