"""The service, the feedback store, the replay ring and the served-slate log on a real
three-master Redis Cluster (tests.serving.redis_cluster), reached through MARQUEE_REDIS_URL
naming any one node; the same URL form naming a single server gives a plain client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio.cluster
from fastapi.testclient import TestClient
from gymnasium import spaces
from redis.cluster import RedisCluster

from agent.buffers.hash_tag import FEEDBACK, RECLOG, tag
from agent.buffers.redis_buffer import RedisReplayBuffer
from agent.buffers.redis_ring import RedisRing, ring_prefix
from features.graph.local import LocalGraphStore
from serving.ab_report import read_feedback, read_served
from serving.app import create_app
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import RecLog, make_record
from serving.redis_async import async_twin
from serving.redis_conn import connect
from tests.serving.conftest import AUTH, make_settings
from tests.serving.redis_cluster import ClusterNode, redis_cluster
from tests.serving.redis_server import redis_server
from tests.serving.test_feedback import _stateful


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterNode]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


def _keys(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match="{" + prefix + ":*", count=1000))


def test_any_node_url_gives_a_cluster_client(cluster: list[ClusterNode], tmp_path: Path) -> None:
    for node in cluster:
        handle = connect(node.url, tmp_path)
        try:
            assert handle.cluster and isinstance(handle.client, RedisCluster)
            assert "(cluster)" in handle.description
            # keys that hash to slots on different masters all work through one URL
            for key in ("a", "b", "c", "d", "e"):
                handle.client.set(f"probe:{key}", key, ex=60)
                assert handle.client.get(f"probe:{key}") == key.encode()
            slots = {handle.client.keyslot(f"probe:{k}") for k in "abcde"}
            assert len(slots) > 1
        finally:
            handle.close()


def test_a_single_server_url_gives_a_plain_client(tmp_path: Path) -> None:
    with redis_server(tmp_path / "single", durable=False) as server:
        handle = connect(server.url, tmp_path)
        try:
            assert not handle.cluster and isinstance(handle.client, redis.Redis)
            assert handle.client.ping()
        finally:
            handle.close()


def test_the_asyncio_twin_of_a_cluster_client_is_a_cluster_client(
    cluster: list[ClusterNode], prefix: str
) -> None:
    """serving.redis_async: the slate log's asyncio client, seeded with the same node, follows
    the cluster's slots (a key written through it is read back through another node)."""
    client = RedisCluster.from_url(cluster[0].url)
    key = f"{tag(prefix, RECLOG)}:twin"

    async def write() -> None:
        twin = async_twin(client)
        assert isinstance(twin, redis.asyncio.cluster.RedisCluster)
        try:
            await twin.set(key, b"async")
        finally:
            await twin.aclose()

    try:
        asyncio.run(write())
        other = RedisCluster.from_url(cluster[2].url)
        assert other.get(key) == b"async"
        other.delete(key)
        other.close()
    finally:
        client.close()


def test_service_serves_logs_and_learns_on_a_cluster(
    cluster: list[ClusterNode], tmp_path: Path, store: LocalGraphStore, prefix: str
) -> None:
    """The app, given only MARQUEE_REDIS_URL of one node: slates are logged, feedback stored
    once and joined into transitions, counters and reports read back, from any node."""
    settings = make_settings(tmp_path, prefix, redis_url=cluster[1].url)
    app = create_app(settings, store=store, recommender_factory=_stateful)
    with TestClient(app) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] == "ok"
        rec = api.get("/v1/users/fan/recommendations?k=3").json()
        assert rec["logged"] is True
        rid = rec["recommendation_id"]
        events: list[dict[str, object]] = [
            {"event_id": "c1", "type": "rated", "recommendation_id": rid, "movie": "6"},
            {"event_id": "c2", "type": "not_interested", "user": "fan", "movie": "7"},
        ]
        events[0]["rating"] = 5
        first = api.post("/v1/feedback", json=events, headers=AUTH).json()
        again = api.post("/v1/feedback", json=events, headers=AUTH).json()
        assert (first["new"], again["new"]) == (2, 0)
        assert first["spooled"] is False and again["spooled"] is False
        arms = api.get("/v1/ab").json()["arms"]
        assert sum(a["served_slates"] for a in arms) == 1
        assert sum(a["feedback_events"] for a in arms) == 2
    client = RedisCluster.from_url(cluster[2].url)  # another node than the app's
    try:
        ring = RedisRing(client, ring_prefix(prefix), obs_dim=4, action_dim=2, capacity=100_000)
        assert ring.total() == 2
        got = ring.get(np.arange(2))
        np.testing.assert_array_equal(got.next_obs, [[6, 7, 8, 9], [2, 3, 4, 5]])
        assert [s.id for s in read_served(client, prefix)] == [rid]
        assert [e.event_id for e in read_feedback(client, prefix)] == ["c1", "c2"]
        fb = RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60))
        assert fb.count() == 2 and fb.stream_length() == 2
        # each group of keys touched together lives in one slot (one master)
        keys = _keys(client, prefix)
        for group in (FEEDBACK, RECLOG):
            mine = [k for k in keys if k.startswith(tag(prefix, group))]
            assert len(mine) >= 3
            assert len({client.keyslot(k) for k in mine}) == 1
        assert not list(client.scan_iter(match=f"{prefix}:*"))  # no key without a tag
    finally:
        client.close()


def test_reclog_caps_evict_across_users_on_a_cluster(
    cluster: list[ClusterNode], prefix: str
) -> None:
    """The log's script evicts other users' slates for the total cap: all in one slot."""
    client = RedisCluster.from_url(cluster[0].url)
    try:
        log = RecLog(client, prefix, 600, user_slates=2, max_slates=5)
        ids = []
        for i in range(12):
            rec = make_record(f"u{i % 4}", "control", "v1", ["1", "2"], [0.5, 0.5], None, None)
            log.log(rec)
            ids.append(rec.id)
        assert log.count() == 5
        assert [log.get(i) is not None for i in ids] == [False] * 7 + [True] * 5
        assert log.find("u3", "1") is not None and log.find("u3", "1").id == ids[11]  # type: ignore[union-attr]
        assert sum(len(log.user_ids(f"u{u}")) for u in range(4)) == 5
    finally:
        client.close()


def test_learner_buffer_samples_a_cluster_ring(cluster: list[ClusterNode], prefix: str) -> None:
    """RedisReplayBuffer (the learner's) given a node URL reads what pushes wrote."""
    obs_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    act_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    buffer = RedisReplayBuffer(
        10, obs_space, act_space, device="cpu", redis_url=cluster[1].url, prefix=ring_prefix(prefix)
    )
    assert isinstance(buffer.client, RedisCluster)
    for step in range(4):
        obs = np.full((1, 3), step, dtype=np.float32)
        act = np.full((1, 2), 0.5, dtype=np.float32)
        buffer.add(obs, obs + 1, act, np.array([1.0]), np.array([False]), [{}])
    assert buffer.size() == 4
    batch = buffer.sample(16)
    assert set(batch.observations[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}
    np.testing.assert_array_equal(batch.next_observations - batch.observations, 1.0)
    buffer.client.close()


def _wait_state(node: ClusterNode, state: str, seconds: float = 30.0) -> None:
    client = redis.Redis(port=node.port)
    try:
        deadline = time.monotonic() + seconds
        while f"cluster_state:{state}" not in client.execute_command("CLUSTER", "INFO").decode():
            assert time.monotonic() < deadline, f"cluster never reached state {state}"
            time.sleep(0.1)
    finally:
        client.close()


@pytest.mark.parametrize("which", ["owner", "other"])
def test_a_dead_master_spools_feedback_and_slates_are_still_served(
    tmp_path: Path, store: LocalGraphStore, prefix: str, which: str
) -> None:
    """A master dies with no replica to fail over to: the one holding Marquee's feedback slot
    (connections refused) or another (the cluster fails: CLUSTERDOWN from every node). Either
    way feedback is spooled (202), slates are served and /readyz answers; nothing is a 500."""
    with redis_cluster(tmp_path / "cluster") as nodes:
        probe = RedisCluster.from_url(nodes[0].url)
        try:
            owner = probe.get_node_from_key(tag(prefix, FEEDBACK)).port
        finally:
            probe.close()
        dead = next(n for n in nodes if (n.port == owner) == (which == "owner"))
        live = (
            next(n for n in nodes if n is not dead and n.port == owner)
            if which == "other"
            else None
        )
        settings = make_settings(tmp_path, prefix, redis_url=nodes[0].url)
        app = create_app(settings, store=store, recommender_factory=_stateful)
        with TestClient(app) as api:
            assert api.get("/v1/users/fan/recommendations?k=3").json()["logged"] is True
            dead.proc.kill()
            dead.proc.wait(timeout=10)
            if live is not None:  # the feedback slot's master lives, but the cluster has failed
                _wait_state(live, "fail")
            event = {"event_id": "d1", "type": "skipped", "recommendation_id": "r1"}
            res = api.post("/v1/feedback", json=event, headers=AUTH)
            assert res.status_code == 202 and res.json()["spooled"] is True
            assert api.get("/v1/users/fan/recommendations?k=3").status_code == 200
            assert api.get("/readyz").status_code == 200
