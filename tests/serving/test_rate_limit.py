"""Anonymous reads can be rate-limited (MARQUEE_ANONYMOUS_READS_PER_MINUTE): token buckets per
client address, a 429 with Retry-After beyond, the API token exempt, memory bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from agent.buffers.hash_tag import RECLOG, tag
from features.graph.local import LocalGraphStore
from serving.app import create_app
from serving.rate_limit import RateLimiter
from tests.serving.conftest import AUTH, make_settings


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_evenly() -> None:
    clock = _Clock()
    limiter = RateLimiter(6, clock=clock)  # 6 at once, then one every 10 s
    assert [limiter.take("a") for _ in range(6)] == [0.0] * 6
    assert limiter.take("a") == pytest.approx(10.0)
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 5
    assert limiter.take("a") == pytest.approx(5.0)  # refused calls spend nothing
    clock.now += 5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(10.0)
    clock.now += 3600
    assert [limiter.take("a") for _ in range(7)].count(0.0) == 6  # refilled to the burst only


def test_buckets_are_bounded() -> None:
    limiter = RateLimiter(1, max_clients=100, clock=_Clock())
    for i in range(10_000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100


@pytest.mark.parametrize("bad", [{"per_minute": 0}, {"per_minute": 1, "max_clients": 0}])
def test_limits_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        RateLimiter(**bad)


def _client(
    tmp_path: Path, store: LocalGraphStore, cp: tuple[redis.Redis, str], address: str, **kw: object
) -> TestClient:
    client, prefix = cp
    app = create_app(make_settings(tmp_path, prefix, **kw), store=store, redis_client=client)
    return TestClient(app, client=(address, 50000))


def test_anonymous_reads_over_the_budget_get_429(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    with _client(tmp_path, store, server_cp, "203.0.113.7", anonymous_reads_per_minute=5) as api:
        answers = [api.get(f"/v1/users/anon-{i}/recommendations?k=2") for i in range(8)]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
        refused = answers[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 12
        assert "API token" in refused.json()["detail"]
        # the pages that log a slate share the budget; the rest of the site does not
        assert api.get("/users/fan").status_code == 429
        assert api.get("/healthz").status_code == 200
        # the API token is never limited
        assert api.get("/v1/users/fan/recommendations", headers=AUTH).status_code == 200
        # a wrong token is anonymous
        wrong = {"Authorization": "Bearer not-the-token"}
        assert api.get("/v1/users/fan/recommendations", headers=wrong).status_code == 429
    client, prefix = server_cp
    # refused reads stored nothing: five anonymous slates and the token's one
    assert sum(1 for _ in client.scan_iter(match=f"{tag(prefix, RECLOG)}:rec:*")) == 6


def test_each_address_has_its_own_budget(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    app = create_app(
        make_settings(tmp_path, prefix, anonymous_reads_per_minute=2),
        store=store,
        redis_client=client,
    )
    with TestClient(app, client=("198.51.100.1", 1)) as first:
        second = TestClient(app, client=("198.51.100.2", 1))
        codes = [first.get("/v1/users/fan/recommendations").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert second.get("/v1/users/fan/recommendations").status_code == 200


def test_unset_means_unlimited(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    with _client(tmp_path, store, server_cp, "203.0.113.9") as api:
        codes = {api.get("/v1/users/fan/recommendations?k=1").status_code for _ in range(30)}
        assert codes == {200}


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    """`marquee serve` runs uvicorn with proxy headers on: from a trusted proxy (127.0.0.1, or
    FORWARDED_ALLOW_IPS) the client address is X-Forwarded-For's, which the limit keys on."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    client, prefix = server_cp
    app = create_app(
        make_settings(tmp_path, prefix, anonymous_reads_per_minute=1),
        store=store,
        redis_client=client,
    )
    proxied = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
    with TestClient(proxied, client=("127.0.0.1", 1)) as proxy:  # type: ignore[arg-type]

        def get(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            return proxy.get("/v1/users/fan/recommendations", headers=headers).status_code

        assert [get("192.0.2.1"), get("192.0.2.1"), get("192.0.2.2")] == [200, 429, 200]
