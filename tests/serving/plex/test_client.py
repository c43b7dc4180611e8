"""Connecting to Plex: bad token, timeouts, unreachable servers, settings from the environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marquee.home import Home
from serving.plex.cli import plex_app
from serving.plex.client import (
    PlexAuthError,
    PlexConnectionError,
    PlexError,
    PlexSettings,
    PlexTimeoutError,
    connect,
    safe_url,
)
from tests.serving.plex.plex_test_server import PlexTestServer


def test_connects_with_the_real_client(plex: PlexTestServer) -> None:
    server = connect(PlexSettings(plex.url, plex.token))
    assert server.friendlyName == "Test Plex"
    assert server.machineIdentifier == "marquee-test-machine"


def test_bad_token_is_a_clear_error_without_the_token(
    plex: PlexTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PlexAuthError) as err:
        connect(PlexSettings(plex.url, "not-the-token-xyz"))
    text = str(err.value)
    assert f"Plex at {plex.url} refused the token while connecting (HTTP 401)" in text
    assert "PLEX_TOKEN" in text
    assert "not-the-token-xyz" not in text and "not-the-token-xyz" not in caplog.text


def test_hanging_server_times_out_clearly(plex: PlexTestServer) -> None:
    plex.hang = True
    with pytest.raises(PlexTimeoutError, match=r"did not answer within 0.3 s while connecting"):
        connect(PlexSettings(plex.url, plex.token, timeout=0.3))


def test_unreachable_server() -> None:
    with PlexTestServer() as gone:
        url = gone.url
    with pytest.raises(PlexConnectionError, match=r"cannot reach Plex at http://127\.0\.0\.1"):
        connect(PlexSettings(url, "t", timeout=2))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set PLEX_URL and PLEX_TOKEN"),
        ({"PLEX_URL": "http://127.0.0.1:32400"}, "set PLEX_TOKEN ("),
        ({"PLEX_TOKEN": "abc"}, "set PLEX_URL ("),
        ({"PLEX_URL": "  ", "PLEX_TOKEN": "abc"}, "set PLEX_URL ("),
    ],
)
def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict, message: str) -> None:
    monkeypatch.delenv("PLEX_URL", raising=False)
    monkeypatch.delenv("PLEX_TOKEN", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(PlexError) as err:
        PlexSettings.from_env()
    assert message in str(err.value)


def test_secrets_stay_out_of_repr_and_urls() -> None:
    assert "tok123" not in repr(PlexSettings("http://h:32400", "tok123"))
    assert safe_url("http://u:pw@h:32400/x?X-Plex-Token=tok123") == "http://h:32400/x"


def test_cli_sync_with_bad_token_writes_nothing(
    plex: PlexTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLEX_URL", plex.url)
    monkeypatch.setenv("PLEX_TOKEN", "wrong-token-999")
    home = Home(tmp_path / "home")
    result = CliRunner().invoke(plex_app, ["sync"], obj=home)
    assert result.exit_code == 1
    assert "refused the token" in result.output and "wrong-token-999" not in result.output
    assert not home.root.exists()  # no graph, no state file


def test_cli_help() -> None:
    runner = CliRunner()
    top = runner.invoke(plex_app, ["--help"])
    assert top.exit_code == 0 and all(c in top.output for c in ("sync", "push", "poll"))
    push = runner.invoke(plex_app, ["push", "--help"])
    assert push.exit_code == 0 and "--from" in push.output and "recommendations" in push.output
