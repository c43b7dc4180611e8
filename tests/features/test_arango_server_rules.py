"""The rules the local ArangoDB test server enforces as a real server does, and the store's
guards against them: undeclared transaction collections, import error codes, idle transactions,
cursors that would span batches inside a transaction, and warnings under failOnWarning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from arango import ArangoClient
from arango.cursor import Cursor
from arango.database import StandardDatabase
from arango.exceptions import (
    AQLQueryExecuteError,
    CursorNextError,
    DocumentInsertError,
    TransactionCommitError,
)

from features.graph import arango_aql as aql
from features.graph.arango import ArangoGraphStore
from features.graph.arango_connection import BATCH, TransactionSpansBatches
from features.graph.store import GraphStoreError
from tests.features.arango_test_queries import QueryAnswer
from tests.features.arango_test_server import FakeArango

PASSWORD = "pw-rules"
DB = "marquee_rules"


@pytest.fixture
def server() -> Iterator[FakeArango]:
    fake = FakeArango(password=PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def store(server: FakeArango) -> Iterator[ArangoGraphStore]:
    s = ArangoGraphStore.connect(server.url, DB, password=PASSWORD, create=True)
    yield s
    s.close()


@pytest.fixture
def db(server: FakeArango, store: ArangoGraphStore) -> Iterator[StandardDatabase]:
    client = ArangoClient(hosts=server.url)
    yield client.db(DB, username="root", password=PASSWORD)
    client.close()


def test_a_write_to_an_undeclared_collection_fails_1652(db: StandardDatabase) -> None:
    txn = db.begin_transaction(read=["movies"], write=["tags"])
    _write(txn, "tags", "t1")  # declared: fine
    with pytest.raises(AQLQueryExecuteError) as info:
        _write(txn, "genres", "g1")
    assert (info.value.http_code, info.value.error_code) == (400, 1652)
    txn.abort_transaction()


def _write(txn: Any, collection: str, key: str) -> None:
    text, bind = aql.write_docs(collection, [{"_key": key, "name": key}])
    txn.aql.execute(text, bind_vars=bind)


@pytest.mark.parametrize(
    ("collection", "doc", "on_duplicate", "status", "number"),
    [
        ("tags", {"_key": "a b"}, "replace", 400, 1221),
        ("tagged", {"_key": "e1", "_from": "movies/1"}, "replace", 400, 1233),
        ("tags", {"_key": "t0"}, "error", 409, 1210),
    ],
    ids=["bad-key", "edge-without-to", "duplicate"],
)
def test_a_complete_import_fails_whole_with_the_servers_code(
    server: FakeArango,
    db: StandardDatabase,
    collection: str,
    doc: dict[str, Any],
    on_duplicate: str,
    status: int,
    number: int,
) -> None:
    db.collection("tags").import_bulk([{"_key": "t0"}])
    good = {"_key": "ok", "_from": "movies/1", "_to": "tags/t0"}
    with pytest.raises(DocumentInsertError) as info:
        db.collection(collection).import_bulk(
            [good, doc], halt_on_error=True, on_duplicate=on_duplicate
        )
    assert (info.value.http_code, info.value.error_code) == (status, number)
    assert "ok" not in server.docs(DB, collection)  # nothing of the request was written


def test_an_idle_transaction_is_aborted_and_forgotten(
    server: FakeArango, db: StandardDatabase
) -> None:
    server.idle_timeout = 0.05
    txn = db.begin_transaction(write=["tags"])
    _write(txn, "tags", "t1")
    time.sleep(0.1)
    with pytest.raises(TransactionCommitError) as info:
        txn.commit_transaction()
    assert (info.value.http_code, info.value.error_code) == (404, 1655)
    assert "t1" not in server.docs(DB, "tags")


def test_a_cursor_in_a_transaction_cannot_fetch_its_next_batch(
    server: FakeArango, db: StandardDatabase
) -> None:
    """python-arango fetches later batches without the transaction header; the test server
    refuses that, so code that lets such a cursor span batches fails here."""
    server.on_query = lambda q, b: list(range(30))
    txn = db.begin_transaction(write=["tags"])
    cursor = txn.aql.execute("FOR i IN 1..30 RETURN i", batch_size=10)
    assert isinstance(cursor, Cursor)
    with pytest.raises(CursorNextError):
        list(cursor)
    txn.abort_transaction()


def test_the_store_refuses_a_query_spanning_batches_inside_a_transaction(
    server: FakeArango, store: ArangoGraphStore
) -> None:
    server.on_query = lambda q, b: list(range(BATCH + 1))
    txn = store._conn.db.begin_transaction(write=["tags"])
    with pytest.raises(TransactionSpansBatches, match=f"more than {BATCH} rows"):
        store._conn.rows(("FOR i IN 0..5000 RETURN i", {}), txn)
    txn.abort_transaction()
    assert len(store._conn.rows(("FOR i IN 0..5000 RETURN i", {}))) == BATCH + 1  # outside: fine


def test_warnings_fail_the_query_under_fail_on_warning(
    server: FakeArango, store: ArangoGraphStore, db: StandardDatabase
) -> None:
    warning = {"code": 1562, "message": "division by zero"}
    server.on_query = lambda q, b: QueryAnswer([{"found": True, "rows": []}], [warning])
    with pytest.raises(GraphStoreError, match="HTTP 400, error 1562: division by zero"):
        store.co_people("1")
    cursor = db.aql.execute("RETURN 1 / 0")  # without failOnWarning: a result and a warning
    assert isinstance(cursor, Cursor)
    assert list(cursor) == [{"found": True, "rows": []}]
    assert cursor.warnings() == [warning]
    sent = [r.body["options"].get("failOnWarning") for r in server.queries()]
    assert sent[0] is True and sent[-1] is None
