"""The synthetic graph generator: reproducible, well-formed, and big enough at its defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic

SMALL = {"movies": 500, "people": 900, "users": 40, "ratings_per_user": 25, "tags": 50}


def assert_same_batch(a: GraphBatch, b: GraphBatch) -> None:
    assert a.vertices.keys() == b.vertices.keys() and a.edges.keys() == b.edges.keys()
    for kind in a.vertices:
        pd.testing.assert_frame_equal(a.vertices[kind], b.vertices[kind])
    for ekind in a.edges:
        pd.testing.assert_frame_equal(a.edges[ekind], b.edges[ekind])


def test_same_seed_same_batch() -> None:
    assert_same_batch(generate_synthetic(**SMALL, seed=3), generate_synthetic(**SMALL, seed=3))


def test_other_seed_other_batch() -> None:
    a = generate_synthetic(**SMALL, seed=1).edges[EdgeKind.RATED]
    b = generate_synthetic(**SMALL, seed=2).edges[EdgeKind.RATED]
    assert not a.equals(b)


SYNTHETIC_LEAVES_OUT = {
    EdgeKind.PRODUCED,
    EdgeKind.SHOT,
    EdgeKind.COMPOSED,
    EdgeKind.FROM_COUNTRY,
    EdgeKind.IN_LANGUAGE,
    EdgeKind.MADE_BY,
}


def test_small_graph_is_well_formed_and_loads() -> None:
    batch = generate_synthetic(**SMALL)
    keys = {k: set(f["key"]) for k, f in batch.vertices.items()}
    assert len(keys[VertexKind.MOVIE]) == 500 and len(keys[VertexKind.USER]) == 40
    # Every kind the synthetic graph models (not the Freebase-only crew and facet kinds).
    assert set(batch.edges) == set(EdgeKind) - SYNTHETIC_LEAVES_OUT
    for kind in batch.edges:
        frame = batch.edges[kind]
        assert len(frame), kind
        assert set(frame["src"]) <= keys[EDGE_SPECS[kind].src], kind
        assert set(frame["dst"]) <= keys[EDGE_SPECS[kind].dst], kind
        assert not frame.duplicated(["src", "dst"]).any(), kind
    sim = batch.edges[EdgeKind.SIMILAR_TO]
    assert (sim["src"] != sim["dst"]).all()
    ratings = batch.edges[EdgeKind.RATED]["rating"].to_numpy()
    assert set(np.unique(ratings)) <= {x / 2 for x in range(1, 11)}
    assert (batch.edges[EdgeKind.RATED].groupby("src").size() == 25).all()
    store = LocalGraphStore()
    report = store.upsert(batch)
    expected = {k.value: len(batch.vertices[k]) for k in VertexKind}
    expected.update({k.value: len(batch.edges.get(k, ())) for k in EdgeKind})
    assert report.created == expected


def test_popularity_is_heavy_tailed() -> None:
    acted = generate_synthetic(**SMALL).edges[EdgeKind.ACTED_IN]
    per_person = acted.groupby("src").size().sort_values(ascending=False).to_numpy()
    # Zipf: the busiest 1% of people hold far more than 1% of the roles.
    top = per_person[: max(len(per_person) // 100, 1)].sum()
    assert top / per_person.sum() > 0.05


BAD_ARGS = [
    ({"movies": 0}, "generate_synthetic: movies must be >= 1, got 0"),
    ({"users": -1}, "generate_synthetic: users must be >= 1, got -1"),
    ({"genres": 21}, "generate_synthetic: genres must be in 1..20, got 21"),
    ({"tags": 0}, "generate_synthetic: tags must be >= 1"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGS)
def test_bad_arguments(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        generate_synthetic(**{**SMALL, **kwargs})


@pytest.mark.slow
def test_defaults_reach_catalogue_scale() -> None:
    batch = generate_synthetic()
    assert len(batch.vertices[VertexKind.MOVIE]) == 100_000
    assert len(batch.vertices[VertexKind.PERSON]) == 300_000
    assert len(batch.vertices[VertexKind.USER]) == 10_000
    assert sum(len(f) for f in batch.edges.values()) >= 1_000_000
