"""Fixtures: a running Plex stand-in with sample data, a real plexapi connection to it, a graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plexapi.server import PlexServer

from features.graph.local import LocalGraphStore
from serving.plex.client import PlexSettings, connect
from tests.serving.plex.plex_test_server import PlexTestServer, sample_server


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
