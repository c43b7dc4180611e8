"""The registry watcher: a newly promoted version is served without a restart or a failed
request, and a service started before anything was registered falls back, then picks it up."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from agent.registry import PolicyRegistry, configure_tracking
from agent.worlds import world_dir
from marquee.home import Home
from serving.app import create_app
from tests.serving.conftest import make_settings
from tests.serving.policy_home import TrainedHome, trained_home

DEADLINE = 60.0  # seconds before a test gives up waiting (a hang guard, not a speed check)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return trained_home(tmp_path_factory)


def _own_home(trained: TrainedHome, tmp_path: Path, *, with_registry: bool) -> Home:
    """A copy of the trained home, so this test's registry changes stay its own."""
    home = Home(tmp_path / "home")
    shutil.copytree(world_dir(trained.home), world_dir(home))
    if with_registry:
        shutil.copytree(trained.home.tracking_dir, home.tracking_dir)
    return home.ensure()


def _wait_for(predicate: object, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_promoted_version_is_served_without_restart_or_failed_requests(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    home = _own_home(trained, tmp_path, with_registry=True)
    client, prefix = server_cp
    settings = make_settings(tmp_path, prefix, home=home.root, registry_poll_seconds=0.2)
    user = str(trained.world.catalog.users[0])
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
        assert api.get("/readyz").json()["arms"] == {"default": "ddpg-v1"}

        def hammer() -> None:  # requests all through the swap
            while not stop.is_set():
                res = api.get(f"/v1/users/{user}/recommendations?k=3")
                seen.append((res.status_code, res.json().get("policy_version", "")))

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            configure_tracking(home.tracking_uri, home.artifacts_dir, "marquee")  # as train does
            registry = PolicyRegistry(home.tracking_uri)
            v2 = registry.register(trained.zip_path, algo="ddpg")
            _wait_for(lambda: len(seen) >= 5, "requests before the promotion")
            assert {v for _, v in seen} == {"ddpg-v1"}  # registered is not promoted
            registry.set_alias("champion", v2)
            _wait_for(lambda: seen and seen[-1][1] == f"ddpg-v{v2}", "the swap")
            n = len(seen)
            _wait_for(lambda: len(seen) >= n + 5, "requests after the swap")
        finally:
            stop.set()
            thread.join()
        ready = api.get("/readyz").json()
        metrics = api.get("/metrics").text
    assert all(status == 200 for status, _ in seen)
    versions = [v for _, v in seen]
    first_v2 = versions.index(f"ddpg-v{v2}")
    assert set(versions[:first_v2]) == {"ddpg-v1"}
    assert set(versions[first_v2:]) == {f"ddpg-v{v2}"}  # never back to the old one
    assert ready["arms"] == {"default": f"ddpg-v{v2}"}
    assert ready["policies"] == {"champion": f"serving version {v2}"}
    assert (
        f'marquee_policy_loaded{{arm="default",policy="champion",version="ddpg-v{v2}"}} 1.0'
        in metrics
    )
    assert 'version="ddpg-v1"' not in metrics


def test_no_registered_model_serves_popularity_until_one_is_registered(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    home = _own_home(trained, tmp_path, with_registry=False)
    client, prefix = server_cp
    settings = make_settings(tmp_path, prefix, home=home.root, registry_poll_seconds=0.2)
    user = str(trained.world.catalog.users[0])
    with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
        ready = api.get("/readyz").json()
        assert ready["status"] == "ready" and ready["arms"] == {"default": "popularity"}
        assert ready["policies"] == {
            "champion": "no policy registry yet (nothing trained): serving popularity"
        }
        assert api.get(f"/v1/users/{user}/recommendations").json()["policy_version"] == (
            "popularity"
        )
        configure_tracking(home.tracking_uri, home.artifacts_dir, "marquee")  # as train does
        version = PolicyRegistry(home.tracking_uri).register(
            trained.zip_path, algo="ddpg", aliases=("champion",)
        )

        def serves_it() -> bool:
            body = api.get(f"/v1/users/{user}/recommendations").json()
            return bool(body["policy_version"] == f"ddpg-v{version}")

        _wait_for(serves_it, "the first registered version")
        assert api.get("/readyz").json()["policies"] == {"champion": f"serving version {version}"}


def test_arm_naming_a_missing_alias_says_so(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    home = _own_home(trained, tmp_path, with_registry=True)
    client, prefix = server_cp
    ab = {
        "arms": [
            {"name": "a", "policy": "champion", "share": 0.5},
            {"name": "b", "policy": "challenger", "share": 0.5},
        ]
    }
    settings = make_settings(tmp_path, prefix, home=home.root, ab=ab)
    with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
        ready = api.get("/readyz").json()
    assert ready["arms"] == {"a": "ddpg-v1", "b": "popularity"}
    assert ready["policies"] == {
        "champion": "serving version 1",
        "challenger": "no registered version 'challenger' of 'marquee-policy': serving popularity",
    }
