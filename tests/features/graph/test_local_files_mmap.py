"""The embedded store's saved graph is memory-mapped on load: nothing is read or decoded until a
query needs it, every process shares the pages, and upserts still work on a mapped graph."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.local_files import MANIFEST
from features.graph.local_state import LazyColumns, StringColumn, rank_by_key
from features.graph.schema import EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic
from features.npz import is_mapped
from tests.features.test_store_contract import assert_same_snapshot, snapshot


def _saved(tmp_path: Path, batch: GraphBatch) -> tuple[Path, LocalGraphStore]:
    path = tmp_path / "graph"
    store = LocalGraphStore(path)
    store.upsert(batch)
    return path, store


def test_a_loaded_graph_is_mapped_and_left_encoded(tmp_path: Path, tiny_batch: GraphBatch) -> None:
    path, _ = _saved(tmp_path, tiny_batch)
    state = LocalGraphStore.open(path).state
    rated = state.edges[EdgeKind.RATED]
    for arr in (rated.indptr, rated.indices, rated.columns["rating"]):
        assert is_mapped(arr) and not arr.flags.writeable
    movies = state.vertices[VertexKind.MOVIE]
    assert isinstance(movies.key_source, StringColumn)
    assert isinstance(movies.columns, LazyColumns)
    assert isinstance(movies.columns.raw("title"), StringColumn)
    assert "keys" not in movies.__dict__  # not decoded yet
    assert is_mapped(movies.saved_rank)
    assert movies.key_rank.tolist() == rank_by_key(movies.keys).tolist()
    assert movies.columns["title"][movies.find("1")] == "Alien"


def test_upserts_on_a_mapped_graph_save_and_agree(tmp_path: Path, tiny_batch: GraphBatch) -> None:
    batch = generate_synthetic(movies=300, people=400, users=40, seed=3)
    path, memory_store = _saved(tmp_path, batch)
    mapped = LocalGraphStore.open(path)
    more = generate_synthetic(movies=320, people=420, users=45, seed=4)
    assert mapped.upsert(more).changed
    memory_store.upsert(more)
    assert_same_snapshot(snapshot(mapped), snapshot(memory_store))
    reopened = LocalGraphStore.open(path)
    assert_same_snapshot(snapshot(reopened), snapshot(memory_store))
    for user in ("u1", "u7", "u30"):
        assert reopened.khop_scores(user, limit=50) == memory_store.khop_scores(user, limit=50)


def test_a_reader_keeps_its_mapping_when_a_writer_saves(
    tmp_path: Path, tiny_batch: GraphBatch
) -> None:
    path, _ = _saved(tmp_path, tiny_batch)
    reader = LocalGraphStore.open(path)
    before = reader.khop_scores("ann")
    writer = LocalGraphStore.open(path)
    writer.upsert(generate_synthetic(movies=50, people=60, users=5, seed=1))
    assert len(list(path.glob("data-*"))) == 1  # the reader's data folder is gone from disk
    assert reader.khop_scores("ann") == before  # ... but still mapped and readable
    old, new = reader.vertex(VertexKind.MOVIE, "3"), writer.vertex(VertexKind.MOVIE, "3")
    assert old is not None and new is not None
    assert old["title"] == "The Terminator" != new["title"]  # decoded from the removed files


def test_graphs_saved_without_key_ranks_still_load(tmp_path: Path, tiny_batch: GraphBatch) -> None:
    path, store = _saved(tmp_path, tiny_batch)
    manifest_path = path / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    for info in manifest["vertices"].values():
        info.pop("key_rank")
    manifest_path.write_text(json.dumps(manifest))
    for f in (path / manifest["data"]).glob("*.key_rank.npy"):
        f.unlink()
    old = LocalGraphStore.open(path)
    assert old.state.vertices[VertexKind.MOVIE].saved_rank is None
    assert_same_snapshot(snapshot(old), snapshot(store))
    assert old.khop_scores("ann") == store.khop_scores("ann")


def test_nbytes_counts_mapped_strings_without_decoding(
    tmp_path: Path, tiny_batch: GraphBatch
) -> None:
    path, _ = _saved(tmp_path, tiny_batch)
    loaded = LocalGraphStore.open(path)
    assert loaded.nbytes() > 0
    assert "keys" not in loaded.state.vertices[VertexKind.PERSON].__dict__


def test_saving_a_loaded_graph_copies_its_strings_undecoded(
    tmp_path: Path, tiny_batch: GraphBatch
) -> None:
    path, store = _saved(tmp_path, tiny_batch)
    loaded = LocalGraphStore.open(path)
    loaded.save(tmp_path / "copy")
    people = loaded.state.vertices[VertexKind.PERSON]
    assert "keys" not in people.__dict__  # the save wrote the bytes as they were
    copy = LocalGraphStore.open(tmp_path / "copy")
    assert_same_snapshot(snapshot(copy), snapshot(store))


def test_explanations_on_a_loaded_graph_decode_only_the_strings_they_show(
    tmp_path: Path,
) -> None:
    """A slate's explanations name a few titles and people: on a loaded graph they are decoded
    one by one, not whole columns (1.5M names at 500K movies), and equal the in-memory ones."""
    batch = generate_synthetic(movies=300, people=400, users=40, seed=5)
    path, memory_store = _saved(tmp_path, batch)
    loaded = LocalGraphStore.open(path)
    users = [str(u) for u in memory_store.vertex_frame(VertexKind.USER)["key"][:15]]
    movies = [str(m) for m in memory_store.vertex_frame(VertexKind.MOVIE)["key"][::7]]
    found = 0
    for user in users:
        got = loaded.explain_many(user, movies)
        assert got == memory_store.explain_many(user, movies), user
        assert [loaded.explain(user, m) for m in movies[:5]] == got[:5]
        found += sum(e is not None and e.via_name != "" for e in got)
    assert found > 0  # people named
    state = loaded.state
    people = state.vertices[VertexKind.PERSON]
    assert "keys" not in people.__dict__
    for table in (people, state.vertices[VertexKind.MOVIE]):
        for name in table.columns:
            column = table.columns.raw(name)  # type: ignore[attr-defined]
            assert not isinstance(column, StringColumn) or column._decoded is None, name


def test_one_string_equals_the_decoded_column() -> None:
    words = ["", "Amélie", "x", "Ça va", "last"]
    blob = np.frombuffer("".join(words).encode(), dtype=np.uint8)
    offsets = np.cumsum([0, *(len(w.encode()) for w in words)])
    column = StringColumn(blob, offsets)
    assert [column.item(i) for i in range(-5, 5)] == [*words, *words]
    assert column.decode().tolist() == words and column.item(1) == "Amélie"


def _saved_without_reverse(path: Path) -> None:
    """Make the save at ``path`` look like one from before reverse views were saved."""
    manifest_path = path / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    for info in manifest["edges"].values():
        info.pop("reverse", None)
    manifest_path.write_text(json.dumps(manifest))
    for f in (path / manifest["data"]).glob("*.reverse_*.npy"):
        f.unlink()


def test_content_edges_reverse_views_are_saved_and_mapped(tmp_path: Path) -> None:
    """A loaded graph reads each content edge kind's reverse (CSC) view from its files, equal
    to the one derived from the edges (values and dtypes), so that a served slate's
    explanations need no sort of every edge; users' edge kinds still derive theirs. The
    explanations and incoming neighbours agree with the in-memory store and with a graph
    saved before (which derives the views on first use)."""
    batch = generate_synthetic(movies=300, people=400, users=40, seed=6)
    path, memory_store = _saved(tmp_path, batch)
    loaded = LocalGraphStore.open(path)
    for kind, et in loaded.state.edges.items():
        if kind in (EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED):
            assert et.saved_reverse is None, kind
            continue
        assert et.saved_reverse is not None, kind
        assert all(is_mapped(a) or a.size == 0 for a in et.saved_reverse), kind
        derived = dataclasses.replace(et, saved_reverse=None).reverse
        for got, want in zip(et.reverse, derived, strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want), kind
    assert loaded.state.edges[EdgeKind.ACTED_IN].nnz > 0
    old_path = tmp_path / "old"
    old_store = LocalGraphStore(old_path)
    old_store.upsert(batch)
    _saved_without_reverse(old_path)
    old = LocalGraphStore.open(old_path)
    assert old.state.edges[EdgeKind.ACTED_IN].saved_reverse is None
    users = [str(u) for u in memory_store.vertex_frame(VertexKind.USER)["key"][:15]]
    movies = [str(m) for m in memory_store.vertex_frame(VertexKind.MOVIE)["key"][::7]]
    for user in users:
        want = memory_store.explain_many(user, movies)
        assert loaded.explain_many(user, movies) == want == old.explain_many(user, movies), user
        assert [loaded.explain(user, m) for m in movies[:5]] == want[:5]
    for movie in movies[:10]:
        want_nb = memory_store.neighbours(VertexKind.MOVIE, movie, EdgeKind.ACTED_IN, "in")
        assert loaded.neighbours(VertexKind.MOVIE, movie, EdgeKind.ACTED_IN, "in") == want_nb
    # an upsert that leaves the content edges alone links their reverse files
    loaded.upsert(generate_synthetic(movies=300, people=400, users=41, seed=6))
    again = LocalGraphStore.open(path)
    for got, want in zip(
        again.state.edges[EdgeKind.ACTED_IN].reverse,
        dataclasses.replace(again.state.edges[EdgeKind.ACTED_IN], saved_reverse=None).reverse,
        strict=True,
    ):
        assert np.array_equal(got, want)
