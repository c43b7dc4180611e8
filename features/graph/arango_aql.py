"""The ArangoDB store's plain AQL: whole documents in and out, counts, a user's movies, and the
edges the k-hop mirror pulls. Pure functions returning (query, bind_vars).

Every value a caller supplies (keys, ratings, documents) travels as a bind variable; the query
text holds only fixed collection names taken from ``features.graph.schema`` and fixed keywords,
so the AQL can be checked as text where no server runs. None of these queries traverses: each
reads one collection by its primary or edge index, or scans it once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.graph.arango_keys import vertex_id
from features.graph.schema import USER_EDGES, EdgeKind, VertexKind

AqlQuery = tuple[str, dict[str, Any]]

# Traversals over anonymous graphs must declare their vertex collections on a cluster.
WITH = "WITH " + ", ".join(k.value for k in VertexKind)


def float32_bound(value: float) -> float:
    """``value`` as the float32 the embedded store compares its float32 ratings with.

    NumPy compares a float32 column with a Python float in float32 (NEP 50), so a stored 4.1
    (float32 4.0999999) passes ``>= 4.1`` there; the ArangoDB store keeps that float32 value as a
    double, so the bound must be the same float32, widened exactly."""
    return float(np.float32(value))


def fetch_docs(collection: str, keys: list[str]) -> AqlQuery:
    """Stored documents (without _id and _rev) whose _key is in ``keys`` (primary index)."""
    query = 'FOR d IN @@collection FILTER d._key IN @keys RETURN UNSET(d, "_id", "_rev")'
    return query, {"@collection": collection, "keys": keys}


def existing_keys(collection: str, keys: list[str]) -> AqlQuery:
    """Which of ``keys`` exist in ``collection``."""
    query = "FOR d IN @@collection FILTER d._key IN @keys RETURN d._key"
    return query, {"@collection": collection, "keys": keys}


def write_docs(collection: str, docs: list[dict[str, Any]]) -> AqlQuery:
    """Insert ``docs``, replacing any stored document with the same _key (transactional)."""
    query = 'FOR d IN @docs INSERT d INTO @@collection OPTIONS { overwriteMode: "replace" }'
    return query, {"@collection": collection, "docs": docs}


def all_docs(collection: str) -> AqlQuery:
    """Every document of a collection, without _id and _rev (read with a stream cursor)."""
    return 'FOR d IN @@collection RETURN UNSET(d, "_id", "_rev")', {"@collection": collection}


def one_doc(collection: str, key: str) -> AqlQuery:
    """The document with ``key`` (zero or one row)."""
    query = 'FOR d IN @@collection FILTER d._key == @key LIMIT 1 RETURN UNSET(d, "_id", "_rev")'
    return query, {"@collection": collection, "key": key}


def counts() -> AqlQuery:
    """Number of documents in every vertex and edge collection, in one row."""
    names = [k.value for k in VertexKind] + [k.value for k in EdgeKind]
    fields = ", ".join(f"{name}: LENGTH({name})" for name in names)
    return f"RETURN {{ {fields} }}", {}


def all_keys(collection: str) -> AqlQuery:
    """Every ``_key`` of a collection (the mirror's movie list)."""
    return "FOR d IN @@collection RETURN d._key", {"@collection": collection}


def edge_ends(collection: str) -> AqlQuery:
    """Every edge of a collection as [_from, _to]: all the mirror needs of it."""
    return "FOR e IN @@collection RETURN [e._from, e._to]", {"@collection": collection}


def user_movies(user: str, *, min_rating: float) -> AqlQuery:
    """One row {found, seeds, seen}: the user's movies rated >= min_rating and every movie the
    user rated, watched or marked not interested, as _ids, read over the edge index on _from."""
    seen = ",\n  ".join(
        f"(FOR e IN {kind.value} FILTER e._from == @user RETURN e._to)" for kind in USER_EDGES
    )
    query = f"""LET found = DOCUMENT(@user) != null
LET seeds = (
  FOR e IN {EdgeKind.RATED.value}
    FILTER e._from == @user AND e.rating >= @min_rating
    RETURN DISTINCT e._to
)
LET seen = UNION_DISTINCT(
  {seen}
)
RETURN {{ found: found, seeds: seeds, seen: seen }}"""
    bind = {"user": vertex_id(VertexKind.USER, user), "min_rating": float32_bound(min_rating)}
    return query, bind
