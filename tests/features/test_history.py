"""A user's history from a graph store: the embedded store's fast path and the protocol's
default read the same thing; unknown movies are ignored; a new rating replaces an old one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import Catalog
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStore, UserMovies
from features.history import HistoryReader, with_rating
from tests.features.conftest import make_tiny_batch


class _ProtocolOnly(GraphStore):
    """The same store seen through the GraphStore protocol's defaults (no fast path)."""

    def __init__(self, store: LocalGraphStore) -> None:
        self._store = store

    def neighbours(self, *args: object, **kw: object) -> object:  # type: ignore[override]
        return self._store.neighbours(*args, **kw)  # type: ignore[arg-type]

    def explain(self, user: str, movie: str) -> object:  # type: ignore[override]
        return self._store.explain(user, movie)


def _rows(m: UserMovies) -> list[tuple[object, float, float]]:
    return sorted(zip(m.rated.tolist(), m.ratings.tolist(), m.timestamps.tolist(), strict=True))


def _store() -> LocalGraphStore:
    store = LocalGraphStore()
    store.upsert(make_tiny_batch())
    return store


def test_fast_path_and_protocol_default_read_the_same_movies() -> None:
    store = _store()
    slow = _ProtocolOnly(store)
    users = store.vertex_frame(VertexKind.USER)["key"].tolist()
    assert users
    for user in users:
        fast, default = store.user_movies(user), slow.user_movies(user)
        assert isinstance(fast, UserMovies)
        assert _rows(fast) == _rows(default)
        assert sorted(fast.seen.tolist()) == sorted(default.seen.tolist())


def test_reader_gives_the_same_history_through_either_path() -> None:
    store = _store()
    reader = HistoryReader(Catalog.from_store(store))
    for user in store.vertex_frame(VertexKind.USER)["key"].tolist():
        fast, slow = reader.read(store, user), reader.read(_ProtocolOnly(store), user)
        assert fast is not None and slow is not None
        assert fast.items == slow.items and fast.ratings == slow.ratings
        assert np.array_equal(fast.seen, slow.seen) and fast.positives == slow.positives
    assert reader.read(store, "nobody") is None
    assert reader.read(_ProtocolOnly(store), "nobody") is None


def test_movies_outside_the_catalogue_are_ignored() -> None:
    store = _store()
    reader = HistoryReader(Catalog.from_store(store))
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["zz-new"], "title": ["New"]}))
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["stranger"]}))
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame([{"src": "stranger", "dst": "zz-new", "rating": 5.0, "timestamp": 1}]),
    )
    store.upsert(batch)
    history = reader.read(store, "stranger")
    assert history is not None and history.items == [] and not history.seen.any()


def test_default_explain_many_matches_explain() -> None:
    store = _store()
    user = store.vertex_frame(VertexKind.USER)["key"].tolist()[0]
    movies = [*store.vertex_frame(VertexKind.MOVIE)["key"].tolist(), "no-such-movie"]
    assert _ProtocolOnly(store).explain_many(user, movies) == store.explain_many(user, movies)


def test_with_rating_replaces_an_earlier_rating() -> None:
    store = _store()
    reader = HistoryReader(Catalog.from_store(store))
    user = next(
        u
        for u in store.vertex_frame(VertexKind.USER)["key"].tolist()
        if (h := reader.read(store, u)) is not None and h.items
    )
    history = reader.read(store, user)
    assert history is not None
    row, n = history.items[0], len(history.items)
    again = with_rating(history, row, 1.0)
    assert len(again.items) == n and again.items[-1] == row and again.ratings[-1] == 1.0
    assert row not in again.positives


def test_keys_are_found_in_the_catalogues_sorted_keys_without_a_table_of_its_own() -> None:
    """Rows by binary search in the catalogue's (mapped) keys: no per-worker key -> row dict,
    list or index of every movie (about 155 MB at 500K movies); unknown keys are -1/None."""
    from tests.features.catalog_fixtures import tiny_catalog

    catalog = tiny_catalog()
    reader = HistoryReader(catalog)
    keys = [str(k) for k in catalog.movie_keys]
    backwards = list(range(len(keys)))[::-1]
    assert reader.rows([*keys[::-1], "nope", ""]).tolist() == [*backwards, -1, -1]
    assert reader.rows([]).tolist() == []
    assert reader.row(keys[2]) == 2 and reader.row("nope") is None
    assert list(reader.keys) == keys and reader.keys[3] == keys[3]
    assert not [v for v in vars(reader).values() if isinstance(v, (dict, list, pd.Index))]
