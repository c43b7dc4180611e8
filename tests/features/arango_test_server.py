"""A local HTTP server speaking the part of ArangoDB's HTTP API that ArangoGraphStore uses.

It lets the real python-arango client run against something on 127.0.0.1 where no ArangoDB can
be installed. It keeps databases, collections (with their documents), graphs and indexes in
memory, records every request, and answers:

- database, collection, graph (gharial) and index management;
- the bulk import API (/_api/import, onDuplicate and complete honoured);
- stream transactions (begin / commit / abort; writes inside one become visible on commit);
- cursors (/_api/cursor, with batches), where it cannot run AQL: the few plain queries of
  arango_aql used by upsert and counts (fetch_docs, existing_keys, write_docs, all_docs,
  one_doc, counts) are recognised by their exact text and answered from memory; any other query
  goes to ``on_query`` (set by a test to return canned rows) and otherwise fails with HTTP 501.

It checks HTTP basic auth against one user and answers 401 as ArangoDB does.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from features.graph import arango_aql as aql

Collections = dict[str, dict[str, Any]]  # name -> {"type": 2|3, "docs": {key: doc}}
QueryHook = Callable[[str, dict[str, Any]], list[Any]]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Cursor:
    rows: list[Any]
    batch: int


@dataclass
class FakeArango:
    """State and behaviour of the fake server; ``url`` is set once started."""

    username: str = "root"
    password: str = ""
    databases: dict[str, Collections] = field(default_factory=lambda: {"_system": {}})
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    indexes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    on_query: QueryHook | None = None
    url: str = ""
    _trx: dict[str, tuple[str, Collections]] = field(default_factory=dict)
    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeArango:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = fake.handle(self.command, self.path, dict(self.headers), raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- helpers for tests ---------------------------------------------------------------------

    def calls(self, method: str, path_suffix: str) -> list[Recorded]:
        """Recorded requests with this method whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def queries(self) -> list[Recorded]:
        return self.calls("POST", "/_api/cursor")

    def docs(self, database: str, collection: str) -> dict[str, dict[str, Any]]:
        return self.databases[database][collection]["docs"]

    # --- dispatch ------------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = json.loads(raw) if raw else None
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append(Recorded(method, parts.path, params, lowered, body))
            if not self._authorized(lowered.get("authorization", "")):
                return _error(401, 11, "not authorized to execute this request")
            path = parts.path
            database = "_system"
            if path.startswith("/_db/"):
                database, _, rest = path[len("/_db/") :].partition("/")
                path = "/" + rest
            if database not in self.databases:
                return _error(404, 1228, f"database not found: {database}")
            try:
                return self._route(method, path, params, body, database, lowered)
            except _Fail as fail:
                return _error(fail.status, fail.num, fail.message)

    def _authorized(self, header: str) -> bool:
        if not header.lower().startswith("basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == self.username and password == self.password

    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: Any,
        database: str,
        headers: dict[str, str],
    ) -> tuple[int, Any]:
        trx = headers.get("x-arango-trx-id")
        cols = self._collections(database, trx)
        segs = path.strip("/").split("/")
        if segs[:2] == ["_api", "version"]:
            return 200, {"server": "arango", "version": "3.12.0", "license": "community"}
        if segs[:2] == ["_api", "database"]:
            return self._database_api(method, segs[2:], body, database)
        if segs == ["_api", "collection"]:
            if method == "GET":
                result = [
                    {"id": str(i), "name": n, "isSystem": False, "type": c["type"], "status": 3}
                    for i, (n, c) in enumerate(cols.items())
                ]
                return 200, {"error": False, "code": 200, "result": result}
            if method == "POST":
                name = body["name"]
                if name in cols:
                    raise _Fail(409, 1207, f"duplicate name: {name}")
                cols[name] = {"type": int(body.get("type", 2)), "docs": {}}
                return 200, {"error": False, "code": 200, "name": name, "type": cols[name]["type"]}
        if segs[:2] == ["_api", "gharial"]:
            return self._graph_api(method, segs[2:], body, database)
        if segs == ["_api", "index"] and method == "POST":
            name = params["collection"]
            if name not in cols:
                raise _Fail(404, 1203, f"collection or view not found: {name}")
            found = self.indexes.setdefault(f"{database}/{name}", [])
            same = [
                ix for ix in found if ix["fields"] == body["fields"] and ix["type"] == body["type"]
            ]
            if same:
                return 200, {**same[0], "isNewlyCreated": False, "error": False, "code": 200}
            index = {**body, "id": f"{name}/{next(self._ids)}"}
            found.append(index)
            return 201, {**index, "isNewlyCreated": True, "error": False, "code": 201}
        if segs == ["_api", "import"] and method == "POST":
            return self._import(cols, params, body)
        if segs[:2] == ["_api", "transaction"]:
            return self._transaction_api(method, segs[2:], body, database)
        if segs[:2] == ["_api", "cursor"]:
            return self._cursor_api(method, segs[2:], body, cols)
        raise _Fail(501, 9, f"the fake server does not implement {method} {path}")

    # --- endpoints -----------------------------------------------------------------------------

    def _database_api(
        self, method: str, rest: list[str], body: Any, database: str
    ) -> tuple[int, Any]:
        if database != "_system":
            raise _Fail(403, 1230, "use the _system database for database operations")
        if method == "GET" and not rest:
            return 200, {"error": False, "code": 200, "result": sorted(self.databases)}
        if method == "POST" and not rest:
            if body["name"] in self.databases:
                raise _Fail(409, 1207, f"duplicate database name {body['name']}")
            self.databases[body["name"]] = {}
            return 201, {"error": False, "code": 201, "result": True}
        if method == "DELETE" and len(rest) == 1:
            if rest[0] not in self.databases:
                raise _Fail(404, 1228, "database not found")
            del self.databases[rest[0]]
            return 200, {"error": False, "code": 200, "result": True}
        raise _Fail(501, 9, "database call not implemented")

    def _graph_api(self, method: str, rest: list[str], body: Any, database: str) -> tuple[int, Any]:
        graphs = self.graphs
        if method == "GET" and len(rest) == 1:
            graph = graphs.get(f"{database}/{rest[0]}")
            if graph is None:
                raise _Fail(404, 1924, "graph not found")
            return 200, {"error": False, "code": 200, "graph": graph}
        if method == "POST" and not rest:
            key = f"{database}/{body['name']}"
            if key in graphs:
                raise _Fail(409, 1925, "graph already exists")
            graphs[key] = {**body, "_key": body["name"]}
            return 202, {"error": False, "code": 202, "graph": graphs[key]}
        raise _Fail(501, 9, "graph call not implemented")

    def _collections(self, database: str, trx: str | None) -> Collections:
        if trx is None:
            return self.databases[database]
        if trx not in self._trx:
            raise _Fail(404, 1655, f"transaction '{trx}' not found")
        return self._trx[trx][1]

    def _transaction_api(
        self, method: str, rest: list[str], body: Any, database: str
    ) -> tuple[int, Any]:
        if method == "POST" and rest == ["begin"]:
            trx = str(next(self._ids))
            self._trx[trx] = (database, copy.deepcopy(self.databases[database]))
            return 201, {"error": False, "code": 201, "result": {"id": trx, "status": "running"}}
        if len(rest) == 1 and rest[0] in self._trx and method in ("PUT", "DELETE"):
            db_name, staged = self._trx.pop(rest[0])
            status = "committed" if method == "PUT" else "aborted"
            if method == "PUT":
                self.databases[db_name] = staged
            return 200, {"error": False, "code": 200, "result": {"id": rest[0], "status": status}}
        raise _Fail(404, 1655, "transaction not found")

    def _import(self, cols: Collections, params: dict[str, str], body: Any) -> tuple[int, Any]:
        name = params["collection"]
        if name not in cols:
            raise _Fail(404, 1203, f"collection or view not found: {name}")
        col = cols[name]
        problems = []
        for i, doc in enumerate(body):
            if "_key" not in doc or aql.key_problem(doc["_key"]) is not None:
                problems.append(f"at position {i}: invalid document key")
            if col["type"] == 3 and not ("_from" in doc and "_to" in doc):
                problems.append(f"at position {i}: edge attribute missing or invalid")
        if problems and params.get("complete") in ("1", "true"):
            raise _Fail(400, 1221, problems[0])
        created = updated = 0
        for doc in body:
            if doc["_key"] in col["docs"]:
                if params.get("onDuplicate") not in ("replace", "update"):
                    raise _Fail(409, 1210, "unique constraint violated")
                updated += 1
            else:
                created += 1
            col["docs"][doc["_key"]] = dict(doc)
        return 201, {
            "error": False,
            "created": created,
            "errors": 0,
            "empty": 0,
            "updated": updated,
            "ignored": 0,
            "details": [],
        }

    def _cursor_api(
        self, method: str, rest: list[str], body: Any, cols: Collections
    ) -> tuple[int, Any]:
        if method == "POST" and not rest:
            rows = self._run(body["query"], body.get("bindVars") or {}, cols)
            cursor = _Cursor(rows, int(body.get("batchSize") or 1000))
            return 201, self._batch(str(next(self._ids)), cursor, first=True)
        if method == "POST" and len(rest) == 1 and rest[0] in self._cursors:
            return 200, self._batch(rest[0], self._cursors[rest[0]], first=False)
        if method == "DELETE" and len(rest) == 1:
            self._cursors.pop(rest[0], None)
            return 202, {"error": False, "code": 202}
        raise _Fail(404, 1600, "cursor not found")

    def _batch(self, cid: str, cursor: _Cursor, *, first: bool) -> dict[str, Any]:
        out, cursor.rows = cursor.rows[: cursor.batch], cursor.rows[cursor.batch :]
        body: dict[str, Any] = {
            "error": False,
            "code": 201 if first else 200,
            "result": out,
            "hasMore": bool(cursor.rows),
            "cached": False,
        }
        if cursor.rows:
            self._cursors[cid] = cursor
            body["id"] = cid
        else:
            self._cursors.pop(cid, None)
        return body

    def _run(self, query: str, bind: dict[str, Any], cols: Collections) -> list[Any]:
        """Answer the plain queries from memory; hand the rest to ``on_query``."""
        name = bind.get("@collection", "")
        if name and name not in cols:
            raise _Fail(404, 1203, f"collection or view not found: {name}")
        docs = cols[name]["docs"] if name else {}

        def public(doc: dict[str, Any]) -> dict[str, Any]:
            return {**doc, "_id": f"{name}/{doc['_key']}", "_rev": "_r1"}

        def strip(doc: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in doc.items() if k not in ("_id", "_rev")}

        if query == aql.fetch_docs("x", [])[0]:
            return [strip(public(docs[k])) for k in bind["keys"] if k in docs]
        if query == aql.existing_keys("x", [])[0]:
            return [k for k in bind["keys"] if k in docs]
        if query == aql.all_docs("x")[0]:
            return [strip(public(d)) for d in docs.values()]
        if query == aql.one_doc("x", "k")[0]:
            return [strip(public(docs[bind["key"]]))] if bind["key"] in docs else []
        if query == aql.write_docs("x", [])[0]:
            for doc in bind["docs"]:
                docs[doc["_key"]] = dict(doc)
            return []
        if query == aql.counts()[0]:
            return [{n: len(c["docs"]) for n, c in cols.items()}]
        if self.on_query is not None:
            return self.on_query(query, bind)
        raise _Fail(501, 9, "the fake server cannot run this query")


class _Fail(Exception):
    def __init__(self, status: int, num: int, message: str) -> None:
        super().__init__(message)
        self.status, self.num, self.message = status, num, message


def _error(status: int, num: int, message: str) -> tuple[int, Any]:
    return status, {"error": True, "code": status, "errorNum": num, "errorMessage": message}
