"""The management part of the local ArangoDB test server: databases, collections (with their
revisions), named graphs and indexes, answered as ArangoDB 3.12 does (see arango_test_server)."""

from __future__ import annotations

from typing import Any

from tests.features.arango_test_queries import Collections, QueryFailed


def database_api(
    databases: dict[str, Collections], method: str, rest: list[str], body: Any, database: str
) -> tuple[int, Any]:
    """/_api/database: list, create, drop (only from _system)."""
    if database != "_system":
        raise QueryFailed(403, 1230, "use the _system database for database operations")
    if method == "GET" and not rest:
        return 200, {"error": False, "code": 200, "result": sorted(databases)}
    if method == "POST" and not rest:
        if body["name"] in databases:
            raise QueryFailed(409, 1207, f"duplicate database name {body['name']}")
        databases[body["name"]] = {}
        return 201, {"error": False, "code": 201, "result": True}
    if method == "DELETE" and len(rest) == 1:
        if rest[0] not in databases:
            raise QueryFailed(404, 1228, "database not found")
        del databases[rest[0]]
        return 200, {"error": False, "code": 200, "result": True}
    raise QueryFailed(501, 9, "database call not implemented")


def collection_api(
    cols: Collections,
    revisions: dict[str, int],
    method: str,
    rest: list[str],
    body: Any,
    database: str,
) -> tuple[int, Any]:
    """/_api/collection: list, create, and a collection's revision."""
    if method == "GET" and not rest:
        result = [
            {"id": str(i), "name": n, "isSystem": False, "type": c["type"], "status": 3}
            for i, (n, c) in enumerate(cols.items())
        ]
        return 200, {"error": False, "code": 200, "result": result}
    if method == "POST" and not rest:
        name = body["name"]
        if name in cols:
            raise QueryFailed(409, 1207, f"duplicate name: {name}")
        cols[name] = {"type": int(body.get("type", 2)), "docs": {}}
        return 200, {"error": False, "code": 200, "name": name, "type": cols[name]["type"]}
    if method == "GET" and len(rest) == 2 and rest[1] == "revision":
        if rest[0] not in cols:
            raise QueryFailed(404, 1203, f"collection or view not found: {rest[0]}")
        revision = str(revisions.get(f"{database}/{rest[0]}", 0))
        return 200, {"error": False, "code": 200, "name": rest[0], "revision": revision}
    raise QueryFailed(501, 9, "collection call not implemented")


def graph_api(
    graphs: dict[str, dict[str, Any]], method: str, rest: list[str], body: Any, database: str
) -> tuple[int, Any]:
    """/_api/gharial: read and create named graphs."""
    if method == "GET" and len(rest) == 1:
        graph = graphs.get(f"{database}/{rest[0]}")
        if graph is None:
            raise QueryFailed(404, 1924, "graph not found")
        return 200, {"error": False, "code": 200, "graph": graph}
    if method == "POST" and not rest:
        key = f"{database}/{body['name']}"
        if key in graphs:
            raise QueryFailed(409, 1925, "graph already exists")
        graphs[key] = {**body, "_key": body["name"]}
        return 202, {"error": False, "code": 202, "graph": graphs[key]}
    raise QueryFailed(501, 9, "graph call not implemented")


def index_api(
    cols: Collections,
    indexes: dict[str, list[dict[str, Any]]],
    index_id: int,
    params: dict[str, str],
    body: Any,
    database: str,
) -> tuple[int, Any]:
    """/_api/index: create an index, or find the same one."""
    name = params["collection"]
    if name not in cols:
        raise QueryFailed(404, 1203, f"collection or view not found: {name}")
    found = indexes.setdefault(f"{database}/{name}", [])
    same = [ix for ix in found if ix["fields"] == body["fields"] and ix["type"] == body["type"]]
    if same:
        return 200, {**same[0], "isNewlyCreated": False, "error": False, "code": 200}
    index = {**body, "id": f"{name}/{index_id}"}
    found.append(index)
    return 201, {**index, "isNewlyCreated": True, "error": False, "code": 201}
