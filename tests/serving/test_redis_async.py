"""serving.redis_async: the asyncio twin of a client reaches the same server with the same
settings (TCP and the embedded Unix socket; the cluster's twin is in test_redis_cluster.py),
the slate log awaited through it writes what the threaded log writes, and the breaker's
awaited call opens as the threaded one does. Real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from unittest import mock

import numpy as np
import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from serving.breaker import BreakerOpen, CircuitBreaker
from serving.reclog import RecLog, alog_served, log_served, make_record
from serving.recommender import RecommendationResult, ScoredItem
from serving.redis_async import async_twin, open_connections


def test_the_twin_reaches_the_same_server(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    client.set(f"{prefix}:k", b"from sync")

    async def read() -> bytes | None:
        twin = async_twin(client)
        assert isinstance(twin, redis.asyncio.Redis)
        try:
            await twin.set(f"{prefix}:k2", b"from async")
            return await twin.get(f"{prefix}:k")  # type: ignore[return-value]
        finally:
            await twin.aclose()

    assert asyncio.run(read()) == b"from sync"
    assert client.get(f"{prefix}:k2") == b"from async"


def test_the_twin_keeps_the_clients_settings(server_cp: tuple[redis.Redis, str]) -> None:
    """Database, timeouts and client name carry over; a timeout is not retried, a lost
    connection once (a pooled connection Redis's restart left dead)."""
    client, _ = server_cp
    kwargs = client.connection_pool.connection_kwargs
    tuned = redis.Redis(
        host=kwargs["host"],
        port=kwargs["port"],
        db=3,
        socket_timeout=0.7,
        socket_connect_timeout=0.4,
        client_name="marquee-test",
    )
    twin = async_twin(tuned)
    assert twin is not None
    got = twin.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert (got["host"], got["port"], got["db"]) == (kwargs["host"], kwargs["port"], 3)
    assert (got["socket_timeout"], got["socket_connect_timeout"]) == (0.7, 0.4)
    assert got["client_name"] == "marquee-test"
    retry = got["retry"]
    assert retry.get_retries() == 1
    assert retry._supported_errors == (redis.ConnectionError,)  # not redis.TimeoutError
    asyncio.run(twin.aclose())
    tuned.close()


@pytest.mark.parametrize(
    "client",
    [object(), mock.MagicMock(), None, "redis://localhost:6379"],
    ids=["object", "mock", "none", "url"],
)
def test_no_twin_for_what_is_not_a_redis_py_client(client: object) -> None:
    assert async_twin(client) is None


def _result() -> RecommendationResult:
    items = [ScoredItem(movie=m, score=1.0, propensity=0.5) for m in ("3", "1", "2")]
    return RecommendationResult(
        items=items,
        policy_version="v1",
        state=np.arange(4, dtype=np.float32),
        action=np.ones(2, dtype=np.float32),
    )


def test_the_awaited_log_writes_what_the_threaded_log_writes(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_cp
    log = RecLog(client, prefix, 60)
    assert not log.can_await
    with pytest.raises(RuntimeError, match="use_async"):
        asyncio.run(log.alog(make_record("u", "a", "v1", ["1"], [1.0], None, None)))

    async def made_here() -> None:
        twin = async_twin(client)
        log.use_async(twin)
        assert log.can_await
        await twin.aclose()  # type: ignore[union-attr]

    asyncio.run(made_here())
    assert not log.can_await  # no loop running here
    with pytest.raises(RuntimeError, match="this event loop"):  # another loop than its own
        asyncio.run(log.alog(make_record("u", "a", "v1", ["1"], [1.0], None, None)))
    threaded, _ = log_served(log, "u", "a", _result())

    async def awaited() -> tuple[str, bool]:
        twin = async_twin(client)
        log.use_async(twin)
        try:
            record, logged = await alog_served(log, "u", "a", _result())
            return record.id, logged
        finally:
            log.use_async(None)
            await twin.aclose()  # type: ignore[union-attr]

    rec_id, logged = asyncio.run(awaited())
    assert logged
    first, second = log.get(threaded.id), log.get(rec_id)
    assert first is not None and second is not None
    for field in ("user", "arm", "policy_version", "slate", "teams"):
        assert getattr(first, field) == getattr(second, field), field
    for field in ("propensities", "state", "action"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert log.user_ids("u") == [rec_id, threaded.id]
    found = log.find("u", "2")
    assert found is not None and found.id == rec_id  # the newest slate showing it


def test_awaited_logs_wait_their_turn_within_the_pool(redis_cp: tuple[redis.Redis, str]) -> None:
    """More slates at once than the asyncio client's pool holds connections: with the log's
    concurrency under the pool's size every one is logged; without, the pool refuses some
    (what one worker at concurrency 128 met with the default pool of 100)."""
    client, prefix = redis_cp

    async def burst(concurrency: int, n: int = 40) -> list[bool]:
        twin = async_twin(client)
        assert isinstance(twin, redis.asyncio.Redis)
        twin.connection_pool.max_connections = 6
        log = RecLog(client, prefix, 60)
        log.use_async(twin, concurrency=concurrency)
        try:
            out = await asyncio.gather(
                *(alog_served(log, f"u{i}", "a", _result()) for i in range(n))
            )
            return [logged for _, logged in out]
        finally:
            await twin.aclose()

    assert all(asyncio.run(burst(concurrency=6)))
    assert not all(asyncio.run(burst(concurrency=40)))
    with pytest.raises(ValueError, match="concurrency"):
        RecLog(client, prefix, 60).use_async(None, concurrency=0)


def test_connections_opened_ahead_are_idle_in_the_pool(redis_cp: tuple[redis.Redis, str]) -> None:
    client, _ = redis_cp

    async def go() -> tuple[int, int, bytes | None]:
        twin = async_twin(client)
        assert isinstance(twin, redis.asyncio.Redis)
        try:
            opened = await open_connections(twin, 5)
            idle = len(twin.connection_pool._available_connections)
            return opened, idle, await twin.echo(b"still works")  # type: ignore[return-value]
        finally:
            await twin.aclose()

    assert asyncio.run(go()) == (5, 5, b"still works")


def test_opening_connections_to_a_dead_server_raises() -> None:
    async def go() -> None:
        dead = redis.asyncio.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        try:
            await open_connections(dead, 3)
        finally:
            await dead.aclose()

    with pytest.raises(redis.ConnectionError):
        asyncio.run(go())


def test_the_script_is_loaded_before_the_first_slate(redis_cp: tuple[redis.Redis, str]) -> None:
    """RecLog.load_async (the service's start): the log's script is in Redis through the
    asyncio client before any slate is logged; without a client it does nothing."""
    client, prefix = redis_cp
    log = RecLog(client, prefix, 60)
    client.script_flush()
    asyncio.run(log.load_async())  # no asyncio client: nothing to load through
    sha = log._log.sha

    async def load() -> None:
        twin = async_twin(client)
        log.use_async(twin)
        try:
            await log.load_async()
        finally:
            log.use_async(None)
            await twin.aclose()  # type: ignore[union-attr]

    assert client.script_exists(sha) == [False]
    asyncio.run(load())
    assert client.script_exists(sha) == [True]


@pytest.mark.parametrize(
    ("error", "opens"),
    [
        (redis.TimeoutError("slow"), True),
        (redis.ConnectionError("gone"), True),
        (redis.exceptions.TryAgainError("resharding"), True),
        (redis.ResponseError("NOSCRIPT"), False),
        (redis.exceptions.MaxConnectionsError("pool full"), False),  # the client's, not Redis
        (ValueError("a bug"), False),
    ],
)
def test_the_awaited_call_opens_the_breaker_as_the_threaded_one(
    error: Exception, opens: bool
) -> None:
    def fail() -> None:
        raise error

    def failing() -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            fail()

        return call

    async def go() -> None:
        threaded, awaited = CircuitBreaker(), CircuitBreaker()
        with pytest.raises(type(error)):
            threaded.call(fail)
        with pytest.raises(type(error)):
            await awaited.acall(failing())
        assert threaded.is_open is awaited.is_open is opens
        if opens:  # open: not tried at all
            with pytest.raises(BreakerOpen):
                await awaited.acall(failing())

    asyncio.run(go())
