"""The embedded store's derived matrices (k-hop operator, hub split, people matrices) outlive
a feedback write, which changes only users' edges, and are rebuilt when content changes; the
answers are a freshly built store's either way."""

from __future__ import annotations

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic


def _store() -> tuple[LocalGraphStore, GraphBatch]:
    batch = generate_synthetic(movies=300, people=200, users=20, tags=30, seed=3)
    store = LocalGraphStore()
    store.upsert(batch)
    return store, batch


def _answers(store: LocalGraphStore, *more: str) -> list[object]:
    out: list[object] = []
    for user in ("u1", "u2", "u7", *more):
        out.append(store.khop_scores(user, hops=3, limit=40))
        out.append(store.khop_scores(user, hops=2, limit=None))
    out.append(store.co_people("1", limit=20))
    return out


def _fresh(*batches: GraphBatch) -> LocalGraphStore:
    store = LocalGraphStore()
    for batch in batches:
        store.upsert(batch)
    return store


def test_a_feedback_write_keeps_the_derived_matrices() -> None:
    store, batch = _store()
    before = _answers(store)
    cached = dict(store.state.cache)
    assert cached  # the queries above built the operator and the people matrices
    feedback = GraphBatch()
    feedback.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["new-user"], "name": ["N"]}))
    feedback.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            {
                "src": ["u1", "new-user"],
                "dst": ["5", "9"],
                "timestamp": [2e9, 2e9],
                "rating": [5.0, 4.0],
            }
        ),
    )
    feedback.add_edges(
        EdgeKind.NOT_INTERESTED, pd.DataFrame({"src": ["u2"], "dst": ["7"], "timestamp": [2e9]})
    )
    store.upsert(feedback)
    assert all(store.state.cache[k] is v for k, v in cached.items())  # carried, not rebuilt
    assert _answers(store) != before  # the users' new edges changed their k-hop answers
    assert _answers(store, "new-user") == _answers(_fresh(batch, feedback), "new-user")


def test_a_content_write_rebuilds_them() -> None:
    store, batch = _store()
    _answers(store)
    content = GraphBatch()
    content.add_edges(
        EdgeKind.IN_GENRE, pd.DataFrame({"src": ["1", "2"], "dst": ["g-new", "g-new"]})
    )
    content.add_vertices(VertexKind.GENRE, pd.DataFrame({"key": ["g-new"], "name": ["New"]}))
    store.upsert(content)
    assert not store.state.cache  # the movies' links changed: nothing old is reused
    assert _answers(store) == _answers(_fresh(batch, content))
