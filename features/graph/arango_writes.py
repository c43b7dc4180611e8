"""The ArangoDB store's write planning: documents from a batch, the checks that keep bad input
from writing anything, and the created/updated plan, all independent of how the writes are sent.

arango_upsert sends the plan (in one stream transaction, in several, or by bulk import); these
functions only read, through the ``Rows`` callable it passes (one AQL query in, its rows out, on
the transaction or the database).

Values JSON cannot hold: NaN is written as null and read back as NaN (the embedded store's
"unknown" float). +-inf has no JSON form (python-arango would send ``Infinity``, which the server
rejects as invalid JSON), so a batch holding one is refused before any request, naming the
collection, row and column; the embedded store would keep it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from features.graph import arango_aql as aql
from features.graph.arango_keys import check_key, edge_key, vertex_id
from features.graph.batch import GraphBatch, GraphDataError
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.graph.store import UpsertReport

CHUNK = 5000  # documents or keys per request

Rows = Callable[[aql.AqlQuery], list[Any]]
Docs = dict[str, list[dict[str, Any]]]
Plan = dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _to_json(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def edge_endpoint_kinds(edge: EdgeKind) -> tuple[VertexKind, VertexKind]:
    """(source kind, target kind) of an edge kind."""
    spec = EDGE_SPECS[edge]
    return spec.src, spec.dst


def check_finite(batch: GraphBatch) -> None:
    """Refuse +-inf in any float column, before any request (see the module doc)."""
    frames: list[tuple[str, str, Any]] = [("vertex", k.value, f) for k, f in batch.vertices.items()]
    frames += [("edge", k.value, f) for k, f in batch.edges.items()]
    for what, name, frame in frames:
        for column in frame.columns:
            values = frame[column]
            if values.dtype.kind != "f":
                continue
            bad = values.abs().to_numpy() == math.inf
            if bad.any():
                row = int(bad.argmax())
                raise GraphDataError(
                    f"{name} {what} row {row}: column {column!r} is {float(values.iloc[row])}; "
                    "ArangoDB stores JSON, which has no infinity"
                )


def check_keys(batch: GraphBatch) -> None:
    """Refuse keys ArangoDB cannot hold, before any request."""
    for vkind, frame in batch.vertices.items():
        for i, key in enumerate(frame["key"]):
            check_key(key, f"{vkind.value} vertex row {i}")
    for ekind, frame in batch.edges.items():
        for i, (src, dst) in enumerate(zip(frame["src"], frame["dst"], strict=True)):
            check_key(src, f"{ekind.value} edge row {i} src")
            check_key(dst, f"{ekind.value} edge row {i} dst")


def documents(batch: GraphBatch) -> Docs:
    """The documents per collection for a deduplicated ``batch`` (edge keys from (src, dst))."""
    docs: Docs = {}
    for vkind, frame in batch.vertices.items():
        docs[vkind.value] = [
            {"_key": r.pop("key"), **{str(k): _to_json(v) for k, v in r.items()}}
            for r in frame.to_dict("records")
        ]
    for ekind, frame in batch.edges.items():
        spec = EDGE_SPECS[ekind]
        rows: list[dict[str, Any]] = []
        for r in frame.to_dict("records"):
            src, dst = str(r.pop("src")), str(r.pop("dst"))
            rows.append(
                {
                    "_key": edge_key(src, dst),
                    "_from": vertex_id(spec.src, src),
                    "_to": vertex_id(spec.dst, dst),
                    **{str(k): _to_json(v) for k, v in r.items()},
                }
            )
        docs[ekind.value] = rows
    return docs


def report(plan: Plan) -> UpsertReport:
    """Counts for every collection (zeros too), as the embedded store reports them."""
    names = [k.value for k in VertexKind] + [k.value for k in EdgeKind]
    empty: tuple[list[Any], list[Any]] = ([], [])
    return UpsertReport(
        created={name: len(plan.get(name, empty)[0]) for name in names},
        updated={name: len(plan.get(name, empty)[1]) for name in names},
    )


def plan_changes(docs: Docs, rows: Rows) -> Plan:
    """Per collection: (documents that are new, documents that differ from the stored)."""
    plan: Plan = {}
    for name, wanted in docs.items():
        stored: dict[str, dict[str, Any]] = {}
        for chunk in chunks([d["_key"] for d in wanted]):
            for doc in rows(aql.fetch_docs(name, list(chunk))):
                stored[doc["_key"]] = doc
        new = [d for d in wanted if d["_key"] not in stored]
        changed = [d for d in wanted if d["_key"] in stored and stored[d["_key"]] != d]
        plan[name] = (new, changed)
    return plan


def check_endpoints(batch: GraphBatch, rows: Rows) -> None:
    """Raise GraphDataError for the first edge whose endpoint is in neither store nor batch
    (``batch`` deduplicated, so the message matches the embedded store's)."""
    in_batch = {k: set(f["key"]) for k, f in batch.vertices.items()}
    wanted: dict[VertexKind, set[str]] = {}
    for ekind, frame in batch.edges.items():
        src_kind, dst_kind = edge_endpoint_kinds(ekind)
        wanted.setdefault(src_kind, set()).update(frame["src"])
        wanted.setdefault(dst_kind, set()).update(frame["dst"])
    known: dict[VertexKind, set[str]] = {}
    for vkind, keys in wanted.items():
        missing = sorted(keys - in_batch.get(vkind, set()))
        found: set[str] = set(in_batch.get(vkind, set()))
        for chunk in chunks(missing):
            found.update(rows(aql.existing_keys(vkind.value, list(chunk))))
        known[vkind] = found
    for ekind in EdgeKind:  # the embedded store's order: kinds, then src before dst
        edges = batch.edges.get(ekind)
        if edges is None:
            continue
        for side, vkind in zip(("src", "dst"), edge_endpoint_kinds(ekind), strict=True):
            for src, dst, key in zip(edges["src"], edges["dst"], edges[side], strict=True):
                if key not in known[vkind]:
                    raise GraphDataError(
                        f"{ekind.value}: edge {src!r} -> {dst!r} names {side} {key!r}, which "
                        f"is not a {vkind.value} vertex in the store or the batch"
                    )


Request = tuple[str, list[dict[str, Any]]]  # (collection, at most CHUNK documents)


def write_parts(plan: Plan, max_bytes: int) -> list[list[Request]]:
    """The plan's writes as requests of at most CHUNK documents, grouped into parts of at most
    ``max_bytes`` of JSON (only a single document larger than that makes a larger part).
    Vertex collections come before edge collections, so when a later part fails, every
    committed edge still ends at committed vertices."""
    order = [k.value for k in VertexKind] + [k.value for k in EdgeKind]
    parts: list[list[Request]] = []
    current: list[Request] = []
    docs: list[dict[str, Any]] = []
    size = 0

    def close_request(name: str) -> None:
        nonlocal docs
        if docs:
            current.append((name, docs))
            docs = []

    for name in order:
        if name not in plan:
            continue
        new, changed = plan[name]
        for doc in new + changed:
            nbytes = len(json.dumps(doc)) + 1
            if size + nbytes > max_bytes and (docs or current):
                close_request(name)
                parts.append(current)
                current, size = [], 0
            elif len(docs) == CHUNK:
                close_request(name)
            docs.append(doc)
            size += nbytes
        close_request(name)
    if current:
        parts.append(current)
    return parts
