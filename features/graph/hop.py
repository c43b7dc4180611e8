"""The movie-to-movie hop operator H, once, for the Catalog and the embedded store alike.

For a vector x over movies, ``H(x)[j] = sum_e w_e sum_{i != j} x[i] n_e(i, j)`` (the
GraphStore semantics, features/graph/store.py). In factored form, with B the binary
movie x column incidence (a column: a content vertex, or one similar_to edge joining its two
movies), w the per-column edge-kind weight, d_i = sum_v w_v B[i, v] and S an optional
separate weighted similar_to matrix, ``H(x) = B diag(w) B^T x - d * x + S x``, without ever
forming the (dense, because of genres) movie x movie matrix. One hop costs two sparse
mat-vecs over the edges. Columns that hold a single movie are left out of B: they only pair
their movie with itself, which the ``- d x`` term cancels, so dropping them leaves H as it
was, with fewer entries to read.

The Catalog builds it from the store's edge frames (similar_to in S), the embedded store from
its own arrays (similar_to edges as columns of B, S empty), cached per graph version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from features.graph.matvec import matvec, row_blocks

PADDED_MAX = 1_000_000  # (rows x longest row) up to which row sums use one padded table


def row_products(
    m: sp.csr_matrix, rows: npt.NDArray[np.int64], x: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``(m @ x)[rows]``, equal bit for bit: each row's products summed left to right, as
    scipy's CSR mat-vec does. The rows' entries are laid out in a zero-padded table and summed
    by a cumulative sum along each row (a sequential scan, unlike ``np.sum``'s pairwise one;
    adding the padding's zeros changes nothing), which avoids scipy's fancy row indexing."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = m.indptr[rows].astype(np.int64)
    lengths = m.indptr[rows + 1] - starts
    width = int(lengths.max(initial=0))
    if width == 0:
        return np.zeros(rows.shape[0])
    if rows.shape[0] * width > PADDED_MAX:  # a few very long rows: let scipy slice
        return np.asarray(m[rows] @ x)
    offsets = np.arange(width)
    inside = offsets[None, :] < lengths[:, None]
    at = np.where(inside, starts[:, None] + offsets[None, :], 0)
    products = np.where(inside, m.data[at] * x[m.indices[at]], 0.0)
    return np.cumsum(products, axis=1)[:, -1]


def _without_lone_columns(
    bw: sp.csr_matrix, bt: sp.csr_matrix
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(B w, B^T) without the columns that hold one movie. Such a column (a person in one
    movie, a tag used once) only pairs its movie with itself, which the ``- d x`` term cancels,
    so dropping it (and its weight from d) leaves H as it was, with fewer entries to read: on a
    synthetic 100K catalogue with 300K people, 63% of the columns and 16% of the entries."""
    keep = np.flatnonzero(np.diff(bt.indptr) >= 2)
    if keep.shape[0] == bt.shape[0]:
        return bw, bt
    bw = sp.csr_matrix(bw[:, keep])
    bw.sort_indices()
    return bw, sp.csr_matrix(bt[keep])


@dataclass(frozen=True)
class HopGraph:
    """The movie-to-movie hop operator H in factored form (see module doc)."""

    bw: sp.csr_matrix  # movies x columns, B * w
    bt: sp.csr_matrix  # columns x movies, B^T
    self_weight: npt.NDArray[np.float64]  # d_i
    similar: sp.csr_matrix  # movies x movies, weighted similar_to counts, zero diagonal

    def apply(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """One hop: H @ x for a vector (n_movies,) or a matrix (n_movies, m)."""
        out = self.bw @ (self.bt @ x)
        d = self.self_weight if x.ndim == 1 else self.self_weight[:, None]
        out = out - d * x
        if self.similar.nnz:
            out = out + self.similar @ x
        return np.asarray(out)

    @cached_property
    def _similar_rows(self) -> tuple[npt.NDArray[np.int64], sp.csr_matrix]:
        """The rows of S that hold links, and S cut down to them: about one movie in twenty
        has a similar_to link, so a product over those rows skips scanning every empty one."""
        rows = np.flatnonzero(np.diff(self.similar.indptr)).astype(np.int64)
        return rows, sp.csr_matrix(self.similar[rows])

    def _add_similar(self, out: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> None:
        """``out += S @ x`` in place, equal bit for bit (empty rows would add 0.0)."""
        rows, compact = self._similar_rows
        if rows.shape[0]:
            out[rows] += compact @ x

    @cached_property
    def _blocks(self) -> tuple[list[sp.csr_matrix], list[sp.csr_matrix]]:
        """(bt, bw) as row blocks for parallel mat-vecs: two each when the graph is large."""
        return row_blocks(self.bt), row_blocks(self.bw)

    def _apply_vector(
        self, x: npt.NDArray[np.float64], column_sums: npt.NDArray[np.float64] | None = None
    ) -> npt.NDArray[np.float64]:
        """``apply`` for one vector, the same floating-point operations in the same order,
        with the large mat-vecs split over two threads (``column_sums``: B^T x, if known)."""
        bt, bw = self._blocks
        out = matvec(bw, matvec(bt, x) if column_sums is None else column_sums)
        out -= self.self_weight * x
        self._add_similar(out, x)
        return out

    def first_of_rows(self, seeds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """H @ s for s = 1 on ``seeds`` (distinct rows), ``first`` without a dense seed vector:
        B^T s is counted from the seeds' rows of B (exact small integers, as ``bt @ s`` gives)
        instead of a pass over all of B."""
        seeds = np.asarray(seeds, dtype=np.int64)
        starts, ends = self.bw.indptr[seeds], self.bw.indptr[seeds + 1]
        parts = [self.bw.indices[a:b] for a, b in zip(starts, ends, strict=True)]
        cols = np.concatenate([np.zeros(0, dtype=self.bw.indices.dtype), *parts])
        y = np.bincount(cols, minlength=self.bw.shape[1]).astype(np.float64)
        _, bw = self._blocks
        out = matvec(bw, y)
        out[seeds] -= self.self_weight[seeds]  # x - d * s: d * s is 0 off the seeds
        if self.similar.nnz:
            s = np.zeros(self.bw.shape[0])
            s[seeds] = 1.0
            self._add_similar(out, s)
        return out

    def first_of_few_rows(self, seeds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """``first_of_rows`` reading only the columns the seeds touch when those hold few
        entries (a weighted count instead of a pass over all of B w): equal up to the order of
        additions, for callers that round path counts anyway (the store's k-hop query)."""
        seeds = np.asarray(seeds, dtype=np.int64)
        n_rows, n_cols = self.bw.shape
        pos = gather_positions(self.bw.indptr, seeds)
        y = np.bincount(self.bw.indices[pos], minlength=n_cols).astype(np.float64)
        cols = np.flatnonzero(y)
        bt = self.bt
        if int(np.diff(bt.indptr)[cols].sum()) * 4 >= bt.nnz:
            return self.first_of_rows(seeds)
        col_weight = self._column_weight
        pos = gather_positions(bt.indptr, cols)
        lens = np.diff(bt.indptr)[cols]
        weights = np.repeat(y[cols] * col_weight[cols], lens)
        out: npt.NDArray[np.float64] = np.bincount(
            bt.indices[pos], weights=weights, minlength=n_rows
        ).astype(np.float64, copy=False)
        out[seeds] -= self.self_weight[seeds]
        if self.similar.nnz:
            s = np.zeros(n_rows)
            s[seeds] = 1.0
            self._add_similar(out, s)
        return out

    def step_few(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """H @ x, reading only what x's nonzeros touch while that is little: each half of the
        hop (B^T x, then B w y) gathers the rows it needs when they hold under a quarter of
        the entries, else runs the whole mat-vec (at once when x is nonzero on most movies).
        Equal to ``step`` up to the order of additions, for callers that round path counts
        (the store's k-hop query)."""
        n_rows, n_cols = self.bw.shape
        rows = np.flatnonzero(x).astype(np.int64)
        if rows.shape[0] * 2 > n_rows:  # most movies: the full hop, without the bookkeeping
            return self._apply_vector(x)
        bw_degree, bt_degree = self._degrees
        bw_lens = bw_degree[rows]
        bt, bw = self._blocks
        y: npt.NDArray[np.float64]
        if int(bw_lens.sum()) * 4 < self.bw.nnz:
            pos = gather_positions(self.bw.indptr, rows)
            weights = np.repeat(x[rows], bw_lens)
            y = np.bincount(self.bw.indices[pos], weights=weights, minlength=n_cols).astype(
                np.float64, copy=False
            )
        else:
            y = matvec(bt, x)
        cols = np.flatnonzero(y)
        lens = bt_degree[cols]
        out: npt.NDArray[np.float64]
        if int(lens.sum()) * 4 < self.bt.nnz:
            pos = gather_positions(self.bt.indptr, cols)
            weights = np.repeat(y[cols] * self._column_weight[cols], lens)
            out = np.bincount(self.bt.indices[pos], weights=weights, minlength=n_rows).astype(
                np.float64, copy=False
            )
        else:
            out = matvec(bw, y)
        out[rows] -= self.self_weight[rows] * x[rows]
        if self.similar.nnz:
            self._add_similar(out, x)
        return np.asarray(out, dtype=np.float64)

    @cached_property
    def _degrees(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Entries per row of B w and per row of B^T."""
        return np.diff(self.bw.indptr).astype(np.int64), np.diff(self.bt.indptr).astype(np.int64)

    @cached_property
    def _column_weight(self) -> npt.NDArray[np.float64]:
        """w_v per column of B (each column of B w holds one weight)."""
        w = np.zeros(self.bw.shape[1])
        w[self.bw.indices] = self.bw.data
        return w

    def first(self, seed: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """H @ seed, equal bit for bit to ``apply``: a 0/1 seed reads only the seeds' rows."""
        x = seed.astype(np.float64)
        rows = np.flatnonzero(x)
        return self.first_of_rows(rows) if np.all(x[rows] == 1.0) else self._apply_vector(x)

    def step(
        self, x: npt.NDArray[np.float64], column_sums: npt.NDArray[np.float64] | None = None
    ) -> npt.NDArray[np.float64]:
        """H @ x for one vector, equal bit for bit to ``apply`` (large mat-vecs on two threads);
        given ``column_sums(x)`` already computed, only the second half of the hop is done."""
        return self._apply_vector(x, column_sums)

    def column_sums(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """B^T x, the half of a hop that ``apply_rows`` reuses (two threads when large)."""
        bt, _ = self._blocks
        return matvec(bt, x)

    def apply_rows(
        self,
        x: npt.NDArray[np.float64],
        rows: npt.NDArray[np.int64],
        column_sums: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """(H @ x)[rows], equal bit for bit to ``step(x)[rows]``, given ``column_sums(x)``
        (computed here when not given): for a few rows it costs half a hop once, then only
        the rows' own entries."""
        rows = np.asarray(rows, dtype=np.int64)
        y = self.column_sums(x) if column_sums is None else column_sums
        out = row_products(self.bw, rows, y)
        out -= self.self_weight[rows] * x[rows]
        if self.similar.nnz:
            out += row_products(self.similar, rows, x)
        return out

    def levels(self, seed: npt.NDArray[np.float64], hops: int) -> npt.NDArray[np.float64]:
        """(hops, n_movies): row h-1 is H^h seed, the path counts of exactly h hops.

        Equal, bit for bit, to applying ``apply`` h times: a 0/1 seed's first hop reads only
        the seeds' rows for B^T s, and large mat-vecs run on two threads, row block by block.
        """
        if hops not in (1, 2, 3):
            raise ValueError(f"hops must be 1, 2 or 3, got {hops}")
        out = np.empty((hops, seed.shape[0]), dtype=np.float64)
        x = self.first(seed)
        out[0] = x
        for h in range(1, hops):
            x = self.step(x)
            out[h] = x
        return out


def hop_graph(bw: sp.csr_matrix, bt: sp.csr_matrix, similar: sp.csr_matrix) -> HopGraph:
    """The HopGraph of B w, B^T and S, with lone columns dropped and d_i = sum_v (B w)[i, v]
    (the same sums, in the same order, whether built from the graph or loaded from a file)."""
    bw, bt = _without_lone_columns(sp.csr_matrix(bw), sp.csr_matrix(bt))
    self_weight = np.asarray(bw @ np.ones(bw.shape[1])).reshape(-1)
    return HopGraph(bw=bw, bt=bt, self_weight=self_weight, similar=sp.csr_matrix(similar))


def gather_positions(
    indptr: npt.NDArray[np.integer], rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Positions of all entries of CSR ``rows``, in row order."""
    starts = indptr[rows].astype(np.int64)
    lens = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return offsets + np.arange(int(lens.sum()), dtype=np.int64)


def incidence_hop(c: sp.csr_matrix, column_weight: npt.NDArray[np.float64]) -> HopGraph:
    """The HopGraph of a binary column x movie incidence ``c`` (B^T) with one weight per
    column: B w = c^T diag(w), no separate similar_to matrix."""
    c = sp.csr_matrix(c)
    c.sort_indices()
    bw = sp.csr_matrix(c.T.tocsr())
    bw.data = np.asarray(column_weight, dtype=np.float64)[bw.indices]
    n = c.shape[1]
    return hop_graph(bw, c, sp.csr_matrix((n, n)))


def distinct(a: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """The distinct values of a small array, ascending, by a sort: numpy's hashing
    ``np.unique`` costs several times more on thousands of values (~0.8 vs ~0.03 ms on the
    3-hop last hop's ~6,000 column numbers at 500K)."""
    out: npt.NDArray[np.int64] = np.sort(np.asarray(a, dtype=np.int64))
    if out.shape[0] < 2:
        return out
    keep = np.empty(out.shape[0], dtype=np.bool_)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]
