"""GraphBatch: a columnar set of vertices and edges that a store applies all at once.

Importers build one batch, fully validated, and hand it to ``GraphStore.upsert``; the store
either applies all of it or none of it. Frames are pandas DataFrames: vertices have a ``key``
column, edges ``src`` and ``dst`` columns (vertex keys), plus the attribute columns named in
``features.graph.schema``. Missing attribute columns are filled with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.graph.schema import EDGE_SPECS, VERTEX_COLUMNS, Column, EdgeKind, VertexKind


class GraphDataError(ValueError):
    """Input that cannot go into the graph. The message names what was wrong and where."""


def _coerce(frame: pd.DataFrame, columns: tuple[Column, ...], what: str) -> pd.DataFrame:
    out = frame.copy()
    for col in columns:
        if col.name not in out.columns:
            out[col.name] = col.default
            continue
        if col.dtype == "str":
            out[col.name] = out[col.name].fillna("").astype(str)
        else:
            try:
                values = pd.to_numeric(out[col.name], errors="raise")
            except (TypeError, ValueError) as exc:
                raise GraphDataError(f"{what}: column {col.name!r} is not numeric: {exc}") from exc
            if np.issubdtype(np.dtype(col.dtype), np.integer):
                values = values.fillna(col.default)
            out[col.name] = values.astype(col.dtype)
    return out


@dataclass
class GraphBatch:
    """Vertices and edges to upsert. Later rows with the same key (or src, dst) win."""

    vertices: dict[VertexKind, pd.DataFrame] = field(default_factory=dict)
    edges: dict[EdgeKind, pd.DataFrame] = field(default_factory=dict)

    def add_vertices(self, kind: VertexKind, frame: pd.DataFrame) -> None:
        """Append vertices of one kind; ``frame`` needs a ``key`` column."""
        if "key" not in frame.columns:
            raise GraphDataError(f"{kind.value}: vertex frame has no 'key' column")
        cols = VERTEX_COLUMNS[kind]
        unknown = set(frame.columns) - {"key"} - {c.name for c in cols}
        if unknown:
            raise GraphDataError(f"{kind.value}: unknown vertex columns {sorted(unknown)}")
        frame = _coerce(frame, cols, kind.value)
        frame["key"] = frame["key"].astype(str)
        frame = frame[["key", *[c.name for c in cols]]]
        prev = self.vertices.get(kind)
        self.vertices[kind] = frame if prev is None else pd.concat([prev, frame], ignore_index=True)

    def add_edges(self, kind: EdgeKind, frame: pd.DataFrame) -> None:
        """Append edges of one kind; ``frame`` needs ``src`` and ``dst`` columns."""
        missing = {"src", "dst"} - set(frame.columns)
        if missing:
            raise GraphDataError(f"{kind.value}: edge frame lacks columns {sorted(missing)}")
        cols = EDGE_SPECS[kind].columns
        unknown = set(frame.columns) - {"src", "dst"} - {c.name for c in cols}
        if unknown:
            raise GraphDataError(f"{kind.value}: unknown edge columns {sorted(unknown)}")
        frame = _coerce(frame, cols, kind.value)
        frame["src"] = frame["src"].astype(str)
        frame["dst"] = frame["dst"].astype(str)
        frame = frame[["src", "dst", *[c.name for c in cols]]]
        prev = self.edges.get(kind)
        self.edges[kind] = frame if prev is None else pd.concat([prev, frame], ignore_index=True)

    def deduplicated(self) -> GraphBatch:
        """The same batch with one row per vertex key and per (src, dst) edge; the last wins."""
        out = GraphBatch()
        for vkind, vframe in self.vertices.items():
            out.vertices[vkind] = vframe.drop_duplicates("key", keep="last").reset_index(drop=True)
        for ekind, eframe in self.edges.items():
            out.edges[ekind] = eframe.drop_duplicates(["src", "dst"], keep="last").reset_index(
                drop=True
            )
        return out

    def __len__(self) -> int:
        return sum(len(f) for f in self.vertices.values()) + sum(
            len(f) for f in self.edges.values()
        )
