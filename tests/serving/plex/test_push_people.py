"""`marquee plex push` for two people (alice owns the server, bob is a friend), against the PMS
and plex.tv stand-ins: each playlist under its person's own token, collections hidden from the
other by sharing filters, lists updated in place in Marquee's order, filled to the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from plexapi.server import PlexServer
from typer.testing import CliRunner

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from marquee.home import Home
from serving.plex.cli import plex_app
from serving.plex.placeholders import MARKER
from tests.serving.plex.plex_test_server import FakeMovie, PlexTestServer
from tests.serving.plex.plextv_test_server import PlexTvTestServer
from tests.serving.plex.service_home import ingest_graph, plex_env

ALIEN_OVERVIEW = "The crew of the Nostromo answers a distress call."
EXTRA = [(f"{9000 + i}", f"Extra {i}", 2000 + i, f"tt90000{i:02d}") for i in range(6)]


@pytest.fixture
def tv(plex: PlexTestServer) -> Iterator[PlexTvTestServer]:
    server = PlexTvTestServer(plex)
    server.add_user(2, "bob")
    with server:
        yield server


def home_with_library(tmp_path: Path, plex: PlexTestServer) -> Home:
    """The small graph plus six movies Plex holds (rated a little, so popularity ranks them
    after the two popular movies Plex lacks); then a sync."""
    for i, (_key, title, year, imdb) in enumerate(EXTRA):
        plex.movies[200 + i] = FakeMovie(200 + i, title, year, guids=[f"imdb://{imdb}"])
    home = Home(tmp_path / "home")
    ingest_graph(home)
    batch = GraphBatch()
    movies = [*EXTRA, ("348", "Alien", 1979, "tt0078748")]
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": [m[0] for m in movies],
                "title": [m[1] for m in movies],
                "year": [m[2] for m in movies],
                "imdb_id": [m[3] for m in movies],
                "tmdb_id": [int(m[0]) for m in movies],
                "genres": ["" for _ in EXTRA] + ["Sci-Fi|Horror"],
                "summary": ["" for _ in EXTRA] + [ALIEN_OVERVIEW],
            }
        ),
    )
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            [
                {"src": "u1", "dst": m[0], "rating": 3.0, "timestamp": 5_000 + i}
                for i, m in enumerate(EXTRA)
            ]
        ),
    )
    store = LocalGraphStore.open(home.graph_dir)
    store.upsert(batch)
    store.close()
    result = CliRunner().invoke(plex_app, ["sync"], obj=home)
    assert result.exit_code == 0, result.output
    return home


def push(home: Home, *args: str) -> str:
    result = CliRunner().invoke(plex_app, ["push", *args], obj=home)
    assert result.exit_code == 0, result.output
    return result.output


def collections(plex: PlexTestServer) -> dict[str, tuple[int, list[int], int, list[str]]]:
    return {c.title: (c.key, plex.ordered(c), c.sort, c.labels) for c in plex.collections.values()}


def test_collections_per_person_in_order_and_stable(
    plex: PlexTestServer,
    tv: PlexTvTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp, tv.url)
    home = home_with_library(tmp_path, plex)
    out = push(home, "--limit", "5")
    assert "Recommended for alice: 5 movies" in out  # filled to the limit from the library
    first = collections(plex)
    assert set(first) == {"Recommended for alice", "Recommended for bob"}
    key, order, sort, labels = first["Recommended for alice"]
    assert (sort, labels) == (2, ["marquee-for-alice"])  # custom order, labelled for alice
    assert len(order) == 5 and 101 not in order  # alice watched Toy Story
    assert order[0] == 102  # Heat: the most popular movie Plex holds that alice has not seen
    summary = plex.collections[key].summary
    assert "for alice" in summary and "policy popularity" in summary and "refreshed" in summary

    # bob's sharing filter hides alice's collection: with his own token he lists only his
    assert tv.users[2].filter_movies == "label!=marquee-for-alice"
    bob = PlexServer(plex.url, "server-token-bob", timeout=5)
    (movies,) = [s for s in bob.library.sections() if s.title == "Movies"]
    assert [c.title for c in movies.collections()] == ["Recommended for bob"]
    alice_key = first["Recommended for alice"][0]
    assert alice_key not in {c.ratingKey for c in movies.collections()}

    # a second push keeps every ratingKey and the custom order
    push(home, "--limit", "5")
    assert collections(plex) == first
    assert len([p for m, p, _ in plex.requests if m == "POST" and p == "/library/collections"]) == 2


def test_playlists_under_each_person_s_own_token(
    plex: PlexTestServer,
    tv: PlexTvTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp, tv.url)
    home = home_with_library(tmp_path, plex)
    push(home, "--mode", "playlist", "--limit", "4")
    owners = {p.title: p.owner for p in plex.playlists.values()}
    assert owners == {"Recommended for alice": 1, "Recommended for bob": 2}
    bob = PlexServer(plex.url, "server-token-bob", timeout=5)
    alice = PlexServer(plex.url, plex.token, timeout=5)
    assert [p.title for p in bob.playlists()] == ["Recommended for bob"]
    assert [p.title for p in alice.playlists()] == ["Recommended for alice"]
    (mine,) = bob.playlists()
    assert len(mine.items()) == 4 and "for bob" in mine.summary
    keys = {p.title: (p.key, list(p.items)) for p in plex.playlists.values()}
    push(home, "--mode", "playlist", "--limit", "4")
    assert {p.title: (p.key, list(p.items)) for p in plex.playlists.values()} == keys


def test_refused_filters_fall_back_to_playlists(
    plex: PlexTestServer,
    tv: PlexTvTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    tv.forbid_filters = True
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp, tv.url)
    home = home_with_library(tmp_path, plex)
    out = push(home, "--limit", "3")
    assert "did not allow a sharing filter for bob" in " ".join(out.split())
    assert [c.title for c in plex.collections.values()] == ["Recommended for alice"]
    assert [(p.title, p.owner) for p in plex.playlists.values()] == [("Recommended for bob", 2)]


def test_placeholders_per_person_described_through_the_api(
    plex: PlexTestServer,
    tv: PlexTvTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_cp: tuple[redis.Redis, str],
) -> None:
    plex_env(monkeypatch, plex, Home(tmp_path / "home"), server_cp, tv.url)
    home = home_with_library(tmp_path, plex)
    folder = tmp_path / "placeholders"
    for user in ("alice", "bob"):  # the black clip ffmpeg would make (Plex never plays it here)
        cache = folder / user / ".marquee-cache"
        cache.mkdir(parents=True)
        (cache / "black-1s.mp4").write_bytes(b"not really a video")
    out = push(home, "--limit", "5", "--k", "5", "--placeholders", str(folder))
    assert "placeholders: 4 written, 0 removed, 4 described through Plex's API" in out
    for user, other in (("alice", "bob"), ("bob", "alice")):
        names = sorted(p.name for p in (folder / user).iterdir() if not p.name.startswith("."))
        assert names == ["Alien (1979) {imdb-tt0078748}", "The Thing (1982) {imdb-tt0084787}"]
        for name in names:
            marker = json.loads((folder / user / name / MARKER).read_text())
            assert marker["audience"] == user and other not in json.dumps(marker)
            assert 0.5 < marker["score"] <= 1.0  # a rank percentile, not a capped raw score
    (section,) = [k for k, s in plex.sections.items() if s["title"] == "Recommendations"]
    placeholders = [m for m in plex.movies.values() if m.section == section]
    assert len(placeholders) == 4
    for m in placeholders:
        user = Path(m.file).parent.parent.name
        assert m.labels == [f"marquee-for-{user}"]
        assert f"Recommended for {user}" in m.summary and m.tagline.endswith(f"match for {user}")
        assert ("bob" if user == "alice" else "alice") not in m.summary + m.tagline
    alien = next(m for m in placeholders if m.title == "Alien" and "/alice/" in m.file)
    assert alien.summary.startswith(ALIEN_OVERVIEW)

    # bob, with his own token, sees only his placeholders; the push never wrote into them
    bob = PlexServer(plex.url, "server-token-bob", timeout=5)
    (recs,) = [s for s in bob.library.sections() if s.title == "Recommendations"]
    assert sorted(m.title for m in recs.all()) == ["Alien", "The Thing"]
    assert {c.section for c in plex.collections.values()} == {1}

    # a second push rewrites nothing and edits nothing
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    edits = len(plex.edits)
    out = push(home, "--limit", "5", "--k", "5", "--placeholders", str(folder))
    assert "placeholders: 0 written, 0 removed, 0 described" in out
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    assert len(plex.edits) == edits
