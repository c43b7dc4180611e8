"""The AQL the local ArangoDB test server can answer: the store's plain queries, from memory.

The test server cannot run AQL. The queries of features.graph.arango_aql (whole documents,
keys, counts, edge ends, a user's movies) are recognised by their exact text and answered from
the collections in memory, with AQL's semantics for what they do (``>=`` on a null rating is
false, DISTINCT and UNION_DISTINCT keep one of each). Anything else goes to a test's hook,
which may also return warnings; with no hook the query fails with HTTP 501.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from features.graph import arango_aql as aql
from features.graph.schema import USER_EDGES, EdgeKind

Collections = dict[str, dict[str, Any]]  # name -> {"type": 2|3, "docs": {key: doc}}


@dataclass
class QueryAnswer:
    """What a hook answers: rows, and warnings ({code, message}) a real server would attach."""

    rows: list[Any]
    warnings: list[dict[str, Any]] = field(default_factory=list)


QueryHook = Callable[[str, dict[str, Any]], "list[Any] | QueryAnswer"]


class QueryFailed(Exception):
    def __init__(self, status: int, num: int, message: str) -> None:
        super().__init__(message)
        self.status, self.num, self.message = status, num, message


def _public(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "_id": f"{name}/{doc['_key']}", "_rev": "_r1"}


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_id", "_rev")}


def _by_from(cols: Collections, kind: EdgeKind, vertex: str) -> list[dict[str, Any]]:
    return [d for d in cols[kind.value]["docs"].values() if d.get("_from") == vertex]


def _user_movies(cols: Collections, bind: dict[str, Any]) -> list[Any]:
    user = bind["user"]
    name, _, key = user.partition("/")
    found = key in cols.get(name, {"docs": {}})["docs"]
    seeds: list[str] = []
    for e in _by_from(cols, EdgeKind.RATED, user):
        rating = e.get("rating")
        if (
            isinstance(rating, int | float)
            and rating >= bind["min_rating"]
            and e["_to"] not in seeds
        ):
            seeds.append(e["_to"])
    seen: list[str] = []
    for kind in USER_EDGES:
        for e in _by_from(cols, kind, user):
            if e["_to"] not in seen:
                seen.append(e["_to"])
    return [{"found": found, "seeds": seeds, "seen": seen}]


def _texts() -> dict[str, str]:
    return {
        "fetch_docs": aql.fetch_docs("x", [])[0],
        "existing_keys": aql.existing_keys("x", [])[0],
        "all_docs": aql.all_docs("x")[0],
        "one_doc": aql.one_doc("x", "k")[0],
        "write_docs": aql.write_docs("x", [])[0],
        "counts": aql.counts()[0],
        "all_keys": aql.all_keys("x")[0],
        "edge_ends": aql.edge_ends("x")[0],
        "user_movies": aql.user_movies("u", min_rating=4.0)[0],
    }


KNOWN = _texts()


def written_collection(query: str, bind: dict[str, Any]) -> str | None:
    """The collection a recognised query writes to, or None."""
    return str(bind["@collection"]) if query == KNOWN["write_docs"] else None


def answer(
    query: str, bind: dict[str, Any], cols: Collections, hook: QueryHook | None
) -> QueryAnswer:
    """Rows for a recognised query, else the hook's answer (QueryFailed when neither)."""
    name = bind.get("@collection", "")
    if name and name not in cols:
        raise QueryFailed(404, 1203, f"collection or view not found: {name}")
    docs: dict[str, dict[str, Any]] = cols[name]["docs"] if name else {}
    if query == KNOWN["fetch_docs"]:
        return QueryAnswer([_strip(_public(name, docs[k])) for k in bind["keys"] if k in docs])
    if query == KNOWN["existing_keys"]:
        return QueryAnswer([k for k in bind["keys"] if k in docs])
    if query == KNOWN["all_docs"]:
        return QueryAnswer([_strip(_public(name, d)) for d in docs.values()])
    if query == KNOWN["one_doc"]:
        key = bind["key"]
        return QueryAnswer([_strip(_public(name, docs[key]))] if key in docs else [])
    if query == KNOWN["write_docs"]:
        for doc in bind["docs"]:
            docs[doc["_key"]] = dict(doc)
        return QueryAnswer([])
    if query == KNOWN["counts"]:
        return QueryAnswer([{n: len(c["docs"]) for n, c in cols.items()}])
    if query == KNOWN["all_keys"]:
        return QueryAnswer(list(docs))
    if query == KNOWN["edge_ends"]:
        return QueryAnswer([[d["_from"], d["_to"]] for d in docs.values()])
    if query == KNOWN["user_movies"]:
        return QueryAnswer(_user_movies(cols, bind))
    if hook is not None:
        got = hook(query, bind)
        return got if isinstance(got, QueryAnswer) else QueryAnswer(list(got))
    raise QueryFailed(501, 9, "the test server cannot run this query")
