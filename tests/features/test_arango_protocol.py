"""ArangoGraphStore through the real python-arango client against a local HTTP test server.

The server (tests/features/arango_test_server.py) speaks the HTTP API the store uses and
records requests. These tests check what goes over the wire (schema set-up, documents, bind
variables, transactions) and how answers and errors come back. Traversal *semantics* are not
checked here (the server cannot run AQL): the contract suite does that on a real ArangoDB.
"""

from __future__ import annotations

import logging
import math
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.graph import arango_aql as aql
from features.graph import arango_khop_aql as khop_aql
from features.graph.arango import ArangoGraphStore
from features.graph.batch import GraphBatch, GraphDataError
from features.graph.factory import open_store
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.graph.store import GraphStore, GraphStoreError, UnknownVertexError
from marquee.home import Home
from tests.features.arango_test_server import FakeArango

PASSWORD = "pw-Zq9-very-secret"
DB = "marquee_test"


@pytest.fixture
def server() -> Iterator[FakeArango]:
    fake = FakeArango(password=PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def store(server: FakeArango) -> Iterator[ArangoGraphStore]:
    s = ArangoGraphStore.connect(server.url, DB, password=PASSWORD, create=True)
    server.requests.clear()
    yield s
    s.close()


def small_batch() -> GraphBatch:
    b = GraphBatch()
    b.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["1", "2"], "title": ["Toy", "Heat"]}))
    b.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["u1"]}))
    b.add_vertices(VertexKind.PERSON, pd.DataFrame({"key": ["tom_hanks"], "name": ["Tom Hanks"]}))
    b.add_edges(
        EdgeKind.RATED,
        pd.DataFrame(
            {"src": ["u1", "u1"], "dst": ["1", "2"], "rating": [4.5, None], "timestamp": [100, 200]}
        ),
    )
    b.add_edges(EdgeKind.ACTED_IN, pd.DataFrame({"src": ["tom_hanks"], "dst": ["1"], "order": [0]}))
    return b


def write_requests(server: FakeArango) -> list[Any]:
    return [r for r in server.queries() if r.body["query"] == aql.write_docs("x", [])[0]]


# --- schema ------------------------------------------------------------------------------------


def test_connect_creates_database_collections_graph_and_indexes(server: FakeArango) -> None:
    s = ArangoGraphStore.connect(server.url, DB, password=PASSWORD, create=True)
    s.close()
    assert server.calls("POST", "/_db/_system/_api/database")[0].body == {"name": DB}
    cols = server.databases[DB]
    assert {n: c["type"] for n, c in cols.items()} == {
        **{k.value: 2 for k in VertexKind},
        **{k.value: 3 for k in EdgeKind},
    }
    graph = server.graphs[f"{DB}/marquee"]
    assert sorted(graph["edgeDefinitions"], key=lambda d: d["collection"]) == sorted(
        (
            {"collection": e.value, "from": [s.src.value], "to": [s.dst.value]}
            for e, s in EDGE_SPECS.items()
        ),
        key=lambda d: d["collection"],
    )
    fields = {
        name.split("/", 1)[1]: sorted(tuple(ix["fields"]) for ix in found)
        for name, found in server.indexes.items()
    }
    assert fields == {
        "rated": [("_from", "rating"), ("timestamp",)],
        "watched": [("timestamp",)],
        "not_interested": [("timestamp",)],
        "movies": [("imdb_id",), ("tmdb_id",)],
    }
    assert all(ix["type"] == "persistent" for found in server.indexes.values() for ix in found)


def test_reconnecting_creates_nothing_new(server: FakeArango) -> None:
    ArangoGraphStore.connect(server.url, DB, password=PASSWORD, create=True).close()
    indexes = {k: len(v) for k, v in server.indexes.items()}
    server.requests.clear()
    ArangoGraphStore.connect(server.url, DB, password=PASSWORD).close()
    assert server.calls("POST", "/_api/collection") == []
    assert server.calls("POST", "/_api/gharial") == []
    assert server.calls("POST", "/_api/database") == []
    assert {k: len(v) for k, v in server.indexes.items()} == indexes


def test_missing_database_without_create_is_an_error(server: FakeArango) -> None:
    with pytest.raises(GraphStoreError, match=r"database 'nope'.*does not exist; connect with"):
        ArangoGraphStore.connect(server.url, "nope", password=PASSWORD)
    assert "nope" not in server.databases


def test_wrong_collection_type_is_reported(server: FakeArango) -> None:
    server.databases[DB] = {"rated": {"type": 2, "docs": {}}}
    with pytest.raises(GraphStoreError, match="collection 'rated' exists as a document"):
        ArangoGraphStore.connect(server.url, DB, password=PASSWORD)


def test_drop_deletes_the_database(server: FakeArango, store: ArangoGraphStore) -> None:
    store.drop()
    assert DB not in server.databases


# --- credentials -------------------------------------------------------------------------------


def test_wrong_password_gives_clear_error_without_the_password(
    server: FakeArango, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Xy7-password"
    with pytest.raises(GraphStoreError) as info:
        ArangoGraphStore.connect(server.url, DB, password=wrong, create=True)
    message = str(info.value)
    assert "not authorized: wrong username or password (HTTP 401)" in message
    assert server.url in message
    assert wrong not in message and wrong not in caplog.text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_password_never_logged_or_in_errors(
    server: FakeArango, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = server.url.replace("http://", f"http://root:{PASSWORD}@")
    s = ArangoGraphStore.connect(url, DB, create=True)  # credentials taken from the URL
    assert s.counts()["movies"] == 0
    server.password = "rotated"  # the server now refuses the store's password
    with pytest.raises(GraphStoreError) as info:
        s.counts()
    s.close()
    assert "HTTP 401" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text
    assert caplog.text  # the store did log (connect, create), just not the secret


def test_unreachable_server_is_a_store_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens
    with pytest.raises(GraphStoreError, match="cannot reach the server"):
        ArangoGraphStore.connect(f"http://127.0.0.1:{port}", DB, password=PASSWORD)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8529", "ArangoDB URL must look like http://host:8529"),
        ("ftp://127.0.0.1:8529", "ArangoDB URL must look like http://host:8529"),
        ("http://", "ArangoDB URL must look like http://host:8529"),
    ],
)
def test_bad_url(url: str, message: str) -> None:
    with pytest.raises(GraphStoreError, match=re.escape(message)):
        ArangoGraphStore.connect(url, DB)


# --- upsert ------------------------------------------------------------------------------------


def test_upsert_writes_documents_in_one_transaction(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    report = store.upsert(small_batch())
    assert report.created["movies"] == 2 and report.created["rated"] == 2
    assert report.created["acted_in"] == 1 and report.created["tags"] == 0
    assert set(report.created) == {k.value for k in VertexKind} | {k.value for k in EdgeKind}
    assert not any(report.updated.values())

    begin = server.calls("POST", "/_api/transaction/begin")
    assert len(begin) == 1
    collections = begin[0].body["collections"]
    assert sorted(collections["write"]) == ["acted_in", "movies", "people", "rated", "users"]
    writes = write_requests(server)
    trx_ids = {r.headers.get("x-arango-trx-id") for r in server.queries()}
    assert len(trx_ids) == 1 and None not in trx_ids
    assert len(server.calls("PUT", f"/_api/transaction/{trx_ids.pop()}")) == 1

    by_col = {r.body["bindVars"]["@collection"]: r.body["bindVars"]["docs"] for r in writes}
    assert by_col["rated"] == [
        {"_key": "u1:1", "_from": "users/u1", "_to": "movies/1", "rating": 4.5, "timestamp": 100},
        {"_key": "u1:2", "_from": "users/u1", "_to": "movies/2", "rating": None, "timestamp": 200},
    ]
    assert by_col["acted_in"] == [
        {"_key": "tom_hanks:1", "_from": "people/tom_hanks", "_to": "movies/1", "order": 0}
    ]
    assert by_col["movies"][0]["_key"] == "1" and by_col["movies"][0]["title"] == "Toy"
    for r in server.queries():  # keys and documents travel in bindVars, never in the text
        assert "tom_hanks" not in r.body["query"] and "u1" not in r.body["query"]

    rated = store.edge_frame(EdgeKind.RATED)
    assert rated[["src", "dst"]].values.tolist() == [["u1", "1"], ["u1", "2"]]
    assert math.isnan(rated["rating"].iloc[1]) and rated["rating"].dtype == "float32"
    assert store.vertex(VertexKind.PERSON, "tom_hanks") == {"key": "tom_hanks", "name": "Tom Hanks"}
    assert store.vertex(VertexKind.PERSON, "nobody") is None
    assert store.counts()["rated"] == 2


def test_second_upsert_writes_nothing_and_changes_are_updates(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    store.upsert(small_batch())
    server.requests.clear()
    again = store.upsert(small_batch())
    assert not again.changed
    assert write_requests(server) == []

    b = GraphBatch()
    b.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["2", "3"], "title": ["Heat!", "Up"]}))
    report = store.upsert(b)
    assert (report.created["movies"], report.updated["movies"]) == (1, 1)
    assert store.vertex(VertexKind.MOVIE, "2")["title"] == "Heat!"  # type: ignore[index]


def test_dangling_edge_writes_nothing(server: FakeArango, store: ArangoGraphStore) -> None:
    store.upsert(small_batch())
    before = store.counts()
    server.requests.clear()
    b = GraphBatch()
    b.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["9"]}))
    b.add_edges(EdgeKind.RATED, pd.DataFrame({"src": ["u1", "ghost"], "dst": ["9", "1"]}))
    with pytest.raises(GraphDataError) as info:
        store.upsert(b)
    assert str(info.value) == (
        "rated: edge 'ghost' -> '1' names src 'ghost', which is not a users vertex in the "
        "store or the batch"
    )
    assert write_requests(server) == []
    begun = server.calls("POST", "/_api/transaction/begin")
    trx_id = {r.headers.get("x-arango-trx-id") for r in server.queries()}
    assert len(begun) == 1 and len(trx_id) == 1
    assert len(server.calls("DELETE", f"/_api/transaction/{trx_id.pop()}")) == 1  # aborted
    assert [r for r in server.requests if r.method == "PUT"] == []  # never committed
    assert store.counts() == before


@pytest.mark.parametrize(
    ("kind", "frame", "message"),
    [
        (VertexKind.MOVIE, {"key": ["1", "a/b"]}, "movies vertex row 1: key 'a/b' has characters"),
        (VertexKind.PERSON, {"key": [""]}, "people vertex row 0: key is empty"),
        (EdgeKind.RATED, {"src": ["u 1"], "dst": ["1"]}, "rated edge row 0 src: key 'u 1'"),
        (
            EdgeKind.TAGGED,
            {"src": ["1"], "dst": ["x" * 300]},
            "tagged edge row 0 dst: key is longer",
        ),
    ],
)
def test_unsafe_keys_are_refused_before_any_request(
    server: FakeArango,
    store: ArangoGraphStore,
    kind: VertexKind | EdgeKind,
    frame: dict[str, list[str]],
    message: str,
) -> None:
    b = GraphBatch()
    if isinstance(kind, VertexKind):
        b.add_vertices(kind, pd.DataFrame(frame))
    else:
        b.add_edges(kind, pd.DataFrame(frame))
    with pytest.raises(GraphDataError, match=re.escape(message)):
        store.upsert(b)
    assert server.requests == []


def test_import_mode_uses_bulk_import(server: FakeArango) -> None:
    s = ArangoGraphStore.connect(
        server.url, DB, password=PASSWORD, create=True, write_mode="import"
    )
    server.requests.clear()
    report = s.upsert(small_batch())
    s.close()
    imports = server.calls("POST", "/_api/import")
    assert {r.params["collection"] for r in imports} == {
        "movies",
        "users",
        "people",
        "rated",
        "acted_in",
    }
    for r in imports:
        assert r.params["onDuplicate"] == "replace"
        assert r.params["complete"] in ("1", "true")  # halt_on_error=True
    rated = next(r for r in imports if r.params["collection"] == "rated").body
    assert [(d["_key"], d["_from"], d["_to"]) for d in rated] == [
        ("u1:1", "users/u1", "movies/1"),
        ("u1:2", "users/u1", "movies/2"),
    ]
    assert server.calls("POST", "/_api/transaction/begin") == []
    assert report.created["rated"] == 2
    assert set(server.docs(DB, "rated")) == {"u1:1", "u1:2"}


def test_large_batches_go_in_chunks_and_cursors_page(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    n = 10_003
    b = GraphBatch()
    b.add_vertices(VertexKind.TAG, pd.DataFrame({"key": [f"t{i}" for i in range(n)]}))
    assert store.upsert(b).created["tags"] == n
    assert [len(r.body["bindVars"]["docs"]) for r in write_requests(server)] == [5000, 5000, 3]
    server.requests.clear()
    frame = store.vertex_frame(VertexKind.TAG)
    assert len(frame) == n and frame["key"].tolist() == sorted(f"t{i}" for i in range(n))
    [first] = server.calls("POST", "/_api/cursor")
    assert first.body["options"]["stream"] is True  # a full read: stream cursor
    assert first.body["options"]["failOnWarning"] is True
    assert len([r for r in server.requests if re.search(r"/_api/cursor/\d+$", r.path)]) == 1


# --- traversal requests and answers ------------------------------------------------------------


class Canned:
    """An on_query hook: answers one row and remembers the query it was asked."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, query: str, bind: dict[str, Any]) -> list[Any]:
        self.asked.append((query, bind))
        return [self.row]


def test_khop_by_aql_sends_builder_query_and_rounds_sorts_and_limits(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    rows = [
        {"k": "b", "s": 1.0},
        {"k": "a", "s": 1.0000000001},  # equal to b after rounding to 32 significant bits
        {"k": "c", "s": 3.5},
        {"k": "z", "s": 1e-12},  # tiny but not zero: kept, as the embedded store keeps it
    ]
    server.on_query = canned = Canned({"found": True, "rows": rows})
    weights = {EdgeKind.DIRECTED: 1.0, EdgeKind.SIMILAR_TO: 0.5}
    got = store.khop_scores("u1", hops=2, weights=weights, min_rating=3.5, limit=2, engine="aql")
    assert got == [("c", 3.5), ("a", 1.0)]  # a == b after rounding: key order decides
    assert canned.asked[0] == khop_aql.khop_scores(
        "u1", hops=2, weights=weights, min_rating=3.5, limit=2
    )
    sent = server.queries()[0].body
    assert (sent["query"], sent["bindVars"]) == canned.asked[0]
    assert sent["options"]["failOnWarning"] is True
    full = store.khop_scores("u1", hops=2, weights=weights, min_rating=3.5, engine="aql")
    assert full == [("c", 3.5), ("a", 1.0), ("b", 1.0), ("z", pytest.approx(1e-12, rel=1e-9))]
    assert "@limit" not in canned.asked[1][0]
    assert store.khop_scores("u1", hops=1, limit=0, engine="aql") == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.khop_scores("ghost"), "no users vertex with key 'ghost'"),
        (lambda s: s.co_people("404"), "no movies vertex with key '404'"),
        (lambda s: s.user_affinity("ghost"), "no users vertex with key 'ghost'"),
        (
            lambda s: s.neighbours(VertexKind.TAG, "nope", EdgeKind.TAGGED),
            "no tags vertex with key 'nope'",
        ),
    ],
)
def test_unknown_vertices_raise(
    server: FakeArango, store: ArangoGraphStore, call: Any, message: str
) -> None:
    server.on_query = Canned({"found": False, "rows": [], "n": 0, "genres": [], "people": []})
    with pytest.raises(UnknownVertexError, match=re.escape(message)):
        call(store)


def test_unsafe_query_keys_are_unknown_without_a_request(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    with pytest.raises(UnknownVertexError, match="no users vertex with key 'a/b'"):
        store.khop_scores("a/b")
    with pytest.raises(UnknownVertexError, match="no movies vertex with key 'x y'"):
        store.explain("u1", "x y")
    assert server.requests == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.khop_scores("u1", hops=4), "khop_scores: hops must be 1, 2 or 3, got 4"),
        (lambda s: s.khop_scores("u1", limit=-1), "khop_scores: limit must be >= 0 or None"),
        (lambda s: s.co_people("1", min_shared=0), "co_people: min_shared must be >= 1, got 0"),
        (lambda s: s.co_people("1", limit=-2), "co_people: limit must be >= 0 or None"),
        (
            lambda s: s.neighbours(VertexKind.MOVIE, "1", EdgeKind.TAGGED, "up"),
            "neighbours: direction must be 'out', 'in' or 'any', got 'up'",
        ),
    ],
)
def test_bad_arguments_raise_before_any_request(
    server: FakeArango, store: ArangoGraphStore, call: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call(store)
    assert server.requests == []


def test_co_people_neighbours_affinity_answers(server: FakeArango, store: ArangoGraphStore) -> None:
    server.on_query = Canned(
        {"found": True, "rows": [{"k": "9", "n": 2}, {"k": "10", "n": 3}, {"k": "11", "n": 2}]}
    )
    assert store.co_people("1", limit=2) == [("10", 3), ("11", 2)]
    assert server.queries()[-1].body["bindVars"] == {"movie": "movies/1", "min_shared": 2}

    server.on_query = Canned(
        {
            "found": True,
            "rows": [
                {"id": "movies/2", "out": False, "attrs": {"score": 0.5}},
                {"id": "movies/2", "out": True, "attrs": {"score": None}},
                {"id": "movies/10", "out": True, "attrs": {"score": 1.0}},
            ],
        }
    )
    got = store.neighbours(VertexKind.MOVIE, "1", EdgeKind.SIMILAR_TO)
    assert [(n.kind, n.key) for n in got] == [
        (VertexKind.MOVIE, "10"),
        (VertexKind.MOVIE, "2"),
        (VertexKind.MOVIE, "2"),
    ]
    assert math.isnan(got[1].attrs["score"]) and got[2].attrs["score"] == 0.5  # type: ignore[arg-type]

    server.on_query = Canned(
        {
            "found": True,
            "n": 4,
            "genres": [{"k": "drama", "s": 2.0}, {"k": "comedy", "s": 0.0}],
            "people": [{"k": "p", "s": -1.0}],
        }
    )
    aff = store.user_affinity("u1")
    assert aff.genres == {"drama": 0.5} and aff.people == {"p": -0.25}


def test_explain_picks_by_priority_then_rating_then_time(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    seeds = [
        {"id": "movies/5", "key": "5", "title": "Five", "rating": 4.0, "ts": 50},
        {"id": "movies/6", "key": "6", "title": "", "rating": 5.0, "ts": 10},
        {"id": "movies/7", "key": "7", "title": "Seven", "rating": 5.0, "ts": 20},
    ]
    paths = [
        {"seed": "movies/5", "edge": "directed", "via": "people/zed", "name": "Zed"},
        {"seed": "movies/6", "edge": "in_genre", "via": "genres/drama", "name": "Drama"},
        {"seed": "movies/7", "edge": "directed", "via": "people/amy", "name": ""},
        {"seed": "movies/7", "edge": "directed", "via": "people/abe", "name": "Abe"},
    ]
    row = {
        "user_found": True,
        "movie_found": True,
        "movie_title": "Heat",
        "seeds": seeds,
        "paths": paths,
    }
    server.on_query = Canned(row)
    got = store.explain("u1", "2")
    assert got is not None
    assert (got.edge, got.seed, got.via_key, got.via_name) == (EdgeKind.DIRECTED, "7", "abe", "Abe")
    assert got.text == "You rated Seven 5/5; Heat has the same director, Abe."
    server.on_query = Canned({**row, "paths": paths[1:2]})
    only_genre = store.explain("u1", "2")
    assert only_genre is not None and only_genre.seed_title == "6"  # empty title -> key
    server.on_query = Canned({**row, "paths": []})
    assert store.explain("u1", "2") is None
    server.on_query = Canned({**row, "movie_found": False})
    with pytest.raises(UnknownVertexError, match="no movies vertex with key '2'"):
        store.explain("u1", "2")


# --- factory -----------------------------------------------------------------------------------


def test_factory_opens_arango_from_environment(
    server: FakeArango,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MARQUEE_ARANGO_URL", server.url)
    monkeypatch.setenv("MARQUEE_ARANGO_DB", "from_env")
    monkeypatch.setenv("MARQUEE_ARANGO_USER", "root")
    monkeypatch.setenv("MARQUEE_ARANGO_PASSWORD", PASSWORD)
    s = open_store(Home(tmp_path))
    assert isinstance(s, ArangoGraphStore) and isinstance(s, GraphStore)
    s.close()
    assert "from_env" in server.databases
    assert PASSWORD not in caplog.text


def test_factory_argument_overrides_and_bad_password_fails(
    server: FakeArango, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    monkeypatch.setenv("MARQUEE_ARANGO_PASSWORD", "not-it")
    with pytest.raises(GraphStoreError, match="HTTP 401") as info:
        open_store(Home(tmp_path), arango_url=server.url)
    assert "not-it" not in str(info.value)


def test_factory_defaults_to_the_embedded_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local = pytest.importorskip("features.graph.local")
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    s = open_store(Home(tmp_path))
    assert isinstance(s, local.LocalGraphStore)
    s.close()
