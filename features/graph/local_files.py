"""Saving and loading the embedded store's graph: one folder, no pickle, atomic replace.

``manifest.json`` (format name, version, counts, columns) points at a ``data-<id>/`` folder of
``.npy`` files. Strings are stored as one UTF-8 byte array plus offsets rather than fixed-width
unicode, because one long summary would otherwise widen every row of its column. A save writes a
new data folder, then replaces the manifest atomically (os.replace), then removes older data
folders: a crash leaves the previous graph. The arrays a save finds unchanged since the store's
last save (the same objects: states are immutable) are hard-linked from the last data folder
rather than written again (``SavedFiles``).

Loading memory-maps every array read-only (``np.load(mmap_mode="r")``): a load reads no data,
the pages come from the OS page cache as queries touch them, and every process that opens the
same graph (``marquee serve --workers N``) shares those pages instead of holding its own copy.
Strings stay encoded until first used (``local_state.StringColumn``), and each vertex kind's
order by key is saved (``<kind>.key_rank.npy``) so that no load sorts millions of keys. So is
each content edge kind's reverse (CSC) view (``<edge>.reverse_{indptr,src,perm}.npy``): the
explanations of a served slate read the people of a few movies through it, and deriving it
took a sort of every edge and ~70 MB of private arrays in each worker at 500K movies. Users'
edge kinds change with every rating, so theirs is derived when a query first needs it. A
removed data folder stays readable by processes that mapped it until they drop it (POSIX
unlink semantics), so a save never pulls pages from under a reader.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.graph.local_state import (
    EdgeTable,
    GraphState,
    LazyColumns,
    StringColumn,
    VertexTable,
)
from features.graph.schema import EDGE_SPECS, VERTEX_COLUMNS, Column, EdgeKind, VertexKind
from features.graph.store import GraphStoreError
from features.npz import read_npy, write_npy

log = logging.getLogger(__name__)

FORMAT_NAME = "marquee-local-graph"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
# Edge kinds whose reverse view is saved (module doc): the content edges, not users' own.
REVERSE_SAVED = frozenset(k for k in EdgeKind if EDGE_SPECS[k].src is not VertexKind.USER)
REVERSE_PARTS = ("reverse_indptr", "reverse_src", "reverse_perm")


@contextmanager
def folder_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """An advisory lock (flock) on the graph folder, among processes and store objects: a
    writer holds it exclusively from loading the latest save to replacing the manifest, so no
    process saves over another's edges; a reader holds it shared while it maps a save, so no
    writer removes that data folder meanwhile. Yields False, holding nothing, when ``wait`` is
    False and the lock is taken."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        if not shared:
            raise  # a folder nobody may write to: the save would fail anyway
        try:
            fd = os.open(path / LOCK, os.O_RDONLY)
        except OSError:  # read-only and never written to here: no writer to keep out
            yield True
            return
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class SavedFiles:
    """What one save wrote: its data folder and, per file name, the object saved there. States
    are immutable and an upsert keeps every array it does not touch, so the next save of the
    same store links those files (``os.link``) instead of writing and fsyncing them again: a
    user's new rating rewrites the user and rating arrays, not the catalogue."""

    data: Path
    held: dict[str, object]


class _Writer:
    """Writes one data folder, linking files whose object the previous save already wrote."""

    def __init__(self, data: Path, previous: SavedFiles | None) -> None:
        self.data = data
        self.previous = previous
        self.held: dict[str, object] = {}
        self.linked = 0

    def _link(self, names: list[str], obj: object) -> bool:
        prev = self.previous
        if prev is None or any(prev.held.get(n) is not obj for n in names):
            return False
        try:
            for n in names:
                os.link(prev.data / n, self.data / n)
        except OSError:  # the folder is gone (another writer's save removed it), or no links
            for n in names:
                (self.data / n).unlink(missing_ok=True)
            return False
        self.linked += len(names)
        return True

    def array(self, name: str, array: np.ndarray) -> None:
        file = f"{name}.npy"
        if not self._link([file], array):
            write_npy(self.data / file, array)
        self.held[file] = array

    def strings(self, name: str, values: np.ndarray | StringColumn) -> None:
        files = [f"{name}.utf8.npy", f"{name}.offsets.npy"]
        if not self._link(files, values):
            _write_strings(self.data, name, values)
        self.held.update(dict.fromkeys(files, values))


def _write_strings(folder: Path, name: str, values: np.ndarray | StringColumn) -> None:
    if isinstance(values, StringColumn):  # as loaded: its bytes, never decoded for a save
        write_npy(folder / f"{name}.utf8.npy", np.asarray(values.blob))
        write_npy(folder / f"{name}.offsets.npy", np.asarray(values.offsets))
        return
    encoded = [s.encode("utf-8") for s in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    write_npy(folder / f"{name}.utf8.npy", np.frombuffer(b"".join(encoded), dtype=np.uint8))
    write_npy(folder / f"{name}.offsets.npy", offsets)


def _read_npy(path: Path) -> np.ndarray:
    """The array saved at ``path``, memory-mapped read-only (an empty one is read: there is
    nothing to map)."""
    try:
        return read_npy(path)
    except (OSError, ValueError) as exc:
        raise GraphStoreError(f"{path}: cannot read saved graph array: {exc}") from exc


def _read_strings(folder: Path, name: str) -> StringColumn:
    """The saved strings, mapped and left encoded until first used."""
    blob = _read_npy(folder / f"{name}.utf8.npy")
    offsets = _read_npy(folder / f"{name}.offsets.npy")
    if len(offsets) < 1 or (len(offsets) > 1 and int(offsets[-1]) != len(blob)):
        raise GraphStoreError(f"{folder / name}: string offsets do not match their bytes")
    return StringColumn(blob, offsets)


def save_state(state: GraphState, path: Path, previous: SavedFiles | None = None) -> SavedFiles:
    """Write ``state`` to the folder ``path`` atomically (see the module docstring); what
    ``previous`` (the last save to ``path``) wrote and ``state`` still holds is linked, not
    written again (SavedFiles)."""
    path.mkdir(parents=True, exist_ok=True)
    data_name = f"data-{uuid.uuid4().hex[:12]}"
    data = path / data_name
    data.mkdir()
    put = _Writer(data, previous)
    try:
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "data": data_name,
            "vertices": {},
            "edges": {},
        }
        for vkind, vt in state.vertices.items():
            put.strings(f"{vkind.value}.key", vt.key_source)
            put.array(f"{vkind.value}.key_rank", vt.key_rank)
            cols = vt.columns
            for col in VERTEX_COLUMNS[vkind]:
                name = f"{vkind.value}.{col.name}"
                if col.dtype == "str":
                    held = cols.raw(col.name) if isinstance(cols, LazyColumns) else cols[col.name]
                    put.strings(name, held)
                else:
                    put.array(name, vt.columns[col.name])
            manifest["vertices"][vkind.value] = {
                "count": len(vt),
                "columns": [c.name for c in VERTEX_COLUMNS[vkind]],
                "key_rank": True,
            }
        for ekind, et in state.edges.items():
            put.array(f"{ekind.value}.indptr", et.indptr)
            put.array(f"{ekind.value}.indices", et.indices)
            for col in EDGE_SPECS[ekind].columns:
                put.array(f"{ekind.value}.{col.name}", et.columns[col.name])
            manifest["edges"][ekind.value] = {
                "count": et.nnz,
                "columns": [c.name for c in EDGE_SPECS[ekind].columns],
            }
            n_dst = len(state.vertices[EDGE_SPECS[ekind].dst])
            if ekind in REVERSE_SAVED and et.n_dst == n_dst:  # derived once per change, linked
                for part, arr in zip(REVERSE_PARTS, et.reverse, strict=True):
                    put.array(f"{ekind.value}.{part}", arr)
                manifest["edges"][ekind.value]["reverse"] = True
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
    log.info(
        "saved graph to %s (%s; %d files linked from the last save)", path, data_name, put.linked
    )
    return SavedFiles(data, put.held)


def saved_data_name(path: Path) -> str | None:
    """The data folder the manifest in ``path`` names now (one per save), or None when the
    folder holds no saved graph: a cheap way to tell whether anyone saved since."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise GraphStoreError(f"{path / MANIFEST}: not a readable graph manifest: {exc}") from exc
    return str(manifest["data"]) if isinstance(manifest, dict) and "data" in manifest else None


def load_state(path: Path) -> GraphState | None:
    """The graph saved in folder ``path``, or None when it holds no saved graph."""
    loaded = load_saved(path)
    return None if loaded is None else loaded[0]


def load_saved(path: Path) -> tuple[GraphState, SavedFiles] | None:
    """The graph saved in folder ``path`` and what it was mapped from (as ``SavedFiles``, so
    that the next save links every array still held instead of writing it again), or None
    when the folder holds no saved graph."""
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
    held: dict[str, object] = {}

    def strings(name: str) -> StringColumn:
        column = _read_strings(data, name)
        held.update(dict.fromkeys([f"{name}.utf8.npy", f"{name}.offsets.npy"], column))
        return column

    def array(name: str) -> np.ndarray:
        arr = _read_npy(data / f"{name}.npy")
        held[f"{name}.npy"] = arr
        return arr

    vertices: dict[VertexKind, VertexTable] = {}
    for vkind in VertexKind:
        info = manifest["vertices"].get(vkind.value)
        if info is None:
            vertices[vkind] = VertexTable.empty(vkind)
            continue
        keys = strings(f"{vkind.value}.key")
        _check_count(manifest_path, vkind.value, "key", len(keys), info["count"])
        rank = None
        if info.get("key_rank"):
            rank = array(f"{vkind.value}.key_rank")
            _check_count(manifest_path, vkind.value, "key_rank", len(rank), len(keys))
        columns: dict[str, np.ndarray | StringColumn] = {}
        for col in VERTEX_COLUMNS[vkind]:
            name = f"{vkind.value}.{col.name}"
            if col.name not in info["columns"]:
                log.info("%s: no saved column %s; filling %r", manifest_path, name, col.default)
                columns[col.name] = _default_column(col, len(keys))
                continue
            arr = strings(name) if col.dtype == "str" else array(name)
            _check_count(manifest_path, vkind.value, col.name, len(arr), len(keys))
            columns[col.name] = arr
        vertices[vkind] = VertexTable(keys, LazyColumns(columns), rank)
    edges: dict[EdgeKind, EdgeTable] = {}
    for ekind in EdgeKind:
        spec = EDGE_SPECS[ekind]
        n_src, n_dst = len(vertices[spec.src]), len(vertices[spec.dst])
        info = manifest["edges"].get(ekind.value)
        if info is None:
            edges[ekind] = EdgeTable.empty(ekind, n_src, n_dst)
            continue
        # an older save's other integer widths are converted, and then not linked (not held)
        indptr = array(f"{ekind.value}.indptr").astype(np.int64, copy=False)
        indices = array(f"{ekind.value}.indices").astype(np.int32, copy=False)
        _check_count(manifest_path, ekind.value, "indptr", len(indptr), n_src + 1)
        _check_count(manifest_path, ekind.value, "indices", len(indices), info["count"])
        edge_columns: dict[str, np.ndarray] = {}
        for col in spec.columns:
            if col.name not in info["columns"]:
                edge_columns[col.name] = _default_column(col, len(indices))
                continue
            arr = array(f"{ekind.value}.{col.name}")
            _check_count(manifest_path, ekind.value, col.name, len(arr), len(indices))
            edge_columns[col.name] = arr
        reverse = None
        if ekind in REVERSE_SAVED and info["count"] and not info.get("reverse"):
            log.info(
                "%s: %s saved without its reverse view; derived on first use, written by "
                "the next save",
                manifest_path,
                ekind.value,
            )
        if info.get("reverse"):  # saves from before it derive it on first use
            indptr_r, src_r, perm_r = (array(f"{ekind.value}.{p}") for p in REVERSE_PARTS)
            _check_count(manifest_path, ekind.value, "reverse_indptr", len(indptr_r), n_dst + 1)
            _check_count(manifest_path, ekind.value, "reverse_src", len(src_r), len(indices))
            _check_count(manifest_path, ekind.value, "reverse_perm", len(perm_r), len(indices))
            reverse = (indptr_r, src_r, perm_r)
        edges[ekind] = EdgeTable(indptr, indices, edge_columns, n_dst, reverse)
    return GraphState(vertices, edges), SavedFiles(data, held)


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
