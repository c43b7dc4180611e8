"""The ArangoDB graph store: the GraphStore protocol on python-arango, traversals in AQL.

Layout in the database: one document collection per VertexKind, one edge collection per
EdgeKind, a named graph whose edge definitions come from schema.EDGE_SPECS, and persistent
indexes for the lookups the project makes. A vertex's ``_key`` is its key; an edge's ``_key``
comes from (src, dst) (arango_aql.edge_key), so importing the same data twice changes nothing.

Atomicity of ``upsert``: keys and dangling endpoints are checked before anything is written,
so bad input never writes. With ``write_mode="transaction"`` (the default) the checks and all
writes run in one stream transaction (AQL INSERT ... overwriteMode "replace"), committed at the
end and aborted on any error: all of the batch or none of it, within the server's stream
transaction limits (size ``--transaction.streaming-max-transaction-size``, 128 MiB by default,
and its idle timeout). ``write_mode="import"`` uses the bulk import API (import_bulk with
onDuplicate=replace, complete=true), which ArangoDB cannot run inside a stream transaction: each
request is all-or-nothing, but a failure after the first request leaves earlier chunks written;
re-running the same batch then completes it (writes are idempotent).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import pandas as pd
from arango import ArangoClient
from arango.database import Database, StandardDatabase
from arango.exceptions import ArangoClientError, ArangoError, ArangoServerError
from arango.http import DefaultHTTPClient
from requests.exceptions import RequestException

from features.graph import arango_aql as aql
from features.graph import arango_writes as writes
from features.graph.arango_writes import CHUNK
from features.graph.batch import GraphBatch
from features.graph.schema import (
    DEFAULT_HOP_WEIGHTS,
    EDGE_SPECS,
    POSITIVE_RATING,
    VERTEX_COLUMNS,
    Column,
    EdgeKind,
    VertexKind,
)
from features.graph.store import (
    EXPLANATION_PRIORITY,
    Affinity,
    Direction,
    Explanation,
    GraphStore,
    GraphStoreError,
    Neighbour,
    UnknownVertexError,
    UpsertReport,
)

log = logging.getLogger(__name__)

WriteMode = Literal["transaction", "import"]

# Persistent indexes beyond the primary and edge indexes every collection already has.
INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    EdgeKind.RATED.value: (("_from", "rating"), ("timestamp",)),
    EdgeKind.WATCHED.value: (("timestamp",),),
    EdgeKind.NOT_INTERESTED.value: (("timestamp",),),
    VertexKind.MOVIE.value: (("imdb_id",), ("tmdb_id",)),
}

SCORE_DECIMALS = 9  # as the embedded store: ties must not depend on summation order
_ERR_DUPLICATE_NAME = 1207
_ERR_DATABASE_NOT_FOUND = 1228


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """(URL without credentials, user, password) for a URL that may carry ``user:pw@``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GraphStoreError("ArangoDB URL must look like http://host:8529 (scheme and host)")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return clean, user, password


def _describe(exc: BaseException) -> str:
    """A short reason for a driver or transport error, without credentials."""
    if isinstance(exc, ArangoServerError):
        code = exc.http_code
        if code == 401:
            return "not authorized: wrong username or password (HTTP 401)"
        if code == 403:
            return "forbidden: the user lacks rights for this (HTTP 403)"
        return f"HTTP {code}, error {exc.error_code}: {exc.error_message or 'no message'}"
    if isinstance(exc, ConnectionAbortedError | RequestException | ConnectionError):
        return f"cannot reach the server ({type(exc).__name__})"
    if isinstance(exc, ArangoClientError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _from_json(value: object, col: Column) -> object:
    if col.dtype.startswith("float"):
        return math.nan if value is None else float(value)  # type: ignore[arg-type]
    if value is None:
        return col.default
    return int(value) if col.dtype.startswith("int") else str(value)  # type: ignore[call-overload]


def _check_limit(what: str, limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"{what}: limit must be >= 0 or None, got {limit!r}")


def _frame(
    rows: list[dict[str, object]], lead: list[str], cols: tuple[Column, ...]
) -> pd.DataFrame:
    names = lead + [c.name for c in cols]
    frame = pd.DataFrame(rows, columns=names)
    for name in lead:
        frame[name] = frame[name].astype(str)
    for col in cols:
        frame[col.name] = frame[col.name].astype(object if col.dtype == "str" else col.dtype)  # type: ignore[arg-type]
    return frame.sort_values(lead, kind="stable").reset_index(drop=True)


class ArangoGraphStore(GraphStore):
    """GraphStore on an ArangoDB database, reached through python-arango."""

    def __init__(
        self,
        client: ArangoClient,
        db: StandardDatabase,
        *,
        url: str,
        database: str,
        username: str,
        password: str,
        graph_name: str,
        write_mode: WriteMode,
    ) -> None:
        self._client = client
        self._db = db
        self._url = url
        self._database = database
        self._username = username
        self._password = password
        self._graph_name = graph_name
        self._write_mode = write_mode

    # --- connection and schema -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str,
        database: str,
        username: str = "root",
        password: str = "",
        create: bool = False,
        graph_name: str = "marquee",
        *,
        write_mode: WriteMode = "transaction",
        request_timeout: float = 60.0,
    ) -> ArangoGraphStore:
        """Connect to ``database`` at ``url`` (creating it when ``create``) and set up the schema.

        Credentials may also come in the URL (``http://user:pw@host:8529``); they are stripped
        from it before it is used or logged.
        """
        if write_mode not in ("transaction", "import"):
            raise ValueError(f"write_mode must be 'transaction' or 'import', got {write_mode!r}")
        clean, url_user, url_password = _split_url(url)
        if url_user and username == "root" and not password:
            username, password = url_user, url_password or ""
        http = DefaultHTTPClient(
            request_timeout=request_timeout, retry_attempts=2, backoff_factor=0.1
        )
        client = ArangoClient(hosts=clean, http_client=http, request_timeout=request_timeout)
        store = cls(
            client,
            client.db(database, username=username, password=password),
            url=clean,
            database=database,
            username=username,
            password=password,
            graph_name=graph_name,
            write_mode=write_mode,
        )
        log.info("connecting to ArangoDB at %s, database %r as %r", clean, database, username)
        try:
            store._open(create)
        except BaseException:
            client.close()
            raise
        return store

    @property
    def _where(self) -> str:
        return f"ArangoDB at {self._url}, database {self._database!r}"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn driver and transport errors into GraphStoreError without credentials."""
        try:
            yield
        except (ArangoError, RequestException, ConnectionError) as exc:
            msg = f"{self._where}: {what} failed: {_describe(exc)}"
            if self._password:
                msg = msg.replace(self._password, "***")
            raise GraphStoreError(msg) from None

    def _system(self) -> StandardDatabase:
        return self._client.db("_system", username=self._username, password=self._password)

    def _open(self, create: bool) -> None:
        try:
            existing: list[dict[str, Any]] = self._db.collections()  # type: ignore[assignment]
        except ArangoServerError as exc:
            if exc.error_code != _ERR_DATABASE_NOT_FOUND:
                with self._errors("connecting"):
                    raise
            if not create:
                raise GraphStoreError(
                    f"{self._where}: the database does not exist; connect with create=True"
                ) from None
            with self._errors("creating the database"):
                self._system().create_database(self._database)
            log.info("created ArangoDB database %r", self._database)
            with self._errors("listing collections"):
                existing = self._db.collections()  # type: ignore[assignment]
        except (ArangoError, RequestException, ConnectionError):
            with self._errors("connecting"):
                raise
        with self._errors("setting up collections, graph and indexes"):
            self._ensure_schema({str(c["name"]): str(c["type"]) for c in existing})

    def _ensure_schema(self, existing: dict[str, str]) -> None:
        wanted = {k.value: "document" for k in VertexKind} | {k.value: "edge" for k in EdgeKind}
        for name, kind in wanted.items():
            if name in existing:
                if existing[name] != kind:
                    raise GraphStoreError(
                        f"{self._where}: collection {name!r} exists as a {existing[name]} "
                        f"collection, the graph needs a {kind} collection"
                    )
                continue
            try:
                self._db.create_collection(name, edge=kind == "edge")
                log.info("created collection %s", name)
            except ArangoServerError as exc:
                if exc.error_code != _ERR_DUPLICATE_NAME:  # created meanwhile by someone else
                    raise
        if not self._db.has_graph(self._graph_name):
            definitions = [
                {
                    "edge_collection": ekind.value,
                    "from_vertex_collections": [spec.src.value],
                    "to_vertex_collections": [spec.dst.value],
                }
                for ekind, spec in EDGE_SPECS.items()
            ]
            try:
                self._db.create_graph(self._graph_name, edge_definitions=definitions)
                log.info("created graph %s", self._graph_name)
            except ArangoServerError as exc:
                if exc.error_code != 1925:  # graph already exists
                    raise
        for collection, field_sets in INDEXES.items():
            for fields in field_sets:
                self._db.collection(collection).add_index(
                    {
                        "type": "persistent",
                        "fields": list(fields),
                        "name": f"idx_{collection}_{'_'.join(f.strip('_') for f in fields)}",
                        "unique": False,
                        "sparse": False,
                    }
                )

    def drop(self) -> None:
        """Drop the whole database (tests use this to clean up)."""
        with self._errors("dropping the database"):
            self._system().delete_database(self._database, ignore_missing=True)
        log.info("dropped ArangoDB database %r", self._database)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._client.close()

    # --- queries -------------------------------------------------------------------------------

    def _rows(self, query: aql.AqlQuery, db: Database | None = None) -> list[Any]:
        text, bind = query
        cursor = (db or self._db).aql.execute(text, bind_vars=bind, batch_size=CHUNK)
        return list(cursor)  # type: ignore[arg-type]

    def _one(self, query: aql.AqlQuery, what: str) -> dict[str, Any]:
        with self._errors(what):
            rows = self._rows(query)
        return dict(rows[0])

    # --- upsert --------------------------------------------------------------------------------

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        """Apply a batch: all or none of it (see the module doc for what is atomic)."""
        writes.check_keys(batch)
        dedup = batch.deduplicated()
        docs = writes.documents(dedup)
        written = [name for name, rows in docs.items() if rows]
        endpoint_kinds = sorted({k.value for e in dedup.edges for k in aql.edge_endpoint_kinds(e)})
        if not written:
            return writes.report({})
        if self._write_mode == "transaction":
            return self._upsert_in_transaction(dedup, docs, written, endpoint_kinds)
        return self._upsert_by_import(dedup, docs, written)

    def _upsert_in_transaction(
        self, batch: GraphBatch, docs: writes.Docs, written: list[str], endpoint_kinds: list[str]
    ) -> UpsertReport:
        read = [name for name in endpoint_kinds if name not in written]
        with self._errors("beginning a transaction"):
            txn = self._db.begin_transaction(read=read, write=written)
        try:
            with self._errors("checking the batch against the store"):
                writes.check_endpoints(batch, lambda q: self._rows(q, txn))
                plan = writes.plan_changes(docs, lambda q: self._rows(q, txn))
            with self._errors("writing the batch"):
                for name, (new, changed) in plan.items():
                    for chunk in writes.chunks(new + changed):
                        self._rows(aql.write_docs(name, list(chunk)), txn)
                txn.commit_transaction()
        except BaseException:
            try:
                txn.abort_transaction()
            except (ArangoError, RequestException, ConnectionError) as exc:
                log.warning("%s: aborting the transaction failed: %s", self._where, _describe(exc))
            raise
        return writes.report(plan)

    def _upsert_by_import(
        self, batch: GraphBatch, docs: writes.Docs, written: list[str]
    ) -> UpsertReport:
        with self._errors("checking the batch against the store"):
            writes.check_endpoints(batch, self._rows)
            plan = writes.plan_changes(docs, self._rows)
        with self._errors("importing the batch"):
            for name in written:
                new, changed = plan[name]
                for chunk in writes.chunks(new + changed):
                    result = self._db.collection(name).import_bulk(
                        list(chunk), on_duplicate="replace", halt_on_error=True, details=True
                    )
                    if not isinstance(result, dict) or result.get("errors"):
                        details = result.get("details", []) if isinstance(result, dict) else []
                        raise GraphStoreError(
                            f"{self._where}: import into {name} refused documents: "
                            f"{'; '.join(map(str, details[:3])) or result}"
                        )
        return writes.report(plan)

    # --- plain reads ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Documents per collection, every kind listed."""
        row = self._one(aql.counts(), "counting documents")
        names = [k.value for k in VertexKind] + [k.value for k in EdgeKind]
        return {name: int(row.get(name) or 0) for name in names}

    def vertex(self, kind: VertexKind, key: str) -> dict[str, object] | None:
        """One vertex's attributes with ``key``, or None."""
        if aql.key_problem(key) is not None:
            return None
        with self._errors(f"reading {kind.value}/{key}"):
            rows = self._rows(aql.one_doc(kind.value, key))
        if not rows:
            return None
        doc = rows[0]
        return {
            "key": doc["_key"],
            **{c.name: _from_json(doc.get(c.name), c) for c in VERTEX_COLUMNS[kind]},
        }

    def vertex_frame(self, kind: VertexKind) -> pd.DataFrame:
        """All vertices of a kind, sorted by key."""
        cols = VERTEX_COLUMNS[kind]
        with self._errors(f"reading {kind.value}"):
            docs = self._rows(aql.all_docs(kind.value))
        rows = [
            {"key": d["_key"], **{c.name: _from_json(d.get(c.name), c) for c in cols}} for d in docs
        ]
        return _frame(rows, ["key"], cols)

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame:
        """All edges of a kind, sorted by (src, dst)."""
        cols = EDGE_SPECS[kind].columns
        with self._errors(f"reading {kind.value}"):
            docs = self._rows(aql.all_docs(kind.value))
        rows = [
            {
                "src": d["_from"].split("/", 1)[1],
                "dst": d["_to"].split("/", 1)[1],
                **{c.name: _from_json(d.get(c.name), c) for c in cols},
            }
            for d in docs
        ]
        return _frame(rows, ["src", "dst"], cols)

    # --- traversals ----------------------------------------------------------------------------

    def _require(self, kind: VertexKind, key: str) -> None:
        if aql.key_problem(key) is not None:
            raise UnknownVertexError(kind, key)

    def khop_scores(
        self,
        user: str,
        *,
        hops: int = 3,
        weights: Mapping[EdgeKind, float] | None = None,
        min_rating: float = POSITIVE_RATING,
        limit: int | None = None,
    ) -> list[tuple[str, float]]:
        """Weighted path counts from the user's positive movies to unseen movies (store.py)."""
        query = aql.khop_scores(
            user,
            hops=hops,
            weights=DEFAULT_HOP_WEIGHTS if weights is None else weights,
            min_rating=min_rating,
        )
        _check_limit("khop_scores", limit)
        self._require(VertexKind.USER, user)
        row = self._one(query, f"k-hop scores for user {user!r}")
        if not row["found"]:
            raise UnknownVertexError(VertexKind.USER, user)
        rounded = ((str(r["k"]), round(float(r["s"]), SCORE_DECIMALS)) for r in row["rows"])
        scored = sorted((t for t in rounded if t[1] != 0), key=lambda t: (-t[1], t[0]))
        return scored if limit is None else scored[:limit]

    def co_people(
        self, movie: str, *, min_shared: int = 2, limit: int | None = 20
    ) -> list[tuple[str, int]]:
        """Other movies sharing at least ``min_shared`` distinct people with ``movie``."""
        if min_shared < 1:
            raise ValueError(f"co_people: min_shared must be >= 1, got {min_shared!r}")
        _check_limit("co_people", limit)
        self._require(VertexKind.MOVIE, movie)
        row = self._one(aql.co_people(movie, min_shared=min_shared), f"co-people of {movie!r}")
        if not row["found"]:
            raise UnknownVertexError(VertexKind.MOVIE, movie)
        shared = sorted(
            ((str(r["k"]), int(r["n"])) for r in row["rows"]), key=lambda t: (-t[1], t[0])
        )
        return shared if limit is None else shared[:limit]

    def neighbours(
        self, kind: VertexKind, key: str, edge: EdgeKind, direction: Direction = "any"
    ) -> list[Neighbour]:
        """Vertices one ``edge`` away from (kind, key), sorted by (kind, key)."""
        query = aql.neighbours(kind, key, edge, direction)
        self._require(kind, key)
        row = self._one(query, f"neighbours of {kind.value}/{key}")
        if not row["found"]:
            raise UnknownVertexError(kind, key)
        cols = EDGE_SPECS[EdgeKind(edge)].columns
        out: list[tuple[bool, Neighbour]] = []
        for r in row["rows"]:
            collection, vkey = str(r["id"]).split("/", 1)
            attrs = {c.name: _from_json(r["attrs"].get(c.name), c) for c in cols}
            out.append((not r["out"], Neighbour(VertexKind(collection), vkey, attrs)))
        out.sort(key=lambda t: (t[1].kind.value, t[1].key, t[0]))  # outgoing first on ties
        return [n for _, n in out]

    def user_affinity(self, user: str) -> Affinity:
        """Genre and people affinities (store.Affinity)."""
        self._require(VertexKind.USER, user)
        row = self._one(aql.user_affinity(user), f"affinity of user {user!r}")
        if not row["found"]:
            raise UnknownVertexError(VertexKind.USER, user)
        n = int(row["n"])
        if n == 0:
            return Affinity(genres={}, people={})
        genres = {str(r["k"]): float(r["s"]) / n for r in row["genres"] if r["s"]}
        people = {str(r["k"]): float(r["s"]) / n for r in row["people"] if r["s"]}
        return Affinity(genres=genres, people=people)

    def explain(self, user: str, movie: str) -> Explanation | None:
        """The best path from one of the user's positive movies to ``movie`` (store.Explanation)."""
        self._require(VertexKind.USER, user)
        self._require(VertexKind.MOVIE, movie)
        query = aql.explain_paths(user, movie, min_rating=POSITIVE_RATING)
        row = self._one(query, f"explaining {movie!r} to user {user!r}")
        if not row["user_found"]:
            raise UnknownVertexError(VertexKind.USER, user)
        if not row["movie_found"]:
            raise UnknownVertexError(VertexKind.MOVIE, movie)
        seeds = {s["id"]: s for s in row["seeds"]}
        priority = {kind.value: i for i, kind in enumerate(EXPLANATION_PRIORITY)}

        def rank(path: dict[str, Any]) -> tuple[int, float, int, str, str]:
            seed = seeds[path["seed"]]
            via = str(path["via"] or "").split("/", 1)[-1]
            return (
                priority[path["edge"]],
                -float(seed["rating"]),
                -int(seed["ts"] or 0),
                str(seed["key"]),
                via,
            )

        if not row["paths"]:
            return None
        best = min(row["paths"], key=rank)
        seed = seeds[best["seed"]]
        via_kind, via_key = None, ""
        if best["via"]:
            collection, via_key = str(best["via"]).split("/", 1)
            via_kind = VertexKind(collection)
        return Explanation(
            user=user,
            movie=movie,
            movie_title=str(row["movie_title"] or movie),
            seed=str(seed["key"]),
            seed_title=str(seed["title"] or seed["key"]),
            seed_rating=float(seed["rating"]),
            edge=EdgeKind(best["edge"]),
            via_kind=via_kind,
            via_key=via_key,
            via_name=str(best["name"] or via_key),
        )
