"""The ArangoDB store's default k-hop engine (arango_mirror) through python-arango against the
local test server: what it pulls and when, freshness after writes, and equal answers to the
embedded store (scores rounded alike, float32 ratings compared alike)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from features.graph.arango import ArangoGraphStore
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import CONTENT_EDGES, EdgeKind, VertexKind
from features.importers.synthetic import generate_synthetic
from tests.features.arango_test_server import FakeArango
from tests.features.conftest import make_tiny_batch

PASSWORD = "pw-mirror"
DB = "marquee_mirror"


@pytest.fixture
def server() -> Iterator[FakeArango]:
    fake = FakeArango(password=PASSWORD).start()
    yield fake
    fake.stop()


def connect(server: FakeArango, **options: object) -> ArangoGraphStore:
    return ArangoGraphStore.connect(server.url, DB, password=PASSWORD, create=True, **options)  # type: ignore[arg-type]


def pulls(server: FakeArango) -> list[str]:
    """Collections read whole by the stream cursors so far."""
    return [
        r.body["bindVars"]["@collection"]
        for r in server.queries()
        if r.body.get("options", {}).get("stream")
    ]


def test_edges_are_pulled_once_and_again_after_a_write(server: FakeArango) -> None:
    store = connect(server)
    store.upsert(make_tiny_batch())
    server.requests.clear()
    first = store.khop_scores("ann")
    followed = (*CONTENT_EDGES, EdgeKind.SIMILAR_TO)  # every movie-to-movie kind
    assert sorted(pulls(server)) == sorted(["movies", *(k.value for k in followed)])
    assert all(
        r.body["batchSize"] >= 10_000 for r in server.queries() if r.body["options"].get("stream")
    )
    server.requests.clear()
    assert store.khop_scores("bob") and store.khop_scores("ann") == first
    assert pulls(server) == [] and store.mirror.builds == 1
    # Per query: one small AQL query for the user's seeds and seen movies, nothing else.
    assert len(server.queries()) == 2
    b = GraphBatch()
    b.add_edges(EdgeKind.DIRECTED, pd.DataFrame({"src": ["ridley_scott"], "dst": ["9"]}))
    store.upsert(b)
    changed = store.khop_scores("ann")
    assert store.mirror.builds == 2 and changed != first
    local = LocalGraphStore()
    local.upsert(make_tiny_batch())
    local.upsert(b)
    assert changed == local.khop_scores("ann")


def test_another_writers_change_shows_after_the_revision_check(server: FakeArango) -> None:
    reader = connect(server, mirror_check_seconds=0.0)
    writer = connect(server)
    writer.upsert(make_tiny_batch())
    before = reader.khop_scores("ann")
    b = GraphBatch()
    b.add_edges(EdgeKind.SIMILAR_TO, pd.DataFrame({"src": ["1"], "dst": ["9"], "score": [0.5]}))
    writer.upsert(b)
    after = reader.khop_scores("ann")
    assert reader.mirror.builds == 2 and dict(after)["9"] > dict(before)["9"]


def test_a_float32_rating_passes_its_own_bound_as_in_the_embedded_store(
    server: FakeArango,
) -> None:
    batch = make_tiny_batch()
    batch.add_edges(EdgeKind.RATED, pd.DataFrame({"src": ["cy"], "dst": ["2"], "rating": [4.1]}))
    store = connect(server)
    store.upsert(batch)
    local = LocalGraphStore()
    local.upsert(batch)
    want = local.khop_scores("cy", hops=2, min_rating=4.1)
    assert want  # the 4.1 (float32 4.0999999) rating is a seed at min_rating=4.1
    assert store.khop_scores("cy", hops=2, min_rating=4.1) == want


@pytest.mark.parametrize("limit", [None, 1, 7, 40])
def test_same_scores_and_order_as_the_embedded_store(server: FakeArango, limit: int | None) -> None:
    batch = generate_synthetic(movies=120, people=80, users=8, ratings_per_user=15, genres=6)
    store = connect(server)
    store.upsert(batch)
    local = LocalGraphStore()
    local.upsert(batch)
    users = store.vertex_frame(VertexKind.USER)["key"].tolist()
    for user in users:
        for hops in (1, 2, 3):
            want = local.khop_scores(user, hops=hops, min_rating=3.5, limit=limit)
            assert store.khop_scores(user, hops=hops, min_rating=3.5, limit=limit) == want


def test_new_ratings_do_not_rebuild_the_snapshot(server: FakeArango) -> None:
    store = connect(server)
    store.upsert(make_tiny_batch())
    store.khop_scores("ann")
    b = GraphBatch()
    b.add_edges(EdgeKind.RATED, pd.DataFrame({"src": ["cy"], "dst": ["1"], "rating": [5.0]}))
    store.upsert(b)  # feedback: a rating, not part of the movie graph
    assert dict(store.khop_scores("cy"))  # cy's new seed counts at once (asked per query)
    assert store.mirror.builds == 1
