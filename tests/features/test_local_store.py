"""LocalGraphStore specifics: saving, loading, atomic saves, old or damaged folders, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import features.graph.local_files as local_files
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.local_files import MANIFEST
from features.graph.local_queries import _top_candidates
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStoreError
from features.importers.synthetic import generate_synthetic
from tests.features.test_store_contract import assert_same_snapshot, snapshot


def answers(store: LocalGraphStore) -> tuple[object, ...]:
    return (
        store.khop_scores("ann"),
        store.khop_scores("bob", hops=2),
        store.co_people("2", min_shared=1),
        store.user_affinity("ann"),
        store.explain("bob", "3"),
        store.neighbours(VertexKind.USER, "ann", EdgeKind.RATED),
    )


def unicode_batch() -> GraphBatch:
    batch = GraphBatch()
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": ["10"],
                "title": ["Le Fabuleux Destin d'Amélie Poulain"],
                "summary": ["Ünïcödé ✓ " * 500],  # long: one row must not widen the others
            }
        ),
    )
    return batch


def test_save_and_load_round_trip(tmp_path: Path, tiny_batch: GraphBatch) -> None:
    path = tmp_path / "graph"
    store = LocalGraphStore(path)
    store.upsert(tiny_batch)
    store.upsert(unicode_batch())
    reopened = LocalGraphStore.open(path)
    assert reopened.counts() == store.counts()
    assert_same_snapshot(snapshot(store), snapshot(reopened))
    assert answers(reopened) == answers(store)
    amelie = reopened.vertex(VertexKind.MOVIE, "10")
    assert amelie is not None and amelie["summary"] == "Ünïcödé ✓ " * 500
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["format"] == "marquee-local-graph" and manifest["version"] == 1
    assert [p.name for p in path.glob("data-*")] == [manifest["data"]]


def test_in_memory_store_saves_where_asked(tmp_path: Path, tiny_batch: GraphBatch) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    with pytest.raises(GraphStoreError, match="no folder"):
        store.save()
    store.save(tmp_path / "elsewhere")
    assert_same_snapshot(snapshot(store), snapshot(LocalGraphStore.open(tmp_path / "elsewhere")))


def test_absent_folder_opens_empty_and_is_created_on_upsert(
    tmp_path: Path, tiny_batch: GraphBatch
) -> None:
    path = tmp_path / "not" / "yet"
    store = LocalGraphStore.open(path)
    assert set(store.counts().values()) == {0}
    assert not path.exists()
    store.upsert(tiny_batch)
    assert (path / MANIFEST).exists()


def test_failed_save_keeps_the_previous_graph(
    tmp_path: Path, tiny_batch: GraphBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "graph"
    store = LocalGraphStore(path)
    store.upsert(tiny_batch)
    before = snapshot(store)
    real_write = local_files.write_npy
    calls = {"n": 0}

    def crash_midway(target: Path, array: object) -> None:
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError("disk full (simulated)")
        real_write(target, array)  # type: ignore[arg-type]

    monkeypatch.setattr(local_files, "write_npy", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        store.upsert(unicode_batch())
    assert store.vertex(VertexKind.MOVIE, "10") is None  # memory unchanged
    assert_same_snapshot(before, snapshot(store))
    monkeypatch.undo()
    assert_same_snapshot(before, snapshot(LocalGraphStore.open(path)))  # disk unchanged
    assert len(list(path.glob("data-*"))) == 1  # the half-written folder was removed


def test_crash_leftovers_are_ignored_then_cleaned(tmp_path: Path, tiny_batch: GraphBatch) -> None:
    path = tmp_path / "graph"
    LocalGraphStore(path).upsert(tiny_batch)
    (path / "data-deadbeef0000").mkdir()  # a crash before the manifest was replaced
    (path / "data-deadbeef0000" / "movies.key.utf8.npy").write_bytes(b"garbage")
    (path / f".{MANIFEST}.data-deadbeef0000.tmp").write_text("{")
    store = LocalGraphStore.open(path)
    assert store.counts()["movies"] == 9
    store.upsert(unicode_batch())
    assert len(list(path.glob("data-*"))) == 1
    assert not list(path.glob(".*.tmp"))


def test_older_schema_columns_are_filled_with_defaults(
    tmp_path: Path, tiny_batch: GraphBatch
) -> None:
    path = tmp_path / "graph"
    LocalGraphStore(path).upsert(tiny_batch)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["vertices"]["movies"]["columns"].remove("studio")  # saved before "studio" existed
    manifest["edges"]["rated"]["columns"].remove("timestamp")
    (path / MANIFEST).write_text(json.dumps(manifest))
    data = path / manifest["data"]
    for name in ("movies.studio.utf8.npy", "movies.studio.offsets.npy", "rated.timestamp.npy"):
        (data / name).unlink()
    store = LocalGraphStore.open(path)
    alien = store.vertex(VertexKind.MOVIE, "1")
    assert alien is not None and (alien["title"], alien["studio"]) == ("Alien", "")
    assert set(store.edge_frame(EdgeKind.RATED)["timestamp"]) == {0}


def _edit_manifest(path: Path, change: str) -> None:
    manifest_path = path / MANIFEST
    if change == "not json":
        manifest_path.write_text("{not json")
        return
    manifest = json.loads(manifest_path.read_text())
    if change == "other format":
        manifest["format"] = "something-else"
    elif change == "old version":
        manifest["version"] = 0
    elif change == "short column":
        manifest["vertices"]["movies"]["count"] = 10
    manifest_path.write_text(json.dumps(manifest))


BAD_FOLDERS = [
    ("not json", "manifest.json: not a readable graph manifest"),
    ("other format", "manifest.json: not a marquee-local-graph manifest"),
    ("old version", "manifest.json: graph format version 0 is not supported"),
    ("short column", "manifest.json: movies.key holds 9 rows but 10 were expected"),
]


@pytest.mark.parametrize(("change", "message"), BAD_FOLDERS)
def test_bad_saved_folders_are_refused_clearly(
    tmp_path: Path, tiny_batch: GraphBatch, change: str, message: str
) -> None:
    path = tmp_path / "graph"
    LocalGraphStore(path).upsert(tiny_batch)
    _edit_manifest(path, change)
    with pytest.raises(GraphStoreError, match=message.replace(".", r"\.")) as err:
        LocalGraphStore.open(path)
    assert str(path) in str(err.value)


def test_khop_sees_upserts(tiny_batch: GraphBatch) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    weights = {EdgeKind.DIRECTED: 1.0}
    assert store.khop_scores("ann", hops=1, weights=weights) == [("2", 1.0), ("4", 1.0)]
    batch = GraphBatch()
    batch.add_edges(EdgeKind.DIRECTED, pd.DataFrame({"src": ["ridley_scott"], "dst": ["9"]}))
    store.upsert(batch)  # Scott now also directed Moon: cached operators must not be reused
    assert store.khop_scores("ann", hops=1, weights=weights) == [("2", 1.0), ("4", 1.0), ("9", 1.0)]


BAD_QUERIES = [
    (
        lambda s: s.khop_scores("ann", weights={EdgeKind.RATED: 1.0}),
        "khop weights: edge kind 'rated' cannot be followed",
    ),
    (
        lambda s: s.khop_scores("ann", weights={EdgeKind.DIRECTED: float("nan")}),
        "khop weights: weight of 'directed' is not finite",
    ),
    (lambda s: s.khop_scores("ann", limit=-1), "khop_scores: limit must be >= 0"),
    (lambda s: s.co_people("1", min_shared=0), "co_people: min_shared must be >= 1"),
    (
        lambda s: s.neighbours(VertexKind.MOVIE, "1", EdgeKind.DIRECTED, "up"),
        "neighbours: direction must be 'out', 'in' or 'any', got 'up'",
    ),
]


@pytest.mark.parametrize(("call", "message"), BAD_QUERIES)
def test_bad_queries_are_refused(tiny_batch: GraphBatch, call: object, message: str) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    with pytest.raises(ValueError, match=message):
        call(store)  # type: ignore[operator]


def test_khop_limit_matches_the_full_ranking_on_a_larger_graph() -> None:
    # Large enough (2000 movies) for the sampled-threshold shortcut to be taken.
    store = LocalGraphStore()
    store.upsert(generate_synthetic(movies=2000, people=3000, users=20, ratings_per_user=30))
    for user in ("u1", "u2", "u3", "u7"):
        full = store.khop_scores(user, hops=2)
        assert len(full) > 1000
        for limit in (1, 5, 60, 124):
            assert store.khop_scores(user, hops=2, limit=limit) == full[:limit]


@pytest.mark.parametrize(
    ("values", "limit", "expected"),
    [
        # three scores tie for the top two places: all three are candidates
        ([0.0] * 50 + [1.0] * 40 + [2.0] * 3, 2, [90, 91, 92]),
        # the sampled guess finds too few: every nonzero score is a candidate
        ([0.0] * 50 + [1.0] * 40 + [2.0], 2, list(range(50, 91))),
        ([0.0] * 90 + [3.0, 1.0, 2.0], 2, [90, 91, 92]),  # fewer nonzero than the sample needs
        ([5.0] * 100, 3, list(range(100))),
    ],
)
def test_top_candidates_keeps_every_top_score(
    values: list[float], limit: int, expected: list[int]
) -> None:
    got = _top_candidates(np.asarray(values), limit)
    assert got.tolist() == expected


def _every_explanation(store: LocalGraphStore, users: list[str], movies: list[str]) -> None:
    for user in users:
        got = store.explain_many(user, [*movies, "no-such-movie"])
        assert got[-1] is None
        assert got[:-1] == [store.explain(user, m) for m in movies], user


def test_explain_many_equals_explain_on_the_tiny_graph(tiny_batch: GraphBatch) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    users = store.vertex_frame(VertexKind.USER)["key"].astype(str).tolist()
    movies = store.vertex_frame(VertexKind.MOVIE)["key"].astype(str).tolist()
    _every_explanation(store, users, movies)  # liked movies too: explained by other seeds
    assert any(e is not None for e in store.explain_many(users[0], movies))


def test_explain_many_equals_explain_on_a_larger_graph() -> None:
    store = LocalGraphStore()
    store.upsert(generate_synthetic(movies=600, people=200, users=8, ratings_per_user=40))
    movies = store.vertex_frame(VertexKind.MOVIE)["key"].astype(str).tolist()
    found = store.explain_many("u1", movies)
    assert {e.edge for e in found if e is not None} >= {EdgeKind.SIMILAR_TO, EdgeKind.DIRECTED}
    _every_explanation(store, [f"u{i}" for i in range(1, 9)], movies[::3])
    assert store.explain_many("u1", movies * 12) == found * 12  # a long list: np.isin's branch


def test_explanations_name_titles_and_people_or_else_their_keys(tmp_path: Path) -> None:
    """Titles and names as the graph holds them, the key where one is empty: in memory and
    read from a saved graph's undecoded strings, several explanations of one slate sharing
    the same columns."""
    batch = GraphBatch()
    titles = {"a": "Alpha", "b": "", "c": "Gamma", "d": "Delta"}
    batch.add_vertices(
        VertexKind.MOVIE, pd.DataFrame({"key": list(titles), "title": list(titles.values())})
    )
    batch.add_vertices(VertexKind.PERSON, pd.DataFrame({"key": ["p1", "p2"], "name": ["", "Pat"]}))
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["u"], "name": ["U"]}))
    directed = {"src": ["p1", "p1", "p2", "p2"], "dst": ["a", "b", "a", "c"]}
    batch.add_edges(EdgeKind.DIRECTED, pd.DataFrame(directed))
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame({"src": ["u"], "dst": ["a"], "rating": [5.0], "timestamp": [1.0]}),
    )
    store = LocalGraphStore(tmp_path / "graph")
    store.upsert(batch)
    for s in (store, LocalGraphStore.open(tmp_path / "graph")):
        b, c, d = s.explain_many("u", ["b", "c", "d"])
        assert d is None
        assert b is not None and c is not None
        assert (b.movie_title, b.seed, b.seed_title, b.via_key, b.via_name) == (
            "b",
            "a",
            "Alpha",
            "p1",
            "p1",
        )
        assert (c.movie_title, c.seed_title, c.via_key, c.via_name) == (
            "Gamma",
            "Alpha",
            "p2",
            "Pat",
        )
        assert [b, c] == [s.explain("u", m) for m in ("b", "c")]


def test_explain_many_refuses_an_unknown_user(tiny_batch: GraphBatch) -> None:
    store = LocalGraphStore()
    store.upsert(tiny_batch)
    with pytest.raises(KeyError, match="no users vertex with key 'nobody'"):
        store.explain_many("nobody", ["1"])
