"""The service's precomputed user states (serving.precompute): the lifespan's background task
warms every known user, a known user's request is a cache hit, a card action's change is
recomputed in the background before the user's next request, and what is served is the state
of the graph as it is (never staler)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from features.graph.local import LocalGraphStore
from features.precompute import Precomputer
from features.ranker import Ranker
from serving.app import create_app
from serving.reclog import RecLog
from tests.serving.conftest import AUTH, make_settings
from tests.serving.policy_home import TrainedHome, trained_home


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return trained_home(tmp_path_factory)


def _wait(api: TestClient, done: object, what: str) -> dict[str, object]:
    """Poll /readyz until ``done(precompute status)``; a deadline only against hanging."""
    deadline = time.monotonic() + 120
    while True:
        status = api.get("/readyz").json().get("precompute")
        if status is not None and done(status):  # type: ignore[operator]
            return status  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{what}: {status}"
        time.sleep(0.05)


def test_known_users_are_served_from_states_computed_ahead(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    trained.store.save(tmp_path / "graph")
    store = LocalGraphStore(tmp_path / "graph")  # a copy: this test writes to it
    settings = make_settings(tmp_path, prefix, home=trained.home.root, temperature=0.0)
    app = create_app(settings, store=store, redis_client=client)
    users = [str(u) for u in trained.world.catalog.users[:5]]
    with TestClient(app) as api:
        warm = _wait(api, lambda s: s["warm"], "warm-up")
        assert warm["known_users"] == warm["warmed"] == len(trained.world.catalog.users)
        work = app.state.services.precompute.current()
        assert isinstance(work, Precomputer)
        ranker: Ranker = work.ranker
        # the served policy's actions were computed with the states: nothing left to compute
        act = app.state.services.recommenders["default"].current.act
        assert all(ranker.warm_actions(user, [act]) == 0 for user in users)
        computed = ranker.stats.computed
        for user in users:
            body = api.get(f"/v1/users/{user}/recommendations?k=5").json()
            assert not body["cold_start"] and len(body["items"]) == 5
        assert ranker.stats.computed == computed  # every one a cache hit
        assert ranker.stats.hits >= len(users)

        # A card action writes an edge for users[0]: recomputed in the background...
        user, movie = users[0], body["items"][0]["movie"]
        action = {"action": "not_interested"}
        url = f"/users/{user}/movies/{movie}/actions"
        assert api.post(url, json=action, headers=AUTH).status_code == 200
        _wait(api, lambda s: s["recomputed"] >= 1 and s["changes_waiting"] == 0, "recompute")
        computed = ranker.stats.computed
        after = api.get(f"/v1/users/{user}/recommendations?k=5").json()
        assert ranker.stats.computed == computed  # ...so the next request is a hit
        assert movie not in [item["movie"] for item in after["items"]]
        # and what it served is the state of the graph as it is now
        logged = RecLog(client, prefix, 60).get(after["recommendation_id"])
        fresh = Ranker(ranker.bundle).prepare(store, user)
        assert logged is not None and logged.state is not None and fresh is not None
        np.testing.assert_array_equal(logged.state, fresh.state)

        cold = api.get("/v1/users/someone-new/recommendations?k=3").json()
        assert cold["cold_start"] and not ranker.cached("someone-new")


def test_precompute_can_be_switched_off(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    settings = make_settings(tmp_path, prefix, home=trained.home.root, precompute=False)
    with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
        ready = api.get("/readyz").json()
        assert "precompute" not in ready and ready["arms"] == {"default": "ddpg-v1"}
