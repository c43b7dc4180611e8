"""Several processes on one embedded graph folder (``serve --workers N``, ``plex sync`` beside
a running service): no process saves over another's edges, and a store that follows its
folder sees the others' saves."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.local_files import MANIFEST
from features.graph.schema import EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic


def _rating(user: str, movie: str, when: int = 7) -> GraphBatch:
    """``user`` (a new user vertex) rates ``movie``."""
    batch = GraphBatch()
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": [user], "name": [user]}))
    row = {"src": user, "dst": movie, "rating": 4.5, "timestamp": when}
    batch.add_edges(EdgeKind.RATED, pd.DataFrame([row]))
    return batch


def _rated(store: LocalGraphStore, user: str) -> set[str]:
    return {str(m) for m in store.user_movies(user).rated}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "graph"
    LocalGraphStore(path).upsert(generate_synthetic(movies=120, people=150, users=12, seed=4))
    return path


def test_a_write_starts_from_the_other_stores_save(folder: Path) -> None:
    a, b = LocalGraphStore.open(folder), LocalGraphStore.open(folder)
    a.upsert(_rating("n1", "99"))
    b.upsert(_rating("n2", "98"))  # b loaded a's save first, so a's rating is kept
    fresh = LocalGraphStore.open(folder)
    assert _rated(fresh, "n1") == {"99"} and _rated(fresh, "n2") == {"98"}
    assert _rated(b, "n1") == {"99"}
    assert "n2" not in a.vertex_frame(VertexKind.USER)["key"].tolist()  # a does not follow...
    assert a.refresh() and _rated(a, "n2") == {"98"}  # ...until asked
    assert not a.refresh()  # nothing new since


def test_a_following_store_sees_other_saves_when_asked_for_its_revision(folder: Path) -> None:
    follower = LocalGraphStore.open(folder, follow_seconds=0.0)
    idle = LocalGraphStore.open(folder, follow_seconds=3600.0)
    before, idle_before = follower.revision(), idle.revision()
    assert follower.revision() is before  # nothing saved since: the same version
    LocalGraphStore.open(folder).upsert(_rating("n3", "97"))
    assert follower.revision() is not before and _rated(follower, "n3") == {"97"}
    assert idle.revision() is idle_before  # not yet due
    assert "n3" not in idle.vertex_frame(VertexKind.USER)["key"].tolist()


def _data_file(folder: Path, name: str) -> Path:
    return folder / json.loads((folder / MANIFEST).read_text())["data"] / name


def test_a_loaded_store_links_what_it_did_not_change(folder: Path) -> None:
    """A store just opened (or one that has just loaded another's save) links the unchanged
    arrays from the folder it mapped instead of writing them again."""
    inode = _data_file(folder, "acted_in.indices.npy").stat().st_ino
    store = LocalGraphStore.open(folder)
    store.upsert(_rating("n4", "96"))
    assert _data_file(folder, "acted_in.indices.npy").stat().st_ino == inode
    assert _data_file(folder, "rated.indices.npy").stat().st_ino != inode


def _writer(folder: str, user: str, n: int) -> None:
    store = LocalGraphStore.open(Path(folder))
    for i in range(n):
        store.upsert(_rating(user, str(i + 1), when=100 + i))


def test_concurrent_writers_in_processes_lose_nothing(folder: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(folder), u, 12)) for u in ("w1", "w2", "w3")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    final = LocalGraphStore.open(folder)
    for user in ("w1", "w2", "w3"):
        assert _rated(final, user) == {str(i + 1) for i in range(12)}
    assert len(list(folder.glob("data-*"))) == 1
