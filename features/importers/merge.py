"""Merging a new batch with what the graph already holds, so that sources add up.

A batch row replaces a whole vertex in the store, so an import that knows only some attributes
(HetRec's posters, MovieLens' titles) would wipe the others. Before upserting, every import is
passed through ``merge_with_existing``: for a vertex already in the graph, attributes the batch
leaves at their default keep the stored value, "|"-joined list attributes (genres, countries)
become the union (stored items first), and ``tagged`` weights keep the larger of the two. So
importing MovieLens, then HetRec, then MovieLens again leaves the graph as after the first two,
and importing anything twice changes nothing. (A consequence: a source can add list items and
tag weight but not take them away.)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EDGE_SPECS, VERTEX_COLUMNS, EdgeKind, VertexKind

LIST_COLUMNS = frozenset({"genres", "countries"})


class FrameSource(Protocol):
    """Where the graph is read from: any GraphStore, or ``BatchFrames`` over a batch."""

    def vertex_frame(self, kind: VertexKind) -> pd.DataFrame: ...

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame: ...


def _union(stored: object, new: object) -> str:
    have = [g for g in str(stored).split("|") if g] if isinstance(stored, str) else []
    for g in str(new).split("|"):
        if g and g not in have:
            have.append(g)
    return "|".join(have)


def _merge_vertices(kind: VertexKind, frame: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    hit = frame["key"].isin(pd.Index(stored["key"])).to_numpy()
    if not hit.any():
        return frame
    old = stored.drop_duplicates("key").set_index("key").reindex(frame["key"])
    out = frame.copy()
    for col in VERTEX_COLUMNS[kind]:
        new = out[col.name].to_numpy()
        prev = old[col.name].to_numpy()
        if col.name in LIST_COLUMNS:
            merged = new.astype(object).copy()
            for i in np.flatnonzero(hit):
                merged[i] = _union(prev[i], new[i])
            out[col.name] = merged
            continue
        if col.dtype == "str":
            keep = hit & (new == "") & pd.notna(prev) & (prev.astype(str) != "")
        elif col.dtype.startswith("int"):
            keep = hit & (new == 0) & pd.notna(prev) & (prev != 0)
        else:
            keep = hit & np.isnan(new.astype("float64")) & pd.notna(prev)
        if keep.any():
            values = new.copy()
            values[keep] = prev[keep].astype(values.dtype)
            out[col.name] = values
    return out


def _max_weights(edges: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    if len(stored) == 0 or len(edges) == 0:
        return edges
    old = stored.drop_duplicates(["src", "dst"]).set_index(["src", "dst"])["weight"]
    before = old.reindex(pd.MultiIndex.from_frame(edges[["src", "dst"]])).to_numpy("float64")
    out = edges.copy()
    weights = out["weight"].to_numpy(dtype="float64")
    out["weight"] = np.fmax(weights, before).astype(out["weight"].dtype)
    return out


def merge_with_existing(batch: GraphBatch, graph: FrameSource) -> GraphBatch:
    """``batch`` (deduplicated) with stored attributes carried over as the module doc says."""
    batch = batch.deduplicated()
    out = GraphBatch(vertices=dict(batch.vertices), edges=dict(batch.edges))
    for kind, frame in batch.vertices.items():
        stored = graph.vertex_frame(kind)
        if len(stored) and len(frame):
            out.vertices[kind] = _merge_vertices(kind, frame, stored)
    if EdgeKind.TAGGED in batch.edges:
        stored_tags = graph.edge_frame(EdgeKind.TAGGED)
        out.edges[EdgeKind.TAGGED] = _max_weights(batch.edges[EdgeKind.TAGGED], stored_tags)
    return out


class BatchFrames:
    """A GraphBatch seen as a FrameSource (to join side data before anything is stored)."""

    def __init__(self, batch: GraphBatch) -> None:
        self._batch = batch

    def vertex_frame(self, kind: VertexKind) -> pd.DataFrame:
        frame = self._batch.vertices.get(kind)
        if frame is None:
            return pd.DataFrame(columns=["key", *[c.name for c in VERTEX_COLUMNS[kind]]])
        return frame

    def edge_frame(self, kind: EdgeKind) -> pd.DataFrame:
        frame = self._batch.edges.get(kind)
        if frame is None:
            return pd.DataFrame(columns=["src", "dst", *[c.name for c in EDGE_SPECS[kind].columns]])
        return frame
