"""merge_with_existing: sources add up instead of wiping each other's attributes."""

from __future__ import annotations

import math

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.importers.merge import BatchFrames, merge_with_existing


def _stored() -> LocalGraphStore:
    store = LocalGraphStore()
    batch = GraphBatch()
    batch.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": ["1", "2"],
                "title": ["Toy Story", "Heat"],
                "year": [1995, 1995],
                "genres": ["Animation|Comedy", "Action"],
                "poster_url": ["http://p/1.jpg", ""],
                "countries": ["USA", ""],
            }
        ),
    )
    batch.add_vertices(VertexKind.TAG, pd.DataFrame({"key": ["pixar"], "name": ["Pixar"]}))
    batch.add_edges(EdgeKind.TAGGED, pd.DataFrame({"src": ["1"], "dst": ["pixar"], "weight": [3]}))
    store.upsert(batch)
    return store


def test_defaults_keep_stored_values_and_lists_unite() -> None:
    store = _stored()
    new = GraphBatch()
    new.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {
                "key": ["1", "3"],
                "title": ["Toy Story!", "Casino"],
                "genres": ["Comedy|Family", "Crime"],
                "countries": ["", "USA"],
            }
        ),
    )
    new.add_edges(
        EdgeKind.TAGGED,
        pd.DataFrame({"src": ["1", "2"], "dst": ["pixar", "pixar"], "weight": [2, 1]}),
    )
    merged = merge_with_existing(new, store)
    movies = merged.vertices[VertexKind.MOVIE].set_index("key")
    assert movies.loc["1", "title"] == "Toy Story!"  # a value the batch gives wins
    assert movies.loc["1", "year"] == 1995  # the batch's default 0 keeps the stored year
    assert movies.loc["1", "poster_url"] == "http://p/1.jpg"
    assert movies.loc["1", "countries"] == "USA"
    assert movies.loc["1", "genres"] == "Animation|Comedy|Family"  # stored items first
    assert movies.loc["3", "year"] == 0 and movies.loc["3", "genres"] == "Crime"  # new vertex
    weights = merged.edges[EdgeKind.TAGGED].set_index("src")["weight"]
    assert weights["1"] == 3.0 and weights["2"] == 1.0  # the larger of stored and new
    report = store.upsert(merged)
    assert report.created["movies"] == 1 and report.updated["movies"] == 1
    assert not store.upsert(merge_with_existing(new, store)).changed


def test_only_vertices_and_tag_weights_are_merged() -> None:
    source = GraphBatch()
    source.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["1"]}))
    source.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["u"]}))
    source.add_edges(EdgeKind.RATED, pd.DataFrame({"src": ["u"], "dst": ["1"], "rating": [4.0]}))
    new = GraphBatch()
    new.add_edges(EdgeKind.RATED, pd.DataFrame({"src": ["u"], "dst": ["1"]}))
    merged = merge_with_existing(new, BatchFrames(source))
    # Only vertex attributes and tag weights are merged; a rating is the batch's own.
    assert math.isnan(float(merged.edges[EdgeKind.RATED]["rating"].iloc[0]))
