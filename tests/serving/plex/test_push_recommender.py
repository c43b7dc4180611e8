"""`marquee plex push` without --from: the service's recommender (popularity fallback: no policy
registered) -> "Recommended for <user>" on the Plex stand-in, slates logged in Redis; --every."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from features.graph.local import LocalGraphStore
from marquee.home import Home
from serving.plex.cli import plex_app
from serving.plex.ids import user_key
from serving.plex.state import load_state, state_path
from serving.popularity import PopularityRecommender
from serving.reclog import RecLog
from tests.serving.plex.plex_test_server import PlexTestServer
from tests.serving.plex.service_home import NOT_IN_PLEX, plex_env, synced_home


def expected_lists(home: Home, k: int) -> dict[str, list[int]]:
    """Per account, the ratingKeys of the popularity top-k that Plex holds, in rank order."""
    rating_key = {g: int(rk) for rk, g in load_state(state_path(home)).movie_keys.items()}
    store = LocalGraphStore.open(home.graph_dir)
    pop = PopularityRecommender(store)
    out = {}
    for account in ("alice", "bob"):
        items = pop.recommend(user_key(account), k).items
        out[f"Recommended for {account}"] = [
            rating_key[i.movie] for i in items if i.movie in rating_key
        ]
    return out


def lists(plex: PlexTestServer) -> dict[str, list[int]]:
    return {c.title: c.items for c in plex.collections.values()}


def test_push_asks_the_recommender(
    plex: PlexTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp)
    home = synced_home(tmp_path)
    result = CliRunner().invoke(plex_app, ["push", "--limit", "5"], obj=home)
    assert result.exit_code == 0, result.output
    assert "Recommended for alice: 2 movies, 2 not in Plex (popularity, arm default)" in (
        result.output
    )
    got = lists(plex)
    assert got == expected_lists(home, 5)
    assert 102 in got["Recommended for alice"]  # Heat: popular, not yet watched by alice
    assert 101 not in got["Recommended for alice"]  # Toy Story: alice watched it
    assert got["Recommended for bob"] and not {101, 102} & set(got["Recommended for bob"])

    # each slate is logged, so a later watch of a pushed movie joins it
    client, prefix = server_cp
    logged = RecLog(client, prefix, 60).find("plex-alice", "949")
    assert logged is not None
    assert (logged.arm, logged.policy_version) == ("default", "popularity")
    assert set(logged.slate) >= NOT_IN_PLEX | {"949"}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_push_recommender_with_placeholders(
    plex: PlexTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp)
    home = synced_home(tmp_path)
    folder = tmp_path / "placeholders"
    result = CliRunner().invoke(plex_app, ["push", "--placeholders", str(folder)], obj=home)
    assert result.exit_code == 0, result.output
    mine = folder / "alice"  # one folder per person
    names = sorted(p.name for p in mine.iterdir() if not p.name.startswith("."))
    assert names == ["Alien (1979) {imdb-tt0078748}", "The Thing (1982) {imdb-tt0084787}"]
    (nfo_file,) = (mine / names[0]).glob("*.nfo")
    nfo = nfo_file.read_text()
    assert "<title>Alien</title>" in nfo and "Recommended (" in nfo


def test_push_every_refreshes_a_bounded_number_of_times(
    plex: PlexTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp)
    home = synced_home(tmp_path)
    result = CliRunner().invoke(
        plex_app, ["push", "--every", "0.01", "--iterations", "3"], obj=home
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Recommended for alice:") == 3
    assert "stopped after 3 refreshes" in result.output
    created = [p for m, p, _ in plex.requests if m == "POST" and p == "/library/collections"]
    assert len(created) == 2  # two accounts, made once; later rounds update them in place
    assert lists(plex) == expected_lists(home, 20)


def test_push_every_stops_on_sigterm(
    plex: PlexTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp)
    home = synced_home(tmp_path)

    def terminate_after_first_round() -> None:
        deadline = time.monotonic() + 60
        while len(plex.collections) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_round, daemon=True)
    killer.start()
    # a lost signal would show as a second refresh 30 s later, not as a hang
    result = CliRunner().invoke(plex_app, ["push", "--every", "30", "--iterations", "2"], obj=home)
    killer.join(timeout=5)
    assert result.exit_code == 0, result.output
    assert "stopped after 1 refreshes" in result.output
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was put back


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["push", "--iterations", "2"], {}, "--iterations needs --every"),
        (
            ["push"],
            {"MARQUEE_AB": '{"arms": [{"name": "a", "policy": "popularity", "share": 0.5}]}'},
            "MARQUEE_AB: Value error, A/B arm shares must sum to 1",
        ),
    ],
)
def test_push_recommender_errors(
    plex: PlexTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), None)
    home = synced_home(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(plex_app, args, obj=home)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not plex.collections
