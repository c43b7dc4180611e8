"""Merging a small batch of edges by searching their rows gives exactly the table the
sort-everything merge gives (new edges, changed values, unchanged ones, new users)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.graph import local_state
from features.graph.batch import GraphBatch
from features.graph.local_state import GraphState, apply_batch
from features.graph.schema import EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic


def _base() -> GraphState:
    state, _ = apply_batch(
        GraphState.empty(), generate_synthetic(movies=150, people=100, users=25, seed=8)
    )
    return state


def _feedback(state: GraphState, seed: int) -> GraphBatch:
    """Ratings old and new (some re-rating a held edge with the same or another value, some
    by new users), watches and dismissals, in random order."""
    rng = np.random.default_rng(seed)
    users = [str(u) for u in state.vertices[VertexKind.USER].keys] + ["new1", "new2"]
    movies = [str(m) for m in state.vertices[VertexKind.MOVIE].keys]
    batch = GraphBatch()
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["new1", "new2"], "name": ["a", "b"]}))
    rated = state.edges[EdgeKind.RATED]
    held = rng.choice(rated.nnz, size=6, replace=False)
    rows = [
        {
            "src": users[int(rated.src[i])],
            "dst": movies[int(rated.indices[i])],
            "rating": float(rated.columns["rating"][i]) if k % 2 else 0.5,
            "timestamp": int(rated.columns["timestamp"][i]),
        }
        for k, i in enumerate(held)
    ]
    rows += [
        {
            "src": users[int(rng.integers(len(users)))],
            "dst": movies[int(rng.integers(len(movies)))],
            "rating": 4.0,
            "timestamp": 2_000_000_000 + k,
        }
        for k in range(25)
    ]
    batch.add_edges(EdgeKind.RATED, pd.DataFrame(rows).sample(frac=1.0, random_state=seed))
    pairs = [
        {"src": users[int(rng.integers(len(users)))], "dst": movies[int(rng.integers(len(movies)))]}
        for _ in range(8)
    ]
    batch.add_edges(EdgeKind.WATCHED, pd.DataFrame([{**p, "completion": 50.0} for p in pairs]))
    batch.add_edges(EdgeKind.NOT_INTERESTED, pd.DataFrame(pairs[:4]))
    return batch


def _tables(state: GraphState) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind, et in state.edges.items():
        out[f"{kind.value}.indptr"] = et.indptr.tolist()
        out[f"{kind.value}.indices"] = et.indices.tolist()
        for name, column in et.columns.items():
            out[f"{kind.value}.{name}"] = np.asarray(column).tolist()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_row_search_merge_equals_the_sorting_merge(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _base()
    batch = _feedback(state, seed)
    few, few_report = apply_batch(state, batch)
    monkeypatch.setattr(local_state, "FEW_EDGES", 0)  # every batch the sorting way
    many, many_report = apply_batch(state, batch)
    assert few_report == many_report
    assert few_report.created["rated"] > 0 and few_report.updated["rated"] > 0
    assert _tables(few) == _tables(many)


def test_an_unchanged_edge_keeps_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _base()
    rated = state.edges[EdgeKind.RATED]
    users = state.vertices[VertexKind.USER].keys
    movies = state.vertices[VertexKind.MOVIE].keys
    row = {
        "src": users[int(rated.src[0])],
        "dst": movies[int(rated.indices[0])],
        "rating": float(rated.columns["rating"][0]),
        "timestamp": int(rated.columns["timestamp"][0]),
    }
    batch = GraphBatch()
    batch.add_edges(EdgeKind.RATED, pd.DataFrame([row]))
    after, report = apply_batch(state, batch)
    assert not report.changed and after.edges[EdgeKind.RATED] is rated
