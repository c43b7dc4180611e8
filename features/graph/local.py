"""LocalGraphStore: the embedded default graph store, in process, on numpy and scipy.sparse.

Vertices of each kind are columnar numpy arrays in insertion order (so a vertex's index never
changes), looked up through a pandas Index. Edges of each kind are a CSR structure over
(src index, dst index) with attribute arrays aligned with its data order. Every upsert builds a
new immutable ``GraphState`` and swaps it in, so readers never see half a batch, and derived
matrices (cached on the state) are invalidated by construction.

Saved form (one folder): ``manifest.json`` (format name, version, counts, columns) pointing at a
``data-<id>/`` folder of ``.npy`` files, loadable without pickle. Strings are stored as one UTF-8
byte array plus offsets rather than fixed-width unicode, because one long summary would otherwise
widen every row of its column. A save writes a new data folder, then replaces the manifest
atomically (os.replace), then removes older data folders: a crash leaves the previous graph.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from features.graph import local_queries as q
from features.graph.batch import GraphBatch, GraphDataError
from features.graph.schema import EDGE_SPECS, VERTEX_COLUMNS, Column, EdgeKind, VertexKind
from features.graph.store import (
    Affinity,
    Direction,
    Explanation,
    GraphStoreError,
    Neighbour,
    UpsertReport,
)

log = logging.getLogger(__name__)

FORMAT_NAME = "marquee-local-graph"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True, eq=False)
class VertexTable:
    """The vertices of one kind: keys and attribute columns, in insertion order."""

    keys: np.ndarray  # object array of str
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.keys)

    @cached_property
    def index(self) -> pd.Index:
        """Key -> position."""
        return pd.Index(self.keys, dtype=object)

    @cached_property
    def key_rank(self) -> np.ndarray:
        """Each vertex's position in ascending key order (for sorting ties by key)."""
        rank = np.empty(len(self.keys), dtype=np.int64)
        rank[np.argsort(self.keys, kind="stable")] = np.arange(len(self.keys))
        return rank

    def find(self, key: str) -> int:
        """The vertex's position, or -1."""
        try:
            pos = self.index.get_loc(key)
        except KeyError:
            return -1
        return int(pos) if isinstance(pos, int | np.integer) else -1

    @classmethod
    def empty(cls, kind: VertexKind) -> VertexTable:
        return cls(
            np.empty(0, dtype=object),
            {c.name: _empty_column(c) for c in VERTEX_COLUMNS[kind]},
        )


@dataclass(frozen=True, eq=False)
class EdgeTable:
    """The edges of one kind as CSR over (src index, dst index); columns follow CSR order."""

    indptr: np.ndarray  # int64, n_src + 1
    indices: np.ndarray  # int32 dst positions
    columns: dict[str, np.ndarray]
    n_dst: int

    @property
    def nnz(self) -> int:
        return len(self.indices)

    @property
    def n_src(self) -> int:
        return len(self.indptr) - 1

    @cached_property
    def src(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_src, dtype=np.int32), np.diff(self.indptr))

    @cached_property
    def csr(self) -> sparse.csr_matrix:
        """Binary src x dst matrix."""
        return sparse.csr_matrix(
            (np.ones(self.nnz), self.indices, self.indptr), shape=(self.n_src, self.n_dst)
        )

    @cached_property
    def reverse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr over dst, src positions, position of each in the CSR order): the CSC view."""
        perm = np.argsort(self.indices, kind="stable")
        counts = np.bincount(self.indices, minlength=self.n_dst)
        indptr = np.zeros(self.n_dst + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, self.src[perm], perm

    @cached_property
    def csc(self) -> sparse.csr_matrix:
        """Binary dst x src matrix (the transpose, in CSR form)."""
        indptr, src, _ = self.reverse
        return sparse.csr_matrix((np.ones(self.nnz), src, indptr), shape=(self.n_dst, self.n_src))

    @classmethod
    def empty(cls, kind: EdgeKind, n_src: int, n_dst: int) -> EdgeTable:
        return cls(
            np.zeros(n_src + 1, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            {c.name: _empty_column(c) for c in EDGE_SPECS[kind].columns},
            n_dst,
        )

    def resized(self, n_src: int, n_dst: int) -> EdgeTable:
        """The same edges over larger vertex sets (vertices are only ever appended)."""
        if n_src == self.n_src and n_dst == self.n_dst:
            return self
        pad = np.full(n_src - self.n_src, self.indptr[-1], dtype=np.int64)
        return EdgeTable(np.concatenate([self.indptr, pad]), self.indices, self.columns, n_dst)


@dataclass(frozen=True, eq=False)
class GraphState:
    """One immutable version of the graph, with a cache of matrices derived from it."""

    vertices: dict[VertexKind, VertexTable]
    edges: dict[EdgeKind, EdgeTable]
    cache: dict[object, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> GraphState:
        vertices = {k: VertexTable.empty(k) for k in VertexKind}
        return cls(vertices, {k: EdgeTable.empty(k, 0, 0) for k in EdgeKind})

    def nbytes(self) -> int:
        """Bytes held by the arrays (object columns: pointers plus the strings' characters)."""
        total = 0
        arrays: list[np.ndarray] = []
        for vt in self.vertices.values():
            arrays += [vt.keys, *vt.columns.values()]
        for et in self.edges.values():
            arrays += [et.indptr, et.indices, *et.columns.values()]
        for a in arrays:
            total += a.nbytes
            if a.dtype == object:
                total += sum(len(s) for s in a)
        return total


def _empty_column(col: Column) -> np.ndarray:
    return np.empty(0, dtype=object if col.dtype == "str" else np.dtype(col.dtype))


def _column_values(frame: pd.DataFrame, col: Column) -> np.ndarray:
    if col.dtype == "str":
        return frame[col.name].to_numpy(dtype=object)
    return frame[col.name].to_numpy(dtype=np.dtype(col.dtype))


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality, NaN equal to NaN."""
    eq = np.asarray(a == b, dtype=bool)
    if a.dtype.kind == "f":
        eq |= np.isnan(a) & np.isnan(b)
    return eq


def _merge_vertices(
    kind: VertexKind, old: VertexTable, frame: pd.DataFrame
) -> tuple[VertexTable, int, int]:
    """Upsert rows by key: returns the new table, how many created and how many changed."""
    keys = frame["key"].to_numpy(dtype=object)
    idx = old.index.get_indexer(keys) if len(old) else np.full(len(keys), -1)
    hit = idx >= 0
    changed = np.zeros(int(hit.sum()), dtype=bool)
    columns: dict[str, np.ndarray] = {}
    for col in VERTEX_COLUMNS[kind]:
        values = _column_values(frame, col)
        current = old.columns[col.name]
        changed |= ~_same(current[idx[hit]], values[hit])
        merged = np.concatenate([current, values[~hit]])
        merged[idx[hit]] = values[hit]
        columns[col.name] = merged
    created, updated = int((~hit).sum()), int(changed.sum())
    if created == 0 and updated == 0:
        return old, 0, 0
    return VertexTable(np.concatenate([old.keys, keys[~hit]]), columns), created, updated


def _merge_edges(
    kind: EdgeKind,
    old: EdgeTable,
    n_src: int,
    n_dst: int,
    src: np.ndarray,
    dst: np.ndarray,
    frame: pd.DataFrame,
) -> tuple[EdgeTable, int, int]:
    """Upsert edges by (src, dst): returns the new table, how many created and changed."""
    old = old.resized(n_src, n_dst)
    old_codes = old.src.astype(np.int64) * n_dst + old.indices
    codes = src.astype(np.int64) * n_dst + dst
    pos = np.searchsorted(old_codes, codes)
    found = np.zeros(len(codes), dtype=bool)
    if len(old_codes):
        found = old_codes[np.minimum(pos, len(old_codes) - 1)] == codes
    changed = np.zeros(int(found.sum()), dtype=bool)
    merged: dict[str, np.ndarray] = {}
    for col in EDGE_SPECS[kind].columns:
        values = _column_values(frame, col)
        current = old.columns[col.name]
        changed |= ~_same(current[pos[found]], values[found])
        column = np.concatenate([current, values[~found]])
        column[pos[found]] = values[found]
        merged[col.name] = column
    created, updated = int((~found).sum()), int(changed.sum())
    if created == 0 and updated == 0:
        return old, 0, 0
    all_codes = np.concatenate([old_codes, codes[~found]])
    order = np.argsort(all_codes, kind="stable")
    all_codes = all_codes[order]
    indptr = np.zeros(n_src + 1, dtype=np.int64)
    np.cumsum(np.bincount(all_codes // n_dst, minlength=n_src), out=indptr[1:])
    table = EdgeTable(
        indptr,
        (all_codes % n_dst).astype(np.int32),
        {name: c[order] for name, c in merged.items()},
        n_dst,
    )
    return table, created, updated


def apply_batch(state: GraphState, batch: GraphBatch) -> tuple[GraphState, UpsertReport]:
    """The state after upserting ``batch``; raises GraphDataError before building anything
    when an edge names a vertex that is neither in the state nor in the batch."""
    batch = batch.deduplicated()
    created: dict[str, int] = {}
    updated: dict[str, int] = {}
    vertices = dict(state.vertices)
    for vkind in VertexKind:
        frame = batch.vertices.get(vkind)
        c = u = 0
        if frame is not None and len(frame):
            vertices[vkind], c, u = _merge_vertices(vkind, state.vertices[vkind], frame)
        created[vkind.value], updated[vkind.value] = c, u

    endpoints: dict[EdgeKind, tuple[np.ndarray, np.ndarray]] = {}
    for ekind in EdgeKind:
        frame = batch.edges.get(ekind)
        if frame is None or not len(frame):
            continue
        spec = EDGE_SPECS[ekind]
        ends = []
        for side, vkind in (("src", spec.src), ("dst", spec.dst)):
            keys = frame[side].to_numpy(dtype=object)
            idx = vertices[vkind].index.get_indexer(keys) if len(vertices[vkind]) else None
            if idx is None or (idx < 0).any():
                row = 0 if idx is None else int(np.flatnonzero(idx < 0)[0])
                raise GraphDataError(
                    f"{ekind.value}: edge {frame['src'].iat[row]!r} -> {frame['dst'].iat[row]!r} "
                    f"names {side} {keys[row]!r}, which is not a {vkind.value} vertex in the "
                    f"store or the batch"
                )
            ends.append(idx.astype(np.int32))
        endpoints[ekind] = (ends[0], ends[1])

    edges: dict[EdgeKind, EdgeTable] = {}
    for ekind in EdgeKind:
        spec = EDGE_SPECS[ekind]
        n_src, n_dst = len(vertices[spec.src]), len(vertices[spec.dst])
        c = u = 0
        if ekind in endpoints:
            s, d = endpoints[ekind]
            edges[ekind], c, u = _merge_edges(
                ekind, state.edges[ekind], n_src, n_dst, s, d, batch.edges[ekind]
            )
        else:
            edges[ekind] = state.edges[ekind].resized(n_src, n_dst)
        created[ekind.value], updated[ekind.value] = c, u
    return GraphState(vertices, edges), UpsertReport(created, updated)


# --- saving and loading --------------------------------------------------------------------


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _write_strings(folder: Path, name: str, values: np.ndarray) -> None:
    encoded = [s.encode("utf-8") for s in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    _write_npy(folder / f"{name}.utf8.npy", np.frombuffer(b"".join(encoded), dtype=np.uint8))
    _write_npy(folder / f"{name}.offsets.npy", offsets)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise GraphStoreError(f"{path}: cannot read saved graph array: {exc}") from exc


def _read_strings(folder: Path, name: str) -> np.ndarray:
    blob = _read_npy(folder / f"{name}.utf8.npy").tobytes()
    bounds = _read_npy(folder / f"{name}.offsets.npy").tolist()
    out = np.empty(len(bounds) - 1, dtype=object)
    text = blob.decode("utf-8", errors="strict") if blob.isascii() else None
    src: Any = text if text is not None else blob
    pieces = [src[a:b] for a, b in itertools.pairwise(bounds)]
    out[:] = pieces if text is not None else [p.decode("utf-8") for p in pieces]
    return out


def save_state(state: GraphState, path: Path) -> None:
    """Write ``state`` to the folder ``path`` atomically (see the module docstring)."""
    path.mkdir(parents=True, exist_ok=True)
    data_name = f"data-{uuid.uuid4().hex[:12]}"
    data = path / data_name
    data.mkdir()
    try:
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "data": data_name,
            "vertices": {},
            "edges": {},
        }
        for vkind, vt in state.vertices.items():
            _write_strings(data, f"{vkind.value}.key", vt.keys)
            for col in VERTEX_COLUMNS[vkind]:
                name = f"{vkind.value}.{col.name}"
                if col.dtype == "str":
                    _write_strings(data, name, vt.columns[col.name])
                else:
                    _write_npy(data / f"{name}.npy", vt.columns[col.name])
            manifest["vertices"][vkind.value] = {
                "count": len(vt),
                "columns": [c.name for c in VERTEX_COLUMNS[vkind]],
            }
        for ekind, et in state.edges.items():
            _write_npy(data / f"{ekind.value}.indptr.npy", et.indptr)
            _write_npy(data / f"{ekind.value}.indices.npy", et.indices)
            for col in EDGE_SPECS[ekind].columns:
                _write_npy(data / f"{ekind.value}.{col.name}.npy", et.columns[col.name])
            manifest["edges"][ekind.value] = {
                "count": et.nnz,
                "columns": [c.name for c in EDGE_SPECS[ekind].columns],
            }
        tmp = path / f".{MANIFEST}.{data_name}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / MANIFEST)
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)
        raise
    for stale in path.glob("data-*"):
        if stale.name != data_name:
            shutil.rmtree(stale, ignore_errors=True)
    for stale in path.glob(f".{MANIFEST}.*.tmp"):
        stale.unlink(missing_ok=True)
    log.info("saved graph to %s (%s)", path, data_name)


def load_state(path: Path) -> GraphState | None:
    """The graph saved in folder ``path``, or None when it holds no saved graph."""
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GraphStoreError(f"{manifest_path}: not a readable graph manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise GraphStoreError(f"{manifest_path}: not a {FORMAT_NAME} manifest")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise GraphStoreError(
            f"{manifest_path}: graph format version {version!r} is not supported "
            f"(this Marquee reads version {FORMAT_VERSION}); re-import the data"
        )
    data = path / str(manifest["data"])
    vertices: dict[VertexKind, VertexTable] = {}
    for vkind in VertexKind:
        info = manifest["vertices"].get(vkind.value)
        if info is None:
            vertices[vkind] = VertexTable.empty(vkind)
            continue
        keys = _read_strings(data, f"{vkind.value}.key")
        _check_count(manifest_path, vkind.value, "key", len(keys), info["count"])
        columns = {}
        for col in VERTEX_COLUMNS[vkind]:
            name = f"{vkind.value}.{col.name}"
            if col.name not in info["columns"]:
                log.info("%s: no saved column %s; filling %r", manifest_path, name, col.default)
                columns[col.name] = _default_column(col, len(keys))
                continue
            arr = (
                _read_strings(data, name) if col.dtype == "str" else _read_npy(data / f"{name}.npy")
            )
            _check_count(manifest_path, vkind.value, col.name, len(arr), len(keys))
            columns[col.name] = arr
        vertices[vkind] = VertexTable(keys, columns)
    edges: dict[EdgeKind, EdgeTable] = {}
    for ekind in EdgeKind:
        spec = EDGE_SPECS[ekind]
        n_src, n_dst = len(vertices[spec.src]), len(vertices[spec.dst])
        info = manifest["edges"].get(ekind.value)
        if info is None:
            edges[ekind] = EdgeTable.empty(ekind, n_src, n_dst)
            continue
        indptr = _read_npy(data / f"{ekind.value}.indptr.npy").astype(np.int64, copy=False)
        indices = _read_npy(data / f"{ekind.value}.indices.npy").astype(np.int32, copy=False)
        _check_count(manifest_path, ekind.value, "indptr", len(indptr), n_src + 1)
        _check_count(manifest_path, ekind.value, "indices", len(indices), info["count"])
        columns = {}
        for col in spec.columns:
            if col.name not in info["columns"]:
                columns[col.name] = _default_column(col, len(indices))
                continue
            arr = _read_npy(data / f"{ekind.value}.{col.name}.npy")
            _check_count(manifest_path, ekind.value, col.name, len(arr), len(indices))
            columns[col.name] = arr
        edges[ekind] = EdgeTable(indptr, indices, columns, n_dst)
    return GraphState(vertices, edges)


def _check_count(manifest: Path, what: str, column: str, got: int, expected: int) -> None:
    if got != expected:
        raise GraphStoreError(
            f"{manifest}: {what}.{column} holds {got} rows but {expected} were expected; "
            f"the saved graph is damaged"
        )


def _default_column(col: Column, n: int) -> np.ndarray:
    if col.dtype == "str":
        out = np.empty(n, dtype=object)
        out[:] = [col.default] * n
        return out
    return np.full(n, col.default, dtype=np.dtype(col.dtype))


# --- the store ---------------------------------------------------------------------------


class LocalGraphStore:
    """The embedded GraphStore. With a ``path``, it loads the graph saved there (if any) and
    saves every upsert back to it atomically; without one, it lives in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        loaded = load_state(self._path) if self._path is not None else None
        self._state = loaded if loaded is not None else GraphState.empty()
        if loaded is not None:
            log.info("loaded graph from %s: %s", self._path, self.counts())

    @classmethod
    def open(cls, path: Path) -> LocalGraphStore:
        """The store saved in folder ``path``, or an empty one that will save there."""
        return cls(path)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def state(self) -> GraphState:
        """The current immutable graph version (for the state builder and benchmarks)."""
        return self._state

    def save(self, path: Path | None = None) -> None:
        """Save to ``path`` (default: the store's own folder)."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise GraphStoreError("save: this store has no folder; pass a path")
        save_state(self._state, target)

    def nbytes(self) -> int:
        """Approximate memory held by the graph's arrays."""
        return self._state.nbytes()

    def upsert(self, batch: GraphBatch) -> UpsertReport:
        with self._lock:
            state, report = apply_batch(self._state, batch)
            if report.changed and self._path is not None:
                save_state(state, self._path)
            if report.changed:
                self._state = state
        log.debug("upsert: created %s, updated %s", report.created, report.updated)
        return report

    def counts(self) -> dict[str, int]:
        st = self._state
        out = {k.value: len(v) for k, v in st.vertices.items()}
        out.update({k.value: e.nnz for k, e in st.edges.items()})
        return out

    def vertex(self, kind: VertexKind, key: str) -> dict[str, object] | None:
        vt = self._state.vertices[kind]
        i = vt.find(key)
        if i < 0:
            return None
        out: dict[str, object] = {"key": vt.keys[i]}
        out.update({name: _scalar(col[i]) for name, col in vt.columns.items()})
        return out

    def vertex_frame(self, kind: VertexKind) -> pd.DataFrame:
        vt = self._state.vertices[kind]
        order = np.argsort(vt.key_rank)
        frame = pd.DataFrame({"key": vt.keys[order]})
        for name, col in vt.columns.items():
            frame[name] = col[order]
        return frame

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame:
        st = self._state
        et = st.edges[kind]
        spec = EDGE_SPECS[kind]
        src_v, dst_v = st.vertices[spec.src], st.vertices[spec.dst]
        order = np.lexsort((dst_v.key_rank[et.indices], src_v.key_rank[et.src]))
        frame = pd.DataFrame(
            {"src": src_v.keys[et.src[order]], "dst": dst_v.keys[et.indices[order]]}
        )
        for name, col in et.columns.items():
            frame[name] = col[order]
        return frame

    def khop_scores(
        self,
        user: str,
        *,
        hops: int = 3,
        weights: Mapping[EdgeKind, float] | None = None,
        min_rating: float = 4.0,
        limit: int | None = None,
    ) -> list[tuple[str, float]]:
        return q.khop_scores(
            self._state, user, hops=hops, weights=weights, min_rating=min_rating, limit=limit
        )

    def co_people(
        self, movie: str, *, min_shared: int = 2, limit: int | None = 20
    ) -> list[tuple[str, int]]:
        return q.co_people(self._state, movie, min_shared=min_shared, limit=limit)

    def neighbours(
        self, kind: VertexKind, key: str, edge: EdgeKind, direction: Direction = "any"
    ) -> list[Neighbour]:
        return q.neighbours(self._state, kind, key, edge, direction)

    def user_affinity(self, user: str) -> Affinity:
        return q.user_affinity(self._state, user)

    def explain(self, user: str, movie: str) -> Explanation | None:
        return q.explain(self._state, user, movie)

    def explain_many(self, user: str, movies: list[str]) -> list[Explanation | None]:
        """``explain`` for each movie in one pass (not in the GraphStore protocol): unknown
        movies get None; an unknown user raises UnknownVertexError."""
        return q.explain_many(self._state, user, movies)

    def close(self) -> None:
        """Nothing to release: every upsert is already saved."""


def _scalar(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
