"""A home folder for the Plex push/poll tests: a small ingested graph whose movies partly match
the Plex stand-in's (by IMDb id), a Plex sync on top, and the service's Redis settings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from marquee.home import Home
from serving.plex.cli import plex_app
from tests.serving.plex.plex_test_server import PlexTestServer

# key, title, year, imdb, genres; 862 and 949 are in Plex (Toy Story, Heat), the rest are not
MOVIES = [
    ("862", "Toy Story", 1995, "tt0114709", ["animation", "comedy"]),
    ("949", "Heat", 1995, "tt0113277", ["crime"]),
    ("348", "Alien", 1979, "tt0078748", ["sci_fi", "horror"]),
    ("1091", "The Thing", 1982, "tt0084787", ["sci_fi", "horror"]),
]
GENRES = {
    "animation": "Animation",
    "comedy": "Comedy",
    "crime": "Crime",
    "sci_fi": "Sci-Fi",
    "horror": "Horror",
}
RATINGS = [  # Alien most popular, then Heat, The Thing, Toy Story
    ("u1", "348", 5.0),
    ("u2", "348", 5.0),
    ("u3", "348", 4.5),
    ("u1", "949", 5.0),
    ("u2", "949", 4.0),
    ("u3", "1091", 4.0),
]
NOT_IN_PLEX = {"348", "1091"}


def ingest_graph(home: Home) -> None:
    """Save the small graph into the home's embedded store."""
    batch = GraphBatch()
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": [m[0] for m in MOVIES],
                "title": [m[1] for m in MOVIES],
                "year": [m[2] for m in MOVIES],
                "imdb_id": [m[3] for m in MOVIES],
                "tmdb_id": [int(m[0]) for m in MOVIES],
                "genres": ["|".join(GENRES[g] for g in m[4]) for m in MOVIES],
            }
        ),
    )
    batch.add_vertices(
        VertexKind.GENRE, pd.DataFrame({"key": list(GENRES), "name": list(GENRES.values())})
    )
    batch.add_edges(
        EdgeKind.IN_GENRE, pd.DataFrame([{"src": m[0], "dst": g} for m in MOVIES for g in m[4]])
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
    home.ensure()
    store = LocalGraphStore.open(home.graph_dir)
    store.upsert(batch)
    store.close()


def redis_url(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def plex_env(
    monkeypatch: pytest.MonkeyPatch,
    plex: PlexTestServer,
    home: Home,
    cp: tuple[redis.Redis, str] | None,
    tv_url: str | None = None,
) -> None:
    """Plex and service settings for the CLI: the given Redis, else the embedded one; plex.tv
    at ``tv_url`` (a stand-in), else unreachable."""
    for name in ("MARQUEE_ARANGO_URL", "MARQUEE_AB", "MLFLOW_TRACKING_URI", "MARQUEE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLEX_URL", plex.url)
    monkeypatch.setenv("PLEX_TOKEN", plex.token)
    if tv_url is None:
        monkeypatch.setenv("PLEX_TV_URL", "http://127.0.0.1:9")  # plex.tv unreachable: owner only
    else:
        monkeypatch.setenv("PLEX_TV_URL", tv_url)
    if cp is None:
        monkeypatch.delenv("MARQUEE_REDIS_URL", raising=False)
        monkeypatch.setenv("MARQUEE_REDIS_PREFIX", "marquee")
    else:
        monkeypatch.setenv("MARQUEE_REDIS_URL", redis_url(cp[0]))
        monkeypatch.setenv("MARQUEE_REDIS_PREFIX", cp[1])


def synced_home(tmp_path: Path) -> Home:
    """A home with the graph ingested and the Plex stand-in synced into it."""
    home = Home(tmp_path / "home")
    ingest_graph(home)
    result = CliRunner().invoke(plex_app, ["sync"], obj=home)
    assert result.exit_code == 0, result.output
    return home
