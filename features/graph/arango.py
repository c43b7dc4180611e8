"""The ArangoDB graph store: the GraphStore protocol on python-arango.

Layout (arango_schema): one document collection per VertexKind, one edge collection per
EdgeKind, a named graph and persistent indexes. Writes (arango_upsert) are all-or-nothing up to
a transaction-sized batch and repairable by a re-run above it. k-hop scores come by default from
a snapshot of the movie graph walked locally with the embedded store's operator (arango_mirror),
because hops 2-3 cannot be fast in AQL at 100K movies; ``khop_engine="aql"`` runs the same walk
as one aggregated AQL query (arango_khop_aql) instead, kept for checking the two against each
other on a real server. The other traversals are one-step AQL lookups (arango_lookup_aql).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.graph import arango_aql as aql
from features.graph import arango_lookup_aql as lookup
from features.graph.arango_connection import Connection
from features.graph.arango_keys import key_problem
from features.graph.arango_khop_aql import khop_scores as khop_query
from features.graph.arango_mirror import SOURCES, MovieGraphMirror, khop, round_scores
from features.graph.arango_schema import drop_database, open_database
from features.graph.arango_upsert import MAX_TRANSACTION_BYTES, WriteMode, upsert
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
    Neighbour,
    UnknownVertexError,
    UpsertReport,
    check_hop_weights,
)

log = logging.getLogger(__name__)

KhopEngine = Literal["mirror", "aql"]


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
        conn: Connection,
        *,
        graph_name: str = "marquee",
        write_mode: WriteMode = "transaction",
        max_transaction_bytes: int = MAX_TRANSACTION_BYTES,
        khop_engine: KhopEngine = "mirror",
        mirror_check_seconds: float = 1.0,
    ) -> None:
        if write_mode not in ("transaction", "import"):
            raise ValueError(f"write_mode must be 'transaction' or 'import', got {write_mode!r}")
        if khop_engine not in ("mirror", "aql"):
            raise ValueError(f"khop_engine must be 'mirror' or 'aql', got {khop_engine!r}")
        if max_transaction_bytes < 1:
            raise ValueError(f"max_transaction_bytes must be >= 1, got {max_transaction_bytes!r}")
        self._conn = conn
        self._graph_name = graph_name
        self._write_mode: WriteMode = write_mode
        self._max_transaction_bytes = max_transaction_bytes
        self._khop_engine: KhopEngine = khop_engine
        self.mirror = MovieGraphMirror(conn, check_seconds=mirror_check_seconds)

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
        max_transaction_bytes: int = MAX_TRANSACTION_BYTES,
        khop_engine: KhopEngine = "mirror",
        mirror_check_seconds: float = 1.0,
        request_timeout: float = 60.0,
    ) -> ArangoGraphStore:
        """Connect to ``database`` at ``url`` (creating it when ``create``) and set up the schema.

        Credentials may also come in the URL (``http://user:pw@host:8529``); they are stripped
        from it before it is used or logged.
        """
        conn = Connection.open(url, database, username, password, request_timeout)
        try:
            store = cls(
                conn,
                graph_name=graph_name,
                write_mode=write_mode,
                max_transaction_bytes=max_transaction_bytes,
                khop_engine=khop_engine,
                mirror_check_seconds=mirror_check_seconds,
            )
            log.info("connecting to %s as %r", conn.where, conn.username)
            open_database(conn, graph_name, create=create)
        except BaseException:
            conn.close()
            raise
        return store

    def drop(self) -> None:
        """Drop the whole database (tests use this to clean up)."""
        drop_database(self._conn)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._conn.close()

    # --- writes and plain reads ----------------------------------------------------------------

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        """Apply a batch: all or none of it up to a transaction's size (arango_upsert)."""
        try:
            report = upsert(
                self._conn,
                batch,
                mode=self._write_mode,
                max_transaction_bytes=self._max_transaction_bytes,
            )
        except BaseException:
            self.mirror.invalidate()  # a failed part may have committed earlier ones
            raise
        if any(report.created[n] or report.updated[n] for n in SOURCES):
            self.mirror.invalidate()  # ratings and views are not in the snapshot
        return report

    def counts(self) -> dict[str, int]:
        """Documents per collection, every kind listed."""
        row = self._conn.one(aql.counts(), "counting documents")
        names = [k.value for k in VertexKind] + [k.value for k in EdgeKind]
        return {name: int(row.get(name) or 0) for name in names}

    def vertex(self, kind: VertexKind, key: str) -> dict[str, object] | None:
        """One vertex's attributes with ``key``, or None."""
        if key_problem(key) is not None:
            return None
        with self._conn.errors(f"reading {kind.value}/{key}"):
            rows = self._conn.rows(aql.one_doc(kind.value, key))
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
        with self._conn.errors(f"reading {kind.value}"):
            rows = [
                {"key": d["_key"], **{c.name: _from_json(d.get(c.name), c) for c in cols}}
                for d in self._conn.stream(aql.all_docs(kind.value))
            ]
        return _frame(rows, ["key"], cols)

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame:
        """All edges of a kind, sorted by (src, dst)."""
        cols = EDGE_SPECS[kind].columns
        with self._conn.errors(f"reading {kind.value}"):
            rows = [
                {
                    "src": d["_from"].split("/", 1)[1],
                    "dst": d["_to"].split("/", 1)[1],
                    **{c.name: _from_json(d.get(c.name), c) for c in cols},
                }
                for d in self._conn.stream(aql.all_docs(kind.value))
            ]
        return _frame(rows, ["src", "dst"], cols)

    # --- traversals ----------------------------------------------------------------------------

    def _require(self, kind: VertexKind, key: str) -> None:
        if key_problem(key) is not None:
            raise UnknownVertexError(kind, key)

    def khop_scores(
        self,
        user: str,
        *,
        hops: int = 3,
        weights: Mapping[EdgeKind, float] | None = None,
        min_rating: float = POSITIVE_RATING,
        limit: int | None = None,
        engine: KhopEngine | None = None,
    ) -> list[tuple[str, float]]:
        """Weighted path counts from the user's positive movies to unseen movies (store.py), by
        the store's k-hop engine (module doc); ``engine`` overrides it for one call."""
        if isinstance(hops, bool) or hops not in (1, 2, 3):
            raise ValueError(f"khop_scores: hops must be 1, 2 or 3, got {hops!r}")
        _check_limit("khop_scores", limit)
        chosen = check_hop_weights(DEFAULT_HOP_WEIGHTS if weights is None else weights)
        self._require(VertexKind.USER, user)
        if (engine or self._khop_engine) == "aql":
            return self._khop_by_aql(user, hops, chosen, min_rating, limit)
        row = self._conn.one(
            aql.user_movies(user, min_rating=min_rating), f"the movies of user {user!r}"
        )
        if not row["found"]:
            raise UnknownVertexError(VertexKind.USER, user)
        seeds = [str(m).split("/", 1)[1] for m in row["seeds"]]
        seen = [str(m).split("/", 1)[1] for m in row["seen"]]
        state = self.mirror.state()
        return khop(state, seeds, seen, hops=hops, weights=chosen, limit=limit)

    def _khop_by_aql(
        self,
        user: str,
        hops: int,
        weights: Mapping[EdgeKind, float],
        min_rating: float,
        limit: int | None,
    ) -> list[tuple[str, float]]:
        query = khop_query(
            user, hops=hops, weights=weights, min_rating=min_rating, limit=limit or None
        )
        row = self._conn.one(query, f"k-hop scores for user {user!r}")
        if not row["found"]:
            raise UnknownVertexError(VertexKind.USER, user)
        if limit == 0 or not row["rows"]:
            return []
        keys = [str(r["k"]) for r in row["rows"]]
        scores = round_scores(np.array([float(r["s"]) for r in row["rows"]], dtype=np.float64))
        scored = sorted(
            ((k, s) for k, s in zip(keys, scores.tolist(), strict=True) if s != 0),
            key=lambda t: (-t[1], t[0]),
        )
        return scored if limit is None else scored[:limit]

    def co_people(
        self, movie: str, *, min_shared: int = 2, limit: int | None = 20
    ) -> list[tuple[str, int]]:
        """Other movies sharing at least ``min_shared`` distinct people with ``movie``."""
        if min_shared < 1:
            raise ValueError(f"co_people: min_shared must be >= 1, got {min_shared!r}")
        _check_limit("co_people", limit)
        self._require(VertexKind.MOVIE, movie)
        row = self._conn.one(
            lookup.co_people(movie, min_shared=min_shared), f"co-people of {movie!r}"
        )
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
        query = lookup.neighbours(kind, key, edge, direction)
        self._require(kind, key)
        row = self._conn.one(query, f"neighbours of {kind.value}/{key}")
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
        row = self._conn.one(lookup.user_affinity(user), f"affinity of user {user!r}")
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
        query = lookup.explain_paths(user, movie, min_rating=POSITIVE_RATING)
        row = self._conn.one(query, f"explaining {movie!r} to user {user!r}")
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
