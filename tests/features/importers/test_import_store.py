"""Importers with the embedded store: counts, idempotence, and nothing stored on bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.datasets import bundled_movielens
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.importers.errors import ImportFileError
from features.importers.hetrec import load_hetrec
from features.importers.merge import merge_with_existing
from features.importers.movielens import load_movielens
from features.importers.recbole import load_recbole
from tests.features.importers.conftest import DATA, shared_data, write_folder
from tests.features.importers.test_hetrec import HETREC


def _snapshot(store: LocalGraphStore) -> dict[str, pd.DataFrame]:
    out = {k.value: store.vertex_frame(k) for k in VertexKind}
    out.update({k.value: store.edge_frame(k) for k in EdgeKind})
    return out


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def test_bundled_sample_into_store_twice(tmp_path: Path) -> None:
    store = LocalGraphStore.open(tmp_path / "graph")
    first = store.upsert(load_movielens(bundled_movielens()))
    assert first.changed
    counts = store.counts()
    assert (counts["users"], counts["movies"], counts["rated"]) == (610, 9742, 100836)

    again = LocalGraphStore.open(tmp_path / "graph")  # reloaded from disk
    second = again.upsert(load_movielens(bundled_movielens()))
    assert not second.changed
    assert again.counts() == counts


@pytest.mark.skipif(shared_data() is None, reason="shared real data not present")
def test_real_hetrec_into_store_twice(tmp_path: Path) -> None:
    data = shared_data()
    assert data is not None
    store = LocalGraphStore.open(tmp_path / "graph")
    store.upsert(load_movielens(bundled_movielens()))
    folder = data / "hetrec2011-movielens-2k"
    batch, report = load_hetrec(folder, store)
    assert store.upsert(batch).changed
    directed = store.edge_frame(EdgeKind.DIRECTED)
    assert directed["dst"].nunique() == report.directed_movies
    # Ratings and MovieLens attributes survive the join.
    assert store.counts()["rated"] == 100836
    assert store.vertex(VertexKind.MOVIE, "1")["title"] == "Toy Story"  # type: ignore[index]
    assert store.vertex(VertexKind.MOVIE, "1")["countries"] == "USA"  # type: ignore[index]
    counts = store.counts()
    batch, _ = load_hetrec(folder, store)
    assert not store.upsert(batch).changed
    # MovieLens again, merged as the CLI does: HetRec's posters and countries stay.
    assert not store.upsert(merge_with_existing(load_movielens(bundled_movielens()), store)).changed
    assert store.counts() == counts


def test_failed_imports_leave_store_unchanged(tmp_path: Path, latest_dir: Path) -> None:
    store = LocalGraphStore.open(tmp_path / "graph")
    store.upsert(load_movielens(latest_dir))
    before = _snapshot(store)

    write_folder(latest_dir, {"ratings.csv": "userId,movieId,rating,timestamp\n1,1,9,1\n"})
    with pytest.raises(ImportFileError, match="outside the range"):
        store.upsert(load_movielens(latest_dir))
    hetrec = write_folder(tmp_path / "hetrec", {k: v.encode("latin-1") for k, v in HETREC.items()})
    write_folder(hetrec, {"movie_tags.dat": "1\t1\t3\r\n1\t99\t1\r\n"})
    with pytest.raises(ImportFileError, match="not a known tag id"):
        store.upsert(load_hetrec(hetrec, store)[0])

    _assert_same(before, _snapshot(store))
    _assert_same(before, _snapshot(LocalGraphStore.open(tmp_path / "graph")))


def test_recbole_into_store(tmp_path: Path) -> None:
    store = LocalGraphStore.open(tmp_path / "graph")
    batch, report = load_recbole(DATA / "recbole_tiny")
    assert store.upsert(batch).changed
    assert report.unknown_relations == {}
    counts = store.counts()
    assert (counts["movies"], counts["users"], counts["rated"]) == (3, 2, 4)
    assert (counts["directed"], counts["acted_in"], counts["similar_to"]) == (3, 1, 1)
    assert (counts["from_country"], counts["in_language"]) == (1, 2)
    assert not store.upsert(load_recbole(DATA / "recbole_tiny")[0]).changed
