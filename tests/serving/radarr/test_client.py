"""The Radarr client and `radarr add`, run against a local Radarr stand-in."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from serving.radarr.cli import radarr_app
from serving.radarr.client import RadarrAuthError, RadarrClient, RadarrError, RadarrSettings
from tests.serving.radarr.radarr_test_server import RadarrTestServer


@pytest.fixture
def radarr():
    with RadarrTestServer() as server:
        yield server


def client(server: RadarrTestServer, key: str | None = None, timeout: float = 5.0) -> RadarrClient:
    return RadarrClient(RadarrSettings(server.url, key or server.api_key, timeout=timeout))


def test_add_posts_lookup_with_profile_root_and_search(radarr: RadarrTestServer) -> None:
    with client(radarr) as c:
        result = c.add(862, quality_profile="hd-1080p")
    assert result.added and result.searching and result.title == "Toy Story"
    (body,) = radarr.posts
    assert body["tmdbId"] == 862
    assert body["qualityProfileId"] == 4
    assert body["rootFolderPath"] == "/movies"
    assert body["monitored"] is True
    assert body["addOptions"] == {"searchForMovie": True}
    assert [m["tmdbId"] for m in radarr.movies] == [862]


def test_already_added_movie_is_not_an_error(radarr: RadarrTestServer) -> None:
    with client(radarr) as c:
        assert c.add(949).added
        again = c.add(949)
    assert not again.added and again.title == "Heat"
    assert len(radarr.movies) == 1 and len(radarr.posts) == 1


def test_exists_validator_from_a_race_is_handled(radarr: RadarrTestServer) -> None:
    """Radarr answering 400 MovieExistsValidator to the POST itself counts as "already there"."""
    with client(radarr) as c:
        c.add(862)
        radarr.movies[0]["tmdbId"] = 862
        original = c.existing
        c.existing = lambda tmdb_id: None  # type: ignore[method-assign]
        result = c.add(862)
        c.existing = original  # type: ignore[method-assign]
    assert not result.added and len(radarr.posts) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tmdb_id": 123456}, "answered 404 while looking up TMDB id 123456: Movie not found"),
        ({"tmdb_id": 0}, "TMDB id must be a positive integer, got 0"),
        (
            {"tmdb_id": 862, "quality_profile": "4K"},
            "no Radarr quality profile '4K'; there are: 1:Any, 4:HD-1080p",
        ),
        ({"tmdb_id": 862, "root_folder": "/elsewhere"}, "'/elsewhere' is not a Radarr root folder"),
    ],
)
def test_bad_requests_raise_clear_errors(
    radarr: RadarrTestServer, kwargs: dict, message: str
) -> None:
    with client(radarr) as c, pytest.raises(RadarrError) as err:
        c.add(**kwargs)
    assert message in str(err.value)
    assert radarr.movies == []


def test_bad_key_is_a_clear_error_without_the_key(
    radarr: RadarrTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with client(radarr, key="wrong-secret-key") as c, pytest.raises(RadarrAuthError) as err:
        c.add(862)
    assert "refused the API key" in str(err.value) and "RADARR_API_KEY" in str(err.value)
    assert "wrong-secret-key" not in str(err.value) and "wrong-secret-key" not in caplog.text
    assert radarr.movies == []


def test_timeout_is_a_clear_error(radarr: RadarrTestServer) -> None:
    radarr.hang = True
    with (
        client(radarr, timeout=0.3) as c,
        pytest.raises(RadarrError, match=r"did not answer within 0.3 s"),
    ):
        c.add(862)


def test_unreachable_server() -> None:
    with RadarrTestServer() as server:
        url = server.url
    with (
        RadarrClient(RadarrSettings(url, "k", timeout=2)) as c,
        pytest.raises(RadarrError, match="cannot reach Radarr"),
    ):
        c.add(862)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set RADARR_URL and RADARR_API_KEY"),
        ({"RADARR_URL": "http://127.0.0.1:7878"}, "set RADARR_API_KEY"),
        ({"RADARR_API_KEY": "k"}, "set RADARR_URL ("),
    ],
)
def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict, message: str) -> None:
    monkeypatch.delenv("RADARR_URL", raising=False)
    monkeypatch.delenv("RADARR_API_KEY", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(RadarrError, match=message.replace("(", r"\(")):
        RadarrSettings.from_env()


def test_settings_repr_hides_key() -> None:
    assert "sekrit" not in repr(RadarrSettings("http://x", "sekrit"))


def test_cli_add_and_help(radarr: RadarrTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert "TMDB id" in runner.invoke(radarr_app, ["add", "--help"]).output
    monkeypatch.setenv("RADARR_URL", radarr.url)
    monkeypatch.setenv("RADARR_API_KEY", radarr.api_key)
    first = runner.invoke(radarr_app, ["add", "862", "--no-search"])
    assert first.exit_code == 0, first.output
    assert "Added Toy Story" in first.output and "not searching yet" in first.output
    assert radarr.posts[0]["addOptions"] == {"searchForMovie": False}
    second = runner.invoke(radarr_app, ["add", "862"])
    assert second.exit_code == 0 and "already has Toy Story" in second.output
    monkeypatch.setenv("RADARR_API_KEY", "nope-key")
    bad = runner.invoke(radarr_app, ["add", "949"])
    assert (
        bad.exit_code == 1 and "refused the API key" in bad.output and "nope-key" not in bad.output
    )
