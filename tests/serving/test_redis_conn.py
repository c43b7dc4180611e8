"""The embedded Redis start: a refusal on the first ping is retried, and a server that never
answers fails with its own log quoted."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

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
