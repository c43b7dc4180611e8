"""A local HTTP server speaking the part of ArangoDB's HTTP API that ArangoGraphStore uses.

It lets the real python-arango client run against something on 127.0.0.1 where no ArangoDB can
be installed. It keeps databases, collections, graphs and indexes in memory, records every
request, and answers as ArangoDB 3.12 does (status codes per lib/Rest/GeneralResponse.cpp's
error-to-status table, error numbers per errors.dat):

- database, collection (with ``/revision``), graph (gharial) and index management
  (arango_test_admin);
- bulk import (/_api/import): ``onDuplicate`` honoured; with ``complete=true`` one bad document
  fails the whole request and writes nothing: a bad key 400/1221, an edge without _from/_to
  400/1233, a duplicate under ``onDuplicate=error`` 409/1210;
- stream transactions: a write to a collection not declared in ``write``/``exclusive`` fails
  400/1652; the JSON size of a transaction's writes is capped (``max_transaction_bytes``; 512 MiB
  as 3.12's default, tests set less) with 500/32 "resource limit exceeded", which aborts it; a
  transaction idle longer than ``idle_timeout`` is aborted and forgotten (404/1655 afterwards);
  writes become visible on commit only;
- cursors with batches; ``failOnWarning`` turns a query's warnings into an error (400 with the
  warning's number), else they come in ``extra.warnings``; a cursor opened inside a transaction
  refuses a next-batch request that lacks the transaction header (what python-arango sends),
  so code that lets such a cursor span batches fails here;
- the AQL it can answer is in arango_test_queries (the store's plain queries, by exact text).

It checks HTTP basic auth against one user and answers 401 as ArangoDB does.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from features.graph.arango_keys import key_problem
from tests.features import arango_test_admin as admin
from tests.features.arango_test_queries import (
    Collections,
    QueryFailed,
    QueryHook,
    answer,
    written_collection,
)


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
    trx: str | None


@dataclass
class _Trx:
    database: str
    write: set[str]
    staged: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> staged collection
    nbytes: int = 0
    used_at: float = field(default_factory=time.monotonic)


@dataclass
class FakeArango:
    """State and behaviour of the test server; ``url`` is set once started."""

    username: str = "root"
    password: str = ""
    max_transaction_bytes: int = 512 * 2**20
    idle_timeout: float = 60.0
    databases: dict[str, Collections] = field(default_factory=lambda: {"_system": {}})
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    indexes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)  # "db/collection" -> revision
    requests: list[Recorded] = field(default_factory=list)
    on_query: QueryHook | None = None
    fail_next_commit: bool = False  # tests: the next commit fails as if the server went away
    url: str = ""
    _trx: dict[str, _Trx] = field(default_factory=dict)
    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeArango:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as ArangoDB
            disable_nagle_algorithm = True

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

    def open_transactions(self) -> int:
        return len(self._trx)

    # --- dispatch ------------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw, parse_constant=_not_json) if raw else None
        except ValueError:  # e.g. the bare Infinity that JSON does not allow
            return _error(400, 600, "VPackError: invalid JSON in the request body")
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
            except QueryFailed as fail:
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
        trx_id = headers.get("x-arango-trx-id")
        trx = self._live(trx_id) if trx_id is not None else None
        cols = self.databases[database]
        segs = path.strip("/").split("/")
        if segs[:2] == ["_api", "version"]:
            return 200, {"server": "arango", "version": "3.12.0", "license": "community"}
        if segs[:2] == ["_api", "database"]:
            return admin.database_api(self.databases, method, segs[2:], body, database)
        if segs[:2] == ["_api", "collection"]:
            return admin.collection_api(cols, self.revisions, method, segs[2:], body, database)
        if segs[:2] == ["_api", "gharial"]:
            return admin.graph_api(self.graphs, method, segs[2:], body, database)
        if segs == ["_api", "index"] and method == "POST":
            return admin.index_api(cols, self.indexes, next(self._ids), params, body, database)
        if segs == ["_api", "import"] and method == "POST":
            if trx is not None:
                raise QueryFailed(400, 1651, "the import API cannot run in a stream transaction")
            return self._import(database, cols, params, body)
        if segs[:2] == ["_api", "transaction"]:
            return self._transaction_api(method, segs[2:], body, database)
        if segs[:2] == ["_api", "cursor"]:
            return self._cursor_api(method, segs[2:], body, database, trx_id, trx)
        raise QueryFailed(501, 9, f"the test server does not implement {method} {path}")

    # --- management endpoints ------------------------------------------------------------------

    def _bump(self, database: str, name: str) -> None:
        key = f"{database}/{name}"
        self.revisions[key] = self.revisions.get(key, 0) + 1

    # --- imports -------------------------------------------------------------------------------

    def _import(
        self, database: str, cols: Collections, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        name = params["collection"]
        if name not in cols:
            raise QueryFailed(404, 1203, f"collection or view not found: {name}")
        col = cols[name]
        complete = params.get("complete") in ("1", "true", "True")
        replace = params.get("onDuplicate") in ("replace", "update")
        details: list[str] = []
        good: list[dict[str, Any]] = []
        for i, doc in enumerate(body):
            if "_key" not in doc or key_problem(doc["_key"]) is not None:
                fail = (400, 1221, f"at position {i}: invalid document key")
            elif col["type"] == 3 and not ("_from" in doc and "_to" in doc):
                fail = (400, 1233, f"at position {i}: missing '_from' or '_to' attribute")
            elif doc["_key"] in col["docs"] and not replace:
                fail = (409, 1210, f"at position {i}: unique constraint violated")
            else:
                good.append(doc)
                continue
            if complete:  # the whole request fails and writes nothing
                raise QueryFailed(*fail)
            details.append(fail[2])
        created = sum(1 for d in good if d["_key"] not in col["docs"])
        for doc in good:
            col["docs"][doc["_key"]] = dict(doc)
        if good:
            self._bump(database, name)
        return 201, {
            "error": False,
            "created": created,
            "errors": len(details),
            "empty": 0,
            "updated": len(good) - created,
            "ignored": 0,
            "details": details,
        }

    # --- transactions --------------------------------------------------------------------------

    def _live(self, trx_id: str) -> _Trx:
        trx = self._trx.get(trx_id)
        if trx is None:
            raise QueryFailed(404, 1655, f"transaction '{trx_id}' not found")
        if time.monotonic() - trx.used_at > self.idle_timeout:
            del self._trx[trx_id]  # the server aborts an idle transaction and forgets it
            raise QueryFailed(404, 1655, f"transaction '{trx_id}' not found")
        trx.used_at = time.monotonic()
        return trx

    def _transaction_api(
        self, method: str, rest: list[str], body: Any, database: str
    ) -> tuple[int, Any]:
        if method == "POST" and rest == ["begin"]:
            declared = body.get("collections", {})
            write = set(_names(declared.get("write"))) | set(_names(declared.get("exclusive")))
            trx_id = str(next(self._ids))
            self._trx[trx_id] = _Trx(database, write)
            return 201, {"error": False, "code": 201, "result": {"id": trx_id, "status": "running"}}
        if len(rest) == 1 and method in ("PUT", "DELETE"):
            trx = self._live(rest[0])
            del self._trx[rest[0]]
            if method == "PUT":
                if self.fail_next_commit:
                    self.fail_next_commit = False
                    raise QueryFailed(503, 503, "service unavailable (test: commit refused)")
                cols = self.databases[trx.database]
                for name, staged in trx.staged.items():
                    cols[name] = staged
                    self._bump(trx.database, name)
            status = "committed" if method == "PUT" else "aborted"
            return 200, {"error": False, "code": 200, "result": {"id": rest[0], "status": status}}
        raise QueryFailed(404, 1655, "transaction not found")

    def _view(self, database: str, trx: _Trx | None, writes_to: str | None) -> Collections:
        """The collections a query sees: committed data, or a transaction's staged copies."""
        cols = self.databases[database]
        if trx is None:
            return cols
        if writes_to is not None:
            if writes_to not in trx.write:
                raise QueryFailed(
                    400, 1652, f"unregistered collection used in transaction: {writes_to}"
                )
            if writes_to not in trx.staged and writes_to in cols:
                col = cols[writes_to]
                trx.staged[writes_to] = {"type": col["type"], "docs": dict(col["docs"])}
        return {**cols, **trx.staged}

    # --- cursors -------------------------------------------------------------------------------

    def _cursor_api(
        self,
        method: str,
        rest: list[str],
        body: Any,
        database: str,
        trx_id: str | None,
        trx: _Trx | None,
    ) -> tuple[int, Any]:
        if method == "POST" and not rest:
            query, bind = body["query"], body.get("bindVars") or {}
            writes_to = written_collection(query, bind)
            if trx is not None and writes_to is not None:
                trx.nbytes += len(json.dumps(bind.get("docs", [])))
                if trx.nbytes > self.max_transaction_bytes:
                    del self._trx[str(trx_id)]  # the server aborts it
                    raise QueryFailed(500, 32, "resource limit exceeded")
            got = answer(query, bind, self._view(database, trx, writes_to), self.on_query)
            if writes_to is not None and trx is None:
                self._bump(database, writes_to)
            options = body.get("options") or {}
            if got.warnings and options.get("failOnWarning"):
                first = got.warnings[0]
                raise QueryFailed(400, int(first["code"]), str(first["message"]))
            cursor = _Cursor(got.rows, int(body.get("batchSize") or 1000), trx_id)
            extra = {"warnings": got.warnings, "stats": {}}
            return 201, self._batch(str(next(self._ids)), cursor, first=True, extra=extra)
        if method == "POST" and len(rest) == 1 and rest[0] in self._cursors:
            cursor = self._cursors[rest[0]]
            if cursor.trx is not None and cursor.trx != trx_id:
                raise QueryFailed(404, 1600, "cursor not found (it belongs to a transaction)")
            return 200, self._batch(rest[0], cursor, first=False, extra=None)
        if method == "DELETE" and len(rest) == 1:
            self._cursors.pop(rest[0], None)
            return 202, {"error": False, "code": 202}
        raise QueryFailed(404, 1600, "cursor not found")

    def _batch(
        self, cid: str, cursor: _Cursor, *, first: bool, extra: dict[str, Any] | None
    ) -> dict[str, Any]:
        out, cursor.rows = cursor.rows[: cursor.batch], cursor.rows[cursor.batch :]
        body: dict[str, Any] = {
            "error": False,
            "code": 201 if first else 200,
            "result": out,
            "hasMore": bool(cursor.rows),
            "cached": False,
        }
        if extra is not None:
            body["extra"] = extra
        if cursor.rows:
            self._cursors[cid] = cursor
            body["id"] = cid
        else:
            self._cursors.pop(cid, None)
        return body


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _error(status: int, num: int, message: str) -> tuple[int, Any]:
    return status, {"error": True, "code": status, "errorNum": num, "errorMessage": message}
