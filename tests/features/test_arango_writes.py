"""ArangoDB writes of any size, through python-arango against the local test server: one stream
transaction up to the threshold, transaction-sized parts above it (vertices first), what a failed
part leaves and how a re-run repairs it, bulk import, and the values JSON cannot hold."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from features.graph import arango_aql as aql
from features.graph.arango import ArangoGraphStore
from features.graph.batch import GraphBatch, GraphDataError
from features.graph.schema import EdgeKind, VertexKind
from features.graph.store import GraphStoreError
from tests.features.arango_test_server import FakeArango

PASSWORD = "pw-writes"
DB = "marquee_writes"


@pytest.fixture
def server() -> Iterator[FakeArango]:
    fake = FakeArango(password=PASSWORD).start()
    yield fake
    fake.stop()


def connect(server: FakeArango, **options: object) -> ArangoGraphStore:
    store = ArangoGraphStore.connect(server.url, DB, password=PASSWORD, create=True, **options)  # type: ignore[arg-type]
    server.requests.clear()
    return store


def ratings_batch(users: int, movies: int, per_user: int, seed: int = 0) -> GraphBatch:
    """Users, movies and ``users * per_user`` rated edges (an import's shape)."""
    rng = np.random.default_rng(seed)
    b = GraphBatch()
    b.add_vertices(
        VertexKind.MOVIE,
        pd.DataFrame(
            {"key": [str(m) for m in range(movies)], "title": [f"M{m}" for m in range(movies)]}
        ),
    )
    b.add_vertices(VertexKind.USER, pd.DataFrame({"key": [f"u{u}" for u in range(users)]}))
    src = np.repeat([f"u{u}" for u in range(users)], per_user)
    dst = np.concatenate([rng.choice(movies, per_user, replace=False) for _ in range(users)])
    b.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            {
                "src": src,
                "dst": dst.astype(str),
                "rating": rng.integers(1, 11, len(src)) / 2,
                "timestamp": np.arange(len(src)),
            }
        ),
    )
    return b


def begun(server: FakeArango) -> list[list[str]]:
    """The write collections declared by each transaction begun, in order."""
    return [
        sorted(r.body["collections"]["write"]) for r in server.calls("POST", "/transaction/begin")
    ]


def test_a_batch_under_the_threshold_is_one_transaction(server: FakeArango) -> None:
    store = connect(server)
    report = store.upsert(ratings_batch(users=20, movies=50, per_user=10))
    assert report.created["rated"] == 200 and report.created["movies"] == 50
    assert begun(server) == [["movies", "rated", "users"]]
    assert server.open_transactions() == 0


def test_a_large_import_crosses_the_threshold_and_goes_in_parts(server: FakeArango) -> None:
    """12K ratings (about 1.2 MB of JSON) with a 256 KiB threshold: several transactions,
    vertex collections first, every document written once, and a re-run writes nothing."""
    store = connect(server, max_transaction_bytes=256 * 1024)
    batch = ratings_batch(users=400, movies=500, per_user=30)
    report = store.upsert(batch)
    assert report.created == {
        **{k: 0 for k in report.created},
        "movies": 500,
        "users": 400,
        "rated": 12_000,
    }
    parts = begun(server)
    assert len(parts) >= 4
    first_edge_part = next(i for i, p in enumerate(parts) if "rated" in p)
    assert all("rated" not in p for p in parts[:first_edge_part])  # vertices before edges
    assert all(p == ["rated"] for p in parts[first_edge_part + 1 :])
    sent = [r for r in server.queries() if r.body["query"] == aql.write_docs("x", [])[0]]
    for r in sent:  # every write ran inside a declared transaction
        assert r.headers.get("x-arango-trx-id") is not None
    assert sum(len(r.body["bindVars"]["docs"]) for r in sent) == 500 + 400 + 12_000
    assert len(server.calls("PUT", "")) == len(parts)  # each part committed
    assert store.counts()["rated"] == 12_000
    rated = store.edge_frame(EdgeKind.RATED)
    assert len(rated) == 12_000 and rated["rating"].dtype == "float32"
    server.requests.clear()
    again = store.upsert(batch)
    assert not again.changed and begun(server) == []


def test_a_failed_part_leaves_earlier_parts_and_a_rerun_repairs(server: FakeArango) -> None:
    store = connect(server, max_transaction_bytes=64 * 1024)
    batch = ratings_batch(users=100, movies=200, per_user=20)
    commits = 0

    def failing_third_commit() -> None:
        nonlocal commits
        commits += 1
        if commits == 3:
            server.fail_next_commit = True

    original = server._transaction_api

    def counting(method, rest, body, database):  # type: ignore[no-untyped-def]
        if method == "PUT":
            failing_third_commit()
        return original(method, rest, body, database)

    server._transaction_api = counting  # type: ignore[method-assign]
    with pytest.raises(GraphStoreError) as info:
        store.upsert(batch)
    message = str(info.value)
    assert "part 3 of" in message and "2 earlier part(s) were committed" in message
    assert "re-run the same batch" in message
    kept = store.counts()
    assert kept["movies"] == 200 and kept["users"] == 100  # the vertex part(s) stayed
    assert 0 < kept["rated"] < 2000  # a prefix of the edges, whole documents
    stored = store.edge_frame(EdgeKind.RATED)
    assert set(stored["src"]) <= {f"u{u}" for u in range(100)}  # no edge without its vertices
    assert server.open_transactions() == 0  # the failed part was not left open
    report = store.upsert(batch)  # the repair writes only what is missing
    assert report.created["rated"] == 2000 - kept["rated"] and report.created["movies"] == 0
    assert store.counts()["rated"] == 2000


def test_the_servers_size_cap_aborts_a_transaction_that_exceeds_it(server: FakeArango) -> None:
    server.max_transaction_bytes = 100 * 1024
    store = connect(server, max_transaction_bytes=10 * 2**20)  # larger than the server allows
    with pytest.raises(GraphStoreError, match="error 32: resource limit exceeded"):
        store.upsert(ratings_batch(users=100, movies=200, per_user=20))
    assert store.counts()["rated"] == 0 and store.counts()["movies"] == 0  # one transaction: none
    assert server.open_transactions() == 0
    small = connect(server, max_transaction_bytes=64 * 1024)  # under the cap: in parts
    assert small.upsert(ratings_batch(users=100, movies=200, per_user=20)).created["rated"] == 2000


def test_import_mode_sends_parts_in_vertex_then_edge_order(server: FakeArango) -> None:
    store = connect(server, write_mode="import", max_transaction_bytes=64 * 1024)
    report = store.upsert(ratings_batch(users=100, movies=200, per_user=20))
    imports = server.calls("POST", "/_api/import")
    order = [r.params["collection"] for r in imports]
    assert order.index("rated") > max(order.index("movies"), order.index("users"))
    assert all(r.params["complete"] in ("1", "true", "True") for r in imports)
    assert all(r.params["onDuplicate"] == "replace" for r in imports)
    assert report.created["rated"] == 2000 and server.calls("POST", "/transaction/begin") == []


def test_infinity_is_refused_before_any_request_and_nan_is_null(server: FakeArango) -> None:
    store = connect(server)
    b = GraphBatch()
    b.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["1", "2"]}))
    b.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["u"]}))
    b.add_edges(
        EdgeKind.RATED,
        pd.DataFrame({"src": ["u", "u"], "dst": ["1", "2"], "rating": [4.0, -math.inf]}),
    )
    with pytest.raises(GraphDataError, match=r"rated edge row 1: column 'rating' is -inf"):
        store.upsert(b)
    assert server.requests == []
    b.edges[EdgeKind.RATED].loc[1, "rating"] = math.nan
    store.upsert(b)
    [write] = [
        r
        for r in server.queries()
        if r.body["query"] == aql.write_docs("x", [])[0]
        and r.body["bindVars"]["@collection"] == "rated"
    ]
    assert write.body["bindVars"]["docs"][1]["rating"] is None
    assert math.isnan(store.edge_frame(EdgeKind.RATED)["rating"].iloc[1])


def test_the_server_refuses_the_json_infinity_the_driver_would_send(server: FakeArango) -> None:
    """What the +-inf check prevents: python-arango sends ``Infinity``, not JSON."""
    store = connect(server)
    docs = [{"_key": "x", "name": "a", "weight": math.inf}]
    with pytest.raises(GraphStoreError, match="HTTP 400, error 600"):
        store._conn.one(aql.write_docs("tags", docs), "writing")
