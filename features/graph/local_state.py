"""The embedded store's in-memory graph: columnar vertex tables, CSR edge tables, and the
pure function that merges a GraphBatch into a new immutable ``GraphState``.

Vertices of each kind are columnar numpy arrays in insertion order (so a vertex's index never
changes), looked up through a pandas Index. Edges of each kind are a CSR structure over
(src index, dst index) with attribute arrays aligned with its data order. Every upsert builds a
new state, so readers never see half a batch, and derived matrices (cached on the state) are
invalidated by construction.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from features.graph.batch import GraphBatch, GraphDataError
from features.graph.schema import (
    EDGE_SPECS,
    USER_EDGES,
    VERTEX_COLUMNS,
    Column,
    EdgeKind,
    VertexKind,
)
from features.graph.store import UpsertReport


class StringColumn:
    """Strings kept as one UTF-8 byte array plus offsets (as saved, usually memory-mapped),
    decoded into an object array only when first asked for: a loaded graph's names and titles
    cost neither load time nor private memory until a query reads them."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets
        self._decoded: np.ndarray | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return max(len(self.offsets) - 1, 0)

    @property
    def nbytes(self) -> int:
        return int(self.blob.nbytes + self.offsets.nbytes)

    def item(self, i: int) -> str:
        """String ``i`` alone (equal to ``decode()[i]``), without decoding the column: one
        explanation's title or name need not cost a worker every title or name (at 500K
        movies and 1.5M people, ~170 MB of strings)."""
        decoded = self._decoded
        if decoded is not None:
            return str(decoded[i])
        offsets = self.offsets
        n = len(offsets) - 1  # __len__, inline: a slate's explanations read ~50 strings
        if not -n <= i < n:
            raise IndexError(f"string {i} out of range for {max(n, 0)} strings")
        if i < 0:
            i += n
        return self.blob[int(offsets[i]) : int(offsets[i + 1])].tobytes().decode("utf-8")

    def decode(self) -> np.ndarray:
        """The strings as an object array (decoded once, then kept)."""
        with self._lock:
            if self._decoded is None:
                self._decoded = decode_strings(self.blob, self.offsets)
            return self._decoded


def decode_strings(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """An object array of the strings ``blob[offsets[i]:offsets[i + 1]]`` (UTF-8)."""
    raw = np.asarray(blob).tobytes()
    bounds = np.asarray(offsets).tolist()
    out = np.empty(max(len(bounds) - 1, 0), dtype=object)
    if raw.isascii():
        text = raw.decode("ascii")
        out[:] = [text[a:b] for a, b in itertools.pairwise(bounds)]
    else:
        out[:] = [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    return out


class LazyColumns(Mapping[str, np.ndarray]):
    """A vertex table's columns, string ones decoded on first access (``StringColumn``)."""

    def __init__(self, columns: Mapping[str, np.ndarray | StringColumn]) -> None:
        self._columns = dict(columns)

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._columns[name]
        return col.decode() if isinstance(col, StringColumn) else col

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def raw(self, name: str) -> np.ndarray | StringColumn:
        """The column as held (a StringColumn is not decoded)."""
        return self._columns[name]


def column_reader(columns: Mapping[str, np.ndarray], name: str) -> Callable[[int], object]:
    """``i -> columns[name][i]``, without decoding a whole string column (``StringColumn.item``);
    the column looked up once, for callers that read many items of it."""
    col = columns.raw(name) if isinstance(columns, LazyColumns) else columns[name]
    return col.item if isinstance(col, StringColumn) else col.__getitem__


@dataclass(frozen=True, eq=False)
class VertexTable:
    """The vertices of one kind: keys and attribute columns, in insertion order. A loaded
    table may hold its keys as a ``StringColumn`` and its ranks by key as saved, so that
    neither is decoded or sorted before a query needs them."""

    key_source: np.ndarray | StringColumn  # object array of str, or its undecoded form
    columns: Mapping[str, np.ndarray]
    saved_rank: np.ndarray | None = None  # key_rank as saved with the graph

    def __len__(self) -> int:
        return len(self.key_source)

    def key_at(self, i: int) -> str:
        """``str(keys[i])``, without decoding every key when they are not decoded yet."""
        src = self.key_source
        if isinstance(src, StringColumn) and "keys" not in self.__dict__:
            return src.item(i)
        return str(self.keys[i])

    @cached_property
    def keys(self) -> np.ndarray:
        """Object array of str."""
        src = self.key_source
        return src.decode() if isinstance(src, StringColumn) else src

    @cached_property
    def index(self) -> pd.Index:
        """Key -> position."""
        return pd.Index(self.keys, dtype=object)

    @cached_property
    def key_rank(self) -> np.ndarray:
        """Each vertex's position in ascending key order (for sorting ties by key)."""
        if self.saved_rank is not None and len(self.saved_rank) == len(self):
            return self.saved_rank
        return rank_by_key(self.keys)

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


def rank_by_key(keys: np.ndarray) -> np.ndarray:
    """Each key's position in ascending order (ties: by position), int32 when it fits."""
    dtype = np.int32 if len(keys) < 2**31 else np.int64
    rank = np.empty(len(keys), dtype=dtype)
    rank[np.argsort(keys, kind="stable")] = np.arange(len(keys), dtype=dtype)
    return rank


@dataclass(frozen=True, eq=False)
class EdgeTable:
    """The edges of one kind as CSR over (src index, dst index); columns follow CSR order."""

    indptr: np.ndarray  # int64, n_src + 1
    indices: np.ndarray  # int32 dst positions
    columns: dict[str, np.ndarray]
    n_dst: int
    # ``reverse`` as saved with the graph (mapped; local_files), so that no process derives it
    # from a full pass over the edges; None: computed on first use
    saved_reverse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
        """(indptr over dst, src positions, position of each in the CSR order): the CSC view.
        Computed (a sort of every edge, ~70 MB of arrays for the people edges at 500K movies)
        unless it was saved with the graph."""
        if self.saved_reverse is not None:
            return self.saved_reverse
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
    """One immutable version of the graph, with a cache of matrices derived from its content
    (never from users' edges: ``apply_batch`` carries the cache over user-only changes)."""

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
            held = [vt.key_source]
            cols = vt.columns
            held += [cols.raw(n) if isinstance(cols, LazyColumns) else cols[n] for n in cols]
            for a in held:
                if isinstance(a, StringColumn):
                    total += a.nbytes
                else:
                    arrays.append(a)
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


FEW_EDGES = 4096
"""A batch of at most this many edges of a kind is merged by searching each edge's own row
(O(batch · log degree) plus copying the arrays), not by sorting every edge of the kind: one
feedback rating into 4M ratings took ~1 s the sorting way. Both ways give the same table."""


def _positions_in_rows(
    old: EdgeTable, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each (src, dst) edge: its position in CSR order when ``old`` holds it, else where it
    would be inserted; and whether it is held. Reads only the edge's own row (rows are sorted
    by dst)."""
    pos = np.empty(len(src), dtype=np.int64)
    found = np.zeros(len(src), dtype=bool)
    for i, (s, d) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
        start, end = int(old.indptr[s]), int(old.indptr[s + 1])
        row = old.indices[start:end]
        j = int(np.searchsorted(row, d))
        pos[i] = start + j
        found[i] = j < end - start and int(row[j]) == d
    return pos, found


def _updated_columns(
    kind: EdgeKind, old: EdgeTable, pos: np.ndarray, found: np.ndarray, frame: pd.DataFrame
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Per column: ``old``'s values with the batch's held edges (``found``, at ``pos``)
    overwritten (a copy only when any are held), and the batch's new edges' values; and how
    many held edges changed."""
    changed = np.zeros(int(found.sum()), dtype=bool)
    kept: dict[str, np.ndarray] = {}
    added: dict[str, np.ndarray] = {}
    for col in EDGE_SPECS[kind].columns:
        values = _column_values(frame, col)
        current = old.columns[col.name]
        changed |= ~_same(current[pos[found]], values[found])
        if found.any():
            current = current.copy()
            current[pos[found]] = values[found]
        kept[col.name], added[col.name] = current, values[~found]
    return kept, added, int(changed.sum())


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
    if len(src) <= FEW_EDGES:
        return _merge_few_edges(kind, old, src, dst, frame)
    old_codes = old.src.astype(np.int64) * n_dst + old.indices
    codes = src.astype(np.int64) * n_dst + dst
    pos = np.searchsorted(old_codes, codes)
    found = np.zeros(len(codes), dtype=bool)
    if len(old_codes):
        found = old_codes[np.minimum(pos, len(old_codes) - 1)] == codes
    kept, added, updated = _updated_columns(kind, old, pos, found, frame)
    created = int((~found).sum())
    if created == 0 and updated == 0:
        return old, 0, 0
    merged = {name: np.concatenate([kept[name], added[name]]) for name in kept}
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


def _merge_few_edges(
    kind: EdgeKind, old: EdgeTable, src: np.ndarray, dst: np.ndarray, frame: pd.DataFrame
) -> tuple[EdgeTable, int, int]:
    """``_merge_edges`` for a small batch (``FEW_EDGES``): changed values written in place of a
    copy, new edges inserted at their rows' positions."""
    pos, found = _positions_in_rows(old, src, dst)
    new = ~found
    order = np.lexsort((dst[new], src[new]))  # the new edges in CSR order
    at = pos[new][order]
    kept, added, updated = _updated_columns(kind, old, pos, found, frame)
    created = int(new.sum())
    if created == 0 and updated == 0:
        return old, 0, 0
    merged = {
        name: np.insert(kept[name], at, added[name][order]) if len(at) else kept[name]
        for name in kept
    }
    per_row = np.bincount(src[new], minlength=old.n_src)
    indptr = old.indptr.copy()
    np.add(indptr[1:], np.cumsum(per_row), out=indptr[1:])
    indices = np.insert(old.indices, at, dst[new][order].astype(np.int32))
    return EdgeTable(indptr, indices, merged, old.n_dst), created, updated


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
    new = GraphState(vertices, edges)
    _carry_content_cache(state, new)
    return new, UpsertReport(created, updated)


def _carry_content_cache(old: GraphState, new: GraphState) -> None:
    """Keep ``old``'s derived matrices in ``new`` when only users and their edges changed (a
    rating, a watch, a new user: what feedback writes). Every cached matrix is built from the
    content (movies, people, genres, tags and their edges: the k-hop operator, its hub split,
    the people matrices), so rebuilding them after each feedback write (0.3-0.8 s at 100K
    movies) would buy nothing; a changed content table is a new object, which drops them."""
    content_vertices = (k for k in VertexKind if k is not VertexKind.USER)
    content_edges = (k for k in EdgeKind if k not in USER_EDGES)
    if all(new.vertices[k] is old.vertices[k] for k in content_vertices) and all(
        new.edges[k] is old.edges[k] for k in content_edges
    ):
        new.cache.update(old.cache)
