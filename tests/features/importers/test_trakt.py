"""Trakt import against a local server speaking Trakt API v2: device-code login, tokens kept
and refreshed, paging, rate limits, bad credentials (clear error, nothing written), matching
by IMDb or TMDB id, and incremental history on later runs."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind
from features.importers.movielens import load_movielens
from features.importers.trakt import trakt_batch
from features.importers.trakt_client import (
    DeviceCode,
    TokenStore,
    TraktAuthError,
    TraktClient,
)
from marquee.cli import app
from tests.features.importers.conftest import LATEST, write_folder
from tests.features.importers.trakt_test_server import TraktTestServer, trakt_movie

CID, SECRET = "trakt-client-id", "trakt-secret-xyz"
TOY = trakt_movie("Toy Story", 1995, imdb="tt0114709", tmdb=862, trakt=1)
HEAT_BY_TMDB = trakt_movie("Heat", 1995, imdb=None, tmdb=949, trakt=2)
UNKNOWN = trakt_movie("Nope", 2020, imdb="tt9999999", tmdb=1, trakt=3)


def play(movie: dict, when: str, n: int) -> dict:
    return {"id": n, "watched_at": when, "action": "watch", "type": "movie", "movie": movie}


def rating(movie: dict, score: int, when: str) -> dict:
    return {"rated_at": when, "rating": score, "type": "movie", "movie": movie}


@pytest.fixture
def trakt() -> Iterator[TraktTestServer]:
    with TraktTestServer(CID, SECRET) as server:
        server.history = [
            play(TOY, "2024-01-02T20:00:00.000Z", 1),
            play(TOY, "2024-01-05T20:00:00.000Z", 2),
            play(HEAT_BY_TMDB, "2024-01-03T20:00:00.000Z", 3),
            play(UNKNOWN, "2024-01-04T20:00:00.000Z", 4),
            play(TOY, "not a time", 5),
        ]
        server.ratings = [
            rating(TOY, 8, "2024-01-06T10:00:00.000Z"),
            rating(HEAT_BY_TMDB, 3, "2024-01-06T11:00:00Z"),
        ]
        yield server


def _client(server: TraktTestServer, tmp_path: Path, **kw: object) -> TraktClient:
    waits = kw.pop("waits", [])
    return TraktClient(
        str(kw.pop("cid", CID)),
        str(kw.pop("secret", SECRET)),
        TokenStore(tmp_path / "trakt" / "token.json"),
        server.url,
        sleep=waits.append,  # type: ignore[attr-defined]
        **kw,  # type: ignore[arg-type]
    )


def test_device_login_saves_tokens_only_the_owner_reads(
    trakt: TraktTestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trakt.pending = 2
    waits: list[float] = []
    with caplog.at_level(logging.DEBUG), _client(trakt, tmp_path, waits=waits) as client:
        code = client.device_code()
        assert (code.user_code, code.verification_url) == ("5055CC52", "https://trakt.tv/activate")
        token = client.wait_for_token(code)
    assert waits == [5, 5]  # the interval Trakt asked for, while pending
    path = tmp_path / "trakt" / "token.json"
    assert json.loads(path.read_text())["access_token"] == token["access_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for secret in (SECRET, token["access_token"], token["refresh_token"], "device-code-secret"):
        assert secret not in caplog.text


def test_denied_login_is_a_clear_error(trakt: TraktTestServer, tmp_path: Path) -> None:
    trakt.denied = True
    with (
        _client(trakt, tmp_path) as client,
        pytest.raises(TraktAuthError, match=r"^the Trakt user denied access$"),
    ):
        client.wait_for_token(DeviceCode("device-code-secret", "X", "u", 600, 5))
    assert not (tmp_path / "trakt").exists()


def test_pages_are_followed_and_rate_limits_waited(trakt: TraktTestServer, tmp_path: Path) -> None:
    waits: list[float] = []
    with _client(trakt, tmp_path, waits=waits) as client:
        client.tokens.save(trakt.issue() | {"created_at": 1_700_000_000})
        trakt.throttle = ["2"]
        client._now = lambda: 1_700_000_100  # type: ignore[method-assign]
        rows = list(client.pages("/sync/history/movies", limit=2))
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    pages = [q["page"] for m, p, q in trakt.requests if p == "/sync/history/movies"]
    assert pages == ["1", "1", "2", "3"]  # the first was refused once (429), then 3 pages
    assert waits == [2.0]


def test_expired_token_is_refreshed_and_saved(trakt: TraktTestServer, tmp_path: Path) -> None:
    with _client(trakt, tmp_path, now=lambda: 1_700_000_000 + 7776000) as client:
        old = trakt.issue()
        client.tokens.save(old)
        assert client.username() == "sean"
    saved = TokenStore(tmp_path / "trakt" / "token.json").load()
    assert saved is not None and saved["access_token"] != old["access_token"]
    assert ("POST", "/oauth/token", {}) in trakt.requests


def test_revoked_token_gets_one_refresh(trakt: TraktTestServer, tmp_path: Path) -> None:
    with _client(trakt, tmp_path, now=lambda: 1_700_000_100) as client:
        old = trakt.issue()
        client.tokens.save(old)
        trakt.valid_tokens.discard(old["access_token"])  # revoked on Trakt's side
        assert client.username() == "sean"


def test_matching_by_imdb_then_tmdb(trakt: TraktTestServer, tmp_path: Path) -> None:
    graph = LocalGraphStore()
    graph.upsert(load_movielens(write_folder(tmp_path / "ml", LATEST)))
    batch, report = trakt_batch("trakt-sean", trakt.history, trakt.ratings, graph)
    watched = batch.edges[EdgeKind.WATCHED].set_index("dst")
    assert sorted(watched.index) == ["1", "4"]
    assert watched.loc["1", "timestamp"] == 1704484800  # the latest play of Toy Story
    rated = batch.edges[EdgeKind.RATED].set_index("dst")["rating"].to_dict()
    assert rated == {"1": 4.0, "4": 1.5}  # Trakt's 1-10 halved
    assert (report.unmatched, report.bad) == (1, 1)


def _cli(home: Path, server: TraktTestServer, *args: str, **env: str):
    base = {"TRAKT_CLIENT_ID": CID, "TRAKT_CLIENT_SECRET": SECRET, "TRAKT_API_URL": server.url}
    return CliRunner().invoke(app, ["--home", str(home), "ingest", "trakt", *args], env=base | env)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app,
        ["--home", str(home), "ingest", "movielens", str(write_folder(tmp_path / "ml", LATEST))],
    )
    assert result.exit_code == 0, result.output
    return home


def test_cli_login_import_then_incremental(
    trakt: TraktTestServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    trakt.interval = 0
    first = _cli(home, trakt, "--login")
    assert first.exit_code == 0, first.output
    assert "Open https://trakt.tv/activate and enter the code 5055CC52" in first.stderr
    assert (
        "2 movies watched and 2 rated in the graph; 1 entries match no graph movie" in first.stdout
    )
    assert SECRET not in first.output and "access-1-secret" not in first.output
    store = LocalGraphStore.open(home / "graph")
    assert len(store.edge_frame(EdgeKind.WATCHED)) == 2
    # A later run needs no login and asks only for history since the newest play it saw.
    trakt.requests.clear()
    again = _cli(home, trakt)
    assert again.exit_code == 0, again.output
    history = [q for m, p, q in trakt.requests if p == "/sync/history/movies"]
    assert history[0]["start_at"] == "2024-01-05T20:00:00.000Z"
    assert not any(p.startswith("/oauth/device") for m, p, q in trakt.requests)


def test_cli_bad_secret_writes_nothing(trakt: TraktTestServer, home: Path) -> None:
    before = LocalGraphStore.open(home / "graph").counts()
    result = _cli(home, trakt, "--login", TRAKT_CLIENT_SECRET="wrong-secret-123")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Trakt answered 401 for /oauth/device/token: invalid_client"
    )
    assert "wrong-secret-123" not in result.output
    assert not (home / "trakt" / "token.json").exists()
    assert LocalGraphStore.open(home / "graph").counts() == before
