"""TMDB enrichment against a local server speaking TMDB v3's JSON: people, keywords and
attributes land on graph movies; 429 Retry-After is honoured; a bad key writes nothing; an
interrupted run resumes; later runs refetch what /movie/changes (paged) lists."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.importers.merge import merge_with_existing
from features.importers.movielens import load_movielens
from features.importers.tmdb import TmdbCache, fetch, graph_tmdb_ids, tmdb_batch
from features.importers.tmdb_client import TmdbAuthError, TmdbClient, TmdbError
from marquee.cli import app
from tests.features.importers.conftest import LATEST, write_folder
from tests.features.importers.tmdb_test_server import TmdbTestServer, movie_json

KEY = "tmdb-key-0123456789"


@pytest.fixture
def tmdb() -> Iterator[TmdbTestServer]:
    with TmdbTestServer(KEY) as server:
        server.movies[862] = movie_json(862, "Toy Story")
        server.movies[949] = movie_json(
            949,
            "Heat",
            runtime=170,
            production_companies=[{"id": 12, "name": "Forward Pass", "origin_country": "US"}],
            credits={
                "cast": [{"id": 1158, "name": "Al Pacino", "order": 0, "character": "Hanna"}],
                "crew": [{"id": 638, "name": "Michael Mann", "job": "Director"}],
            },
            keywords={"keywords": [{"id": 1, "name": "heist"}]},
        )
        yield server  # 9087 (movie 2 in LATEST) is unknown to this TMDB: 404


@pytest.fixture
def store(tmp_path: Path) -> LocalGraphStore:
    store = LocalGraphStore.open(tmp_path / "graph")
    store.upsert(load_movielens(write_folder(tmp_path / "ml", LATEST)))
    return store


def _run(
    server: TmdbTestServer, store: LocalGraphStore, cache: TmdbCache, **kw: object
) -> tuple[object, list[float]]:
    waits: list[float] = []
    movies = graph_tmdb_ids(store)
    with TmdbClient(KEY, server.url, sleep=waits.append) as client:
        report = fetch(client, cache, movies["tmdb_id"], **kw)  # type: ignore[arg-type]
    store.upsert(merge_with_existing(tmdb_batch(movies, cache.load()), store))
    return report, waits


def _movie_paths(server: TmdbTestServer) -> list[str]:
    return [p for p in server.requests if p != "/3/movie/changes"]


def test_people_keywords_and_attributes(
    tmdb: TmdbTestServer, store: LocalGraphStore, tmp_path: Path
) -> None:
    assert store.user_affinity("1").people == {}  # MovieLens alone has no people
    report, _ = _run(tmdb, store, TmdbCache(tmp_path / "tmdb"))
    assert (report.wanted, report.fetched, report.unknown) == (3, 3, 1)  # type: ignore[attr-defined]
    acted = store.edge_frame(EdgeKind.ACTED_IN)
    assert sorted(zip(acted["src"], acted["dst"], acted["order"], strict=True)) == [
        ("al_pacino", "4", 0),
        ("tim_allen", "1", 1),
        ("tom_hanks", "1", 0),
    ]
    pairs = {
        kind: sorted(zip(f["src"], f["dst"], strict=True))
        for kind in (EdgeKind.DIRECTED, EdgeKind.WROTE, EdgeKind.COMPOSED, EdgeKind.MADE_BY)
        for f in [store.edge_frame(kind)]
    }
    assert pairs[EdgeKind.DIRECTED] == [("john_lasseter", "1"), ("michael_mann", "4")]
    assert pairs[EdgeKind.WROTE] == [("andrew_stanton", "1")]
    assert pairs[EdgeKind.COMPOSED] == [("randy_newman", "1")]
    assert pairs[EdgeKind.MADE_BY] == [("1", "pixar"), ("4", "forward_pass")]
    tags = set(store.edge_frame(EdgeKind.TAGGED)["dst"])
    assert {"jealousy", "toy", "heist"} <= tags
    toy = store.vertex(VertexKind.MOVIE, "1")
    assert toy is not None
    assert toy["title"] == "Toy Story" and toy["year"] == 1995  # MovieLens' values kept
    assert toy["summary"] == "The story of Toy Story."
    assert toy["poster_url"] == "https://image.tmdb.org/t/p/w500/poster862.jpg"
    assert (toy["runtime"], toy["original_language"]) == (81, "en")
    people = store.vertex(VertexKind.PERSON, "tom_hanks")
    assert people is not None and people["name"] == "Tom Hanks"
    # User 1 rated Toy Story 4.0: the people affinity is no longer empty.
    assert store.user_affinity("1").people["tom_hanks"] > 0


def test_rate_limit_waits_as_told(
    tmdb: TmdbTestServer, store: LocalGraphStore, tmp_path: Path
) -> None:
    tmdb.throttle = ["3", None, "0.5"]
    report, waits = _run(tmdb, store, TmdbCache(tmp_path / "tmdb"))
    assert waits == [3.0, 2.0, 0.5]  # Retry-After; without one, backoff 2**attempt
    assert report.fetched == 3  # type: ignore[attr-defined]
    assert len(_movie_paths(tmdb)) == 6  # three movies, three refused attempts


def test_bad_key_is_a_clear_error_and_writes_nothing(
    tmdb: TmdbTestServer, store: LocalGraphStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-key-987654321"
    cache = TmdbCache(tmp_path / "tmdb")
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(TmdbAuthError) as info,
        TmdbClient(secret, tmdb.url) as client,
    ):
        fetch(client, cache, [862, 949])
    assert str(info.value) == (
        "TMDB refused the API key (401: Invalid API key: You must be granted a valid key.)"
    )
    assert secret not in caplog.text and secret not in str(info.value)
    assert not cache.folder.exists()  # nothing written


def test_interrupted_run_resumes_where_it_stopped(
    tmdb: TmdbTestServer, store: LocalGraphStore, tmp_path: Path
) -> None:
    cache = TmdbCache(tmp_path / "tmdb")
    tmdb.fail_after = 1  # the second movie fails
    with (
        pytest.raises(TmdbError, match=r"^TMDB answered 500 for /movie/949: Internal error\.$"),
        TmdbClient(KEY, tmdb.url, sleep=lambda s: None) as client,
    ):
        fetch(client, cache, [862, 949, 9087])
    assert list(cache.load()) == [862]
    assert cache.last_run() is None  # not complete
    tmdb.fail_after = None
    tmdb.requests.clear()
    report, _ = _run(tmdb, store, cache)
    assert _movie_paths(tmdb) == ["/3/movie/949", "/3/movie/9087"]  # only what was missing
    assert (report.fetched, report.cached) == (2, 1)  # type: ignore[attr-defined]
    assert cache.last_run() is not None


def test_limit_then_resume(tmdb: TmdbTestServer, store: LocalGraphStore, tmp_path: Path) -> None:
    cache = TmdbCache(tmp_path / "tmdb")
    _run(tmdb, store, cache, limit=1)
    assert cache.last_run() is None and len(cache.load()) == 1
    _run(tmdb, store, cache)
    assert len(cache.load()) == 3 and cache.last_run() is not None


def test_later_runs_refetch_changed_movies_over_every_page(
    tmdb: TmdbTestServer, store: LocalGraphStore, tmp_path: Path
) -> None:
    cache = TmdbCache(tmp_path / "tmdb")
    _run(tmdb, store, cache, today=date(2026, 11, 20))
    tmdb.requests.clear()
    tmdb.queries.clear()
    tmdb.changes = [5, 862, 6, 7, 949]  # three pages of two
    tmdb.movies[862] = movie_json(862, "Toy Story", runtime=82)
    report, _ = _run(tmdb, store, cache, today=date(2026, 12, 1))
    pages = [q for p, q in zip(tmdb.requests, tmdb.queries, strict=True) if p.endswith("changes")]
    assert [q["page"] for q in pages] == ["1", "2", "3"]
    assert pages[0]["start_date"] == "2026-11-20" and pages[0]["end_date"] == "2026-12-01"
    assert _movie_paths(tmdb) == ["/3/movie/862", "/3/movie/949"]
    assert report.changed == 2  # type: ignore[attr-defined]
    toy = store.vertex(VertexKind.MOVIE, "1")
    assert toy is not None and toy["runtime"] == 82
    assert not store.upsert(
        merge_with_existing(tmdb_batch(graph_tmdb_ids(store), cache.load()), store)
    ).changed


def test_damaged_last_line_is_skipped(tmp_path: Path) -> None:
    cache = TmdbCache(tmp_path / "tmdb")
    cache.append(862, {"id": 862})
    with cache.movies_path.open("a") as fh:
        fh.write('{"id": 949, "mov')  # the write a kill interrupted
    assert cache.load() == {862: {"id": 862}}


def _cli(home: Path, server: TmdbTestServer, key: str, *args: str):
    env = {"TMDB_API_KEY": key, "TMDB_API_URL": server.url}
    return CliRunner().invoke(app, ["--home", str(home), "ingest", "tmdb", *args], env=env)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    home = tmp_path / "home"
    ml = write_folder(tmp_path / "ml", LATEST)
    result = CliRunner().invoke(app, ["--home", str(home), "ingest", "movielens", str(ml)])
    assert result.exit_code == 0, result.output
    return home


def test_cli_bad_key_is_one_line_and_writes_nothing(tmdb: TmdbTestServer, home: Path) -> None:
    before = LocalGraphStore.open(home / "graph").counts()
    result = _cli(home, tmdb, "not-the-key-555")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: TMDB refused the API key (401: Invalid API key: You must be granted a valid key.)"
    )
    assert "not-the-key-555" not in result.output
    assert not (home / "tmdb").exists()
    assert LocalGraphStore.open(home / "graph").counts() == before


def test_cli_enriches_then_resumes(tmdb: TmdbTestServer, home: Path) -> None:
    first = _cli(home, tmdb, KEY, "--limit", "2")
    assert first.exit_code == 0, first.output
    assert (
        "TMDB: 2 movies fetched (0 changed since the last run, 0 unknown to TMDB)" in first.stdout
    )
    assert "1 left for the next run." in first.stdout
    assert KEY not in first.output
    second = _cli(home, tmdb, KEY)
    assert second.exit_code == 0, second.output
    assert "TMDB: 1 movies fetched" in second.stdout and "2 already kept" in second.stdout
    counts = LocalGraphStore.open(home / "graph").counts()
    assert counts["acted_in"] == 3 and counts["composed"] == 1
