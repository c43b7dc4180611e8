"""Sending a batch to ArangoDB: one stream transaction, transaction-sized parts, or bulk import.

What is atomic (the store's all-or-nothing promise, stated exactly):

- Bad input never writes: keys, +-inf values and dangling edge endpoints are checked before the
  first write, and the batch is refused whole.
- A batch whose documents to write come to at most ``max_transaction_bytes`` of JSON (32 MiB by
  default) is checked and written in one stream transaction, committed at the end and aborted on
  any error: all of it or none of it. ArangoDB caps a stream transaction's size
  (``--transaction.streaming-max-transaction-size``: 128 MiB in 3.11, 512 MiB in 3.12, counted
  in the storage engine's bytes, which exceed the JSON's), and ends one idle for 60 s.
- A larger batch (an ML-1M ratings import is about 90 MiB) is written in parts of at most
  ``max_transaction_bytes``, each its own stream transaction, vertex collections before edge
  collections. Each part is all-or-nothing. If part k fails (server gone, limit hit), parts
  1..k-1 stay committed: whole documents, and every committed edge ends at committed vertices,
  so the store holds a consistent subset of the batch, never half a document. The error says
  how many parts were committed. Re-running the same batch repairs it: writes replace by a
  deterministic ``_key``, and the re-run writes only what is missing or different.
- ``write_mode="import"`` sends the same parts through the bulk import API (``complete=true``:
  each request all-or-nothing), which cannot run inside a stream transaction; the same
  statement holds per request instead of per part.
"""

from __future__ import annotations

import json
import logging
from typing import Literal

from arango.database import Database

from features.graph import arango_aql as aql
from features.graph import arango_writes as writes
from features.graph.arango_connection import TRANSPORT_ERRORS, Connection, describe
from features.graph.batch import GraphBatch
from features.graph.store import GraphStoreError, UpsertReport

log = logging.getLogger(__name__)

WriteMode = Literal["transaction", "import"]
MAX_TRANSACTION_BYTES = 32 * 2**20


def upsert(
    conn: Connection, batch: GraphBatch, *, mode: WriteMode, max_transaction_bytes: int
) -> UpsertReport:
    """Apply a batch (see the module doc for what is atomic)."""
    writes.check_keys(batch)
    writes.check_finite(batch)
    dedup = batch.deduplicated()
    docs = writes.documents(dedup)
    written = [name for name, rows in docs.items() if rows]
    if not written:
        return writes.report({})
    if mode == "transaction" and _json_bytes(docs) <= max_transaction_bytes:
        return _in_one_transaction(conn, dedup, docs, written)
    with conn.errors("checking the batch against the store"):
        writes.check_endpoints(dedup, conn.rows)
        plan = writes.plan_changes(docs, conn.rows)
    parts = writes.write_parts(plan, max_transaction_bytes)
    for done, part in enumerate(parts):
        try:
            if mode == "transaction":
                _commit_part(conn, part)
            else:
                _import_part(conn, part)
        except GraphStoreError as exc:
            raise GraphStoreError(
                f"{exc} (part {done + 1} of {len(parts)}; {done} earlier part(s) were committed "
                "and stay: re-run the same batch to complete it)"
            ) from None
    if len(parts) > 1:
        log.info("%s: wrote the batch in %d parts", conn.where, len(parts))
    return writes.report(plan)


def _json_bytes(docs: writes.Docs) -> int:
    """Bytes of JSON of all documents, counted per request-sized chunk."""
    total = 0
    for rows in docs.values():
        for chunk in writes.chunks(rows):
            total += len(json.dumps(list(chunk)))
    return total


def _abort(conn: Connection, txn: Database) -> None:
    try:
        txn.abort_transaction()  # type: ignore[attr-defined]
    except TRANSPORT_ERRORS as exc:
        log.warning("%s: aborting the transaction failed: %s", conn.where, describe(exc))


def _in_one_transaction(
    conn: Connection, batch: GraphBatch, docs: writes.Docs, written: list[str]
) -> UpsertReport:
    # Every collection written must be declared; reads are declared too (the endpoint checks).
    ends = {k.value for e in batch.edges for k in writes.edge_endpoint_kinds(e)}
    read = sorted(ends - set(written))
    with conn.errors("beginning a transaction"):
        txn = conn.db.begin_transaction(read=read, write=written)
    try:
        with conn.errors("checking the batch against the store"):
            writes.check_endpoints(batch, lambda q: conn.rows(q, txn))
            plan = writes.plan_changes(docs, lambda q: conn.rows(q, txn))
        with conn.errors("writing the batch"):
            for name, (new, changed) in plan.items():
                for chunk in writes.chunks(new + changed):
                    conn.rows(aql.write_docs(name, list(chunk)), txn)
            txn.commit_transaction()
    except BaseException:
        _abort(conn, txn)
        raise
    return writes.report(plan)


def _commit_part(conn: Connection, part: list[writes.Request]) -> None:
    names = sorted({name for name, _ in part})
    with conn.errors("beginning a transaction"):
        txn = conn.db.begin_transaction(write=names)
    try:
        with conn.errors("writing a part of the batch"):
            for name, docs in part:
                conn.rows(aql.write_docs(name, docs), txn)
            txn.commit_transaction()
    except BaseException:
        _abort(conn, txn)
        raise


def _import_part(conn: Connection, part: list[writes.Request]) -> None:
    with conn.errors("importing the batch"):
        for name, docs in part:
            result = conn.db.collection(name).import_bulk(
                docs, on_duplicate="replace", halt_on_error=True, details=True
            )
            if not isinstance(result, dict) or result.get("errors"):
                details = result.get("details", []) if isinstance(result, dict) else []
                raise GraphStoreError(
                    f"{conn.where}: import into {name} refused documents: "
                    f"{'; '.join(map(str, details[:3])) or result}"
                )
