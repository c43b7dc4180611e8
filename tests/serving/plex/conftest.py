"""Fixtures: a running Plex stand-in with sample data, a real plexapi connection to it, a graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plexapi.server import PlexServer

from features.graph.local import LocalGraphStore
from serving.plex.client import PlexSettings, connect
from tests.serving.plex.plex_test_server import PlexTestServer, sample_server


@pytest.fixture(autouse=True)
def no_real_plextv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the real plex.tv: unless a test points PLEX_TV_URL at the plex.tv
    stand-in, it is an address that refuses connections (pushes then go as the owner)."""
    monkeypatch.setenv("PLEX_TV_URL", "http://127.0.0.1:9")


@pytest.fixture
def plex() -> Iterator[PlexTestServer]:
    server = sample_server()
    with server:
        yield server


@pytest.fixture
def server(plex: PlexTestServer) -> PlexServer:
    return connect(PlexSettings(plex.url, plex.token, timeout=5.0))


@pytest.fixture
def store() -> LocalGraphStore:
    return LocalGraphStore()


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "plex" / "state.json"
