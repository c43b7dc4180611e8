"""A save links the arrays the last save already wrote and the state still holds (SavedFiles):
a user's new rating rewrites the user and rating arrays, not the catalogue, and the graph read
back is the one in memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.local_files import MANIFEST
from features.graph.schema import EdgeKind
from features.importers.synthetic import generate_synthetic
from tests.features.test_store_contract import assert_same_snapshot, snapshot


def _files(path: Path) -> dict[str, int]:
    """File name -> inode in the folder the manifest names."""
    data = path / json.loads((path / MANIFEST).read_text())["data"]
    return {f.name: f.stat().st_ino for f in data.iterdir()}


def _rating(user: str, movie: str) -> GraphBatch:
    batch = GraphBatch()
    row = {"src": user, "dst": movie, "rating": 4.5, "timestamp": 7}
    batch.add_edges(EdgeKind.RATED, pd.DataFrame([row]))
    return batch


def test_a_rating_rewrites_only_the_rating_arrays(tmp_path: Path) -> None:
    path = tmp_path / "graph"
    store = LocalGraphStore(path)
    store.upsert(generate_synthetic(movies=200, people=300, users=30, seed=5))
    first = _files(path)
    assert store.upsert(_rating("u3", "7")).changed
    second = _files(path)
    assert second.keys() == first.keys()
    rewritten = {n for n in first if first[n] != second[n]}
    assert rewritten and all(n.startswith("rated.") for n in rewritten), rewritten
    assert {"movies.title.utf8.npy", "acted_in.indices.npy"} <= {
        n for n in first if first[n] == second[n]
    }
    assert len(list(path.glob("data-*"))) == 1  # the old folder is gone, its linked files kept
    assert_same_snapshot(snapshot(LocalGraphStore.open(path)), snapshot(store))


def test_a_store_whose_last_folder_was_removed_writes_everything(tmp_path: Path) -> None:
    """Two writers on one folder (serve --workers N): the other's save removed this store's
    last data folder, so nothing can be linked; the save writes every file."""
    path = tmp_path / "graph"
    store = LocalGraphStore(path)
    store.upsert(generate_synthetic(movies=100, people=150, users=10, seed=2))
    for data in path.glob("data-*"):
        shutil.rmtree(data)
    assert store.upsert(_rating("u1", "2")).changed
    assert_same_snapshot(snapshot(LocalGraphStore.open(path)), snapshot(store))
