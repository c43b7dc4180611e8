"""The ArangoDB store's layout: the database, its collections, the named graph and the indexes.

One document collection per VertexKind, one edge collection per EdgeKind, a named graph whose
edge definitions come from schema.EDGE_SPECS, and persistent indexes for the lookups the project
makes. Setting up is idempotent and tolerates another process doing the same at the same time.
"""

from __future__ import annotations

import logging
from typing import Any

from arango.exceptions import ArangoServerError

from features.graph.arango_connection import TRANSPORT_ERRORS, Connection
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.graph.store import GraphStoreError

log = logging.getLogger(__name__)

# Persistent indexes beyond the primary and edge indexes every collection already has.
INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    EdgeKind.RATED.value: (("_from", "rating"), ("timestamp",)),
    EdgeKind.WATCHED.value: (("timestamp",),),
    EdgeKind.NOT_INTERESTED.value: (("timestamp",),),
    VertexKind.MOVIE.value: (("imdb_id",), ("tmdb_id",)),
}

_ERR_DUPLICATE_NAME = 1207
_ERR_DATABASE_NOT_FOUND = 1228
_ERR_GRAPH_DUPLICATE = 1925


def open_database(conn: Connection, graph_name: str, *, create: bool) -> None:
    """Check that the database exists (creating it when ``create``), then set up the schema."""
    try:
        existing: list[dict[str, Any]] = conn.db.collections()  # type: ignore[assignment]
    except ArangoServerError as exc:
        if exc.error_code != _ERR_DATABASE_NOT_FOUND:
            with conn.errors("connecting"):
                raise
        if not create:
            raise GraphStoreError(
                f"{conn.where}: the database does not exist; connect with create=True"
            ) from None
        with conn.errors("creating the database"):
            conn.system().create_database(conn.database)
        log.info("created ArangoDB database %r", conn.database)
        with conn.errors("listing collections"):
            existing = conn.db.collections()  # type: ignore[assignment]
    except TRANSPORT_ERRORS:
        with conn.errors("connecting"):
            raise
    with conn.errors("setting up collections, graph and indexes"):
        _ensure(conn, graph_name, {str(c["name"]): str(c["type"]) for c in existing})


def _ensure(conn: Connection, graph_name: str, existing: dict[str, str]) -> None:
    db = conn.db
    wanted = {k.value: "document" for k in VertexKind} | {k.value: "edge" for k in EdgeKind}
    for name, kind in wanted.items():
        if name in existing:
            if existing[name] != kind:
                raise GraphStoreError(
                    f"{conn.where}: collection {name!r} exists as a {existing[name]} "
                    f"collection, the graph needs a {kind} collection"
                )
            continue
        try:
            db.create_collection(name, edge=kind == "edge")
            log.info("created collection %s", name)
        except ArangoServerError as exc:
            if exc.error_code != _ERR_DUPLICATE_NAME:  # created meanwhile by someone else
                raise
    if not db.has_graph(graph_name):
        definitions = [
            {
                "edge_collection": ekind.value,
                "from_vertex_collections": [spec.src.value],
                "to_vertex_collections": [spec.dst.value],
            }
            for ekind, spec in EDGE_SPECS.items()
        ]
        try:
            db.create_graph(graph_name, edge_definitions=definitions)
            log.info("created graph %s", graph_name)
        except ArangoServerError as exc:
            if exc.error_code != _ERR_GRAPH_DUPLICATE:
                raise
    for collection, field_sets in INDEXES.items():
        for fields in field_sets:
            db.collection(collection).add_index(
                {
                    "type": "persistent",
                    "fields": list(fields),
                    "name": f"idx_{collection}_{'_'.join(f.strip('_') for f in fields)}",
                    "unique": False,
                    "sparse": False,
                }
            )


def drop_database(conn: Connection) -> None:
    """Drop the whole database (tests use this to clean up)."""
    with conn.errors("dropping the database"):
        conn.system().delete_database(conn.database, ignore_missing=True)
    log.info("dropped ArangoDB database %r", conn.database)
