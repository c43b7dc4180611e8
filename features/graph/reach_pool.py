"""Two hops of path counts at a few movies, without a pass over the whole graph, and the pool of
far-reaching movies that a user's 2-hop candidates come from on large graphs.

With H = B W B^T - D + S (features.graph.hop), a user's first two levels are x1 = H s and
x2 = H x1 (s = 1 on their positives). On 500K movies a whole hop is two passes over B's 5M
entries (~20 ms CPU each) and a first request made three (the candidates' two hops; the state's
pool reuses them). What the Ranker needs is far less: the state's pool reads both levels at the
user's seen movies, the candidates the top of x1 + x2. Here, for one seed set (``TwoHops``):

- x1 at any movies: y1 = B^T s counted from the seeds' own rows, then each movie's products,
  equal bit for bit to the full first hop there (``HopGraph.first_of_rows``).
- y2 = B^T x1 at the columns asked for, without x1 at every movie: x1 = B_hub a + z, where
  a = w_hub y1_hub is the hub columns' share (the genres, the commonest tags: dense over movies
  but a function of which hubs a movie is in) and z is sparse (the movies of the seeds' other
  columns, the seeds' own - d s, and S s). So y2_v = sum_u |v ∩ u| a_u + (B^T z)_v, with the
  co-occurrence counts |v ∩ u| precomputed for the hubs themselves and for the other columns of
  the pool's movies; any other column (a seen movie's actor) is summed over its own movies.
- x2 at the movies asked for: their products with y2, minus d x1, plus S x1.

x2 equals the full hop's up to the order of additions (the same sums regrouped: ~1e-16
relative). The cost is the seeds' columns, the pool's and the seen movies' rows, and a product
with the pool's co-occurrence table: no pass over B.

Candidates (``features.candidates``): at 500K movies a user's best 2-hop movies are almost all
among the few thousand of highest reach H 1. Two hops from a user's positives mostly count how
many and how large a movie's own columns are (the middle level x1 is dense: every genre reaches
tens of thousands of movies), so the top of x1 + x2 is close to the top of H 1 for everyone.
Over 100 users of the 500K synthetic graph, the exact top 214 of the ``POOL_SIZE`` = 4,096
movies of highest reach shared 99.99% (at worst 98.6%) of the full computation's top 214, and
the top 10 all. So on graphs of ``POOLED_MIN_NNZ`` entries or more, the candidates are the exact
2-hop top over the pool: an approximation, kept off smaller graphs, which score every movie as
before.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from features.graph.hop import HopGraph, gather_positions
from features.graph.hop import distinct as _distinct
from features.graph.hop_top import HUB_DEGREE

log = logging.getLogger(__name__)

POOL_SIZE = 4096  # movies of highest reach the candidates are chosen from
# B's entries from which 2-hop candidates come from the pool (at 100K movies, 1M entries, a
# whole pass costs a few ms and every movie is scored, exactly, as before)
POOLED_MIN_NNZ = 2_000_000

_POOLS: dict[int, ReachPool | None] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class ReachPool:
    """A HopGraph with the co-occurrence counts two hops at a few rows need (module doc).

    The columns the pool's movies are in (the hubs and ``near``) are numbered 0.. in a local
    space (``local_of``), where a user's column sums are kept as short arrays: arrays over all
    movies or columns would cost a request more in fresh pages than their arithmetic.
    """

    op: HopGraph
    rows: npt.NDArray[np.int64]  # the pool: the movies of highest reach H 1, ascending
    hubs: npt.NDArray[np.int64]  # columns of more than HUB_DEGREE movies, ascending
    is_hub: npt.NDArray[np.bool_]  # per column
    column_weight: npt.NDArray[np.float64]  # w_v per column
    gram: npt.NDArray[np.float64]  # (hubs, hubs): |u ∩ u'|
    near: npt.NDArray[np.int64]  # the other columns of the pool's movies, ascending
    near_gram: sp.csr_matrix  # (near, hubs): |v ∩ u|
    local_of: npt.NDArray[np.int32]  # per column: its local number, -1 outside hubs and near
    rows_bw: sp.csr_matrix  # the pool's rows of B w, columns numbered locally (same order)
    rows_similar: sp.csr_matrix  # the pool's rows of S

    @property
    def n_local(self) -> int:
        return int(self.hubs.shape[0] + self.near.shape[0])


def build_reach_pool(
    op: HopGraph, size: int | None = None, hub_degree: int | None = None
) -> ReachPool:
    """The pool of ``op``'s ``size`` (default ``POOL_SIZE``) movies of highest reach (ties:
    lower row first) and the co-occurrence tables, hubs being the columns of more than
    ``hub_degree`` (default ``HUB_DEGREE``) movies (a few passes over B; ~2 s at 500K)."""
    size = POOL_SIZE if size is None else size
    n_rows, n_cols = op.bw.shape
    degree = np.diff(op.bt.indptr)
    is_hub = degree > (HUB_DEGREE if hub_degree is None else hub_degree)
    hubs = np.flatnonzero(is_hub).astype(np.int64)
    reach = op.apply(np.ones(n_rows))
    rows = np.sort(np.lexsort((np.arange(n_rows), -reach))[:size]).astype(np.int64)
    # B^T as counts (float32 is exact for them), its hub rows as the right-hand side
    pattern = sp.csr_matrix(
        (np.ones(op.bt.nnz, dtype=np.float32), op.bt.indices, op.bt.indptr), shape=op.bt.shape
    )
    hub_t = sp.csr_matrix(pattern[hubs].T)
    gram = np.asarray((pattern[hubs] @ hub_t).toarray(), dtype=np.float64)
    cols = _distinct(op.bw.indices[gather_positions(op.bw.indptr, rows)])
    near = cols[~is_hub[cols]]
    near_gram = sp.csr_matrix(pattern[near] @ hub_t, dtype=np.float64)
    column_weight = np.zeros(n_cols)
    column_weight[op.bw.indices] = op.bw.data
    local = np.union1d(hubs, near)
    local_of = np.full(n_cols, -1, dtype=np.int32)
    local_of[local] = np.arange(local.shape[0], dtype=np.int32)
    rows_bw = sp.csr_matrix(op.bw[rows])  # rows' entries in their order: the same sums
    rows_bw.indices = local_of[rows_bw.indices]  # increasing: the order stays
    rows_bw = sp.csr_matrix(
        (rows_bw.data, rows_bw.indices, rows_bw.indptr), shape=(rows.shape[0], local.shape[0])
    )
    log.info(
        "reach pool: %d of %d movies, %d hub and %d other columns, %d co-occurrence counts",
        rows.shape[0],
        n_rows,
        hubs.shape[0],
        near.shape[0],
        near_gram.nnz,
    )
    return ReachPool(
        op,
        rows,
        hubs,
        is_hub,
        column_weight,
        gram,
        near,
        near_gram,
        local_of,
        rows_bw,
        sp.csr_matrix(op.similar[rows]),
    )


def reach_pool(op: HopGraph) -> ReachPool | None:
    """``op``'s pool, built once per operator, or None below the gate (``POOLED_MIN_NNZ``
    entries, 16 x ``POOL_SIZE`` movies, at least one hub column): there every movie is
    scored."""
    key = id(op)
    with _LOCK:
        if key in _POOLS:
            return _POOLS[key]
        pool: ReachPool | None = None
        if (
            op.bt.nnz >= POOLED_MIN_NNZ
            and op.bw.shape[0] >= 16 * POOL_SIZE
            and np.any(np.diff(op.bt.indptr) > HUB_DEGREE)
        ):
            pool = build_reach_pool(op)
        _POOLS[key] = pool
        weakref.finalize(op, _POOLS.pop, key, None)
        return pool


def _lookup(
    keys: npt.NDArray[np.int64], values: npt.NDArray[np.float64], at: npt.NDArray[np.integer]
) -> npt.NDArray[np.float64]:
    """values[keys == at] for each of ``at``, 0.0 where ``at`` is not a key (keys ascending)."""
    if not keys.shape[0]:
        return np.zeros(at.shape[0])
    i = np.searchsorted(keys, at)
    i[i == keys.shape[0]] = 0
    return np.where(keys[i] == at, values[i], 0.0)


def _row_sums(
    m: sp.csr_matrix,
    rows: npt.NDArray[np.int64],
    x: Callable[[npt.NDArray[np.integer]], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """``(m @ x)[rows]`` for x given at any columns by a function, equal bit for bit: each
    row's products added left to right from 0, as scipy's CSR product does (``np.bincount``
    adds its weights in order)."""
    pos = gather_positions(m.indptr, rows)
    lens = (m.indptr[rows + 1] - m.indptr[rows]).astype(np.int64)
    label = np.repeat(np.arange(rows.shape[0]), lens)
    products = m.data[pos] * x(m.indices[pos])
    return np.bincount(label, weights=products, minlength=rows.shape[0]).astype(
        np.float64, copy=False
    )


class TwoHops:
    """x1 = H s and x2 = H x1 at the movies asked for, for one seed set (module doc): the
    column sums the pool needs computed once, the others when first asked for."""

    def __init__(self, pool: ReachPool, seeds: npt.NDArray[np.int64]) -> None:
        op = pool.op
        self.pool = pool
        self.seeds = seeds = _distinct(seeds)
        # y1 = B^T s: counts on the seeds' columns
        seed_cols = op.bw.indices[gather_positions(op.bw.indptr, seeds)]
        self.y1_cols = _distinct(seed_cols)
        self.y1_vals = np.bincount(
            np.searchsorted(self.y1_cols, seed_cols), minlength=self.y1_cols.shape[0]
        ).astype(np.float64)
        # z = x1 - B_hub a on its support: the seeds' other columns' movies, - d s, + S s
        other = ~pool.is_hub[self.y1_cols]
        rest = self.y1_cols[other]
        lens = (op.bt.indptr[rest + 1] - op.bt.indptr[rest]).astype(np.int64)
        movies = op.bt.indices[gather_positions(op.bt.indptr, rest)]
        weights = np.repeat(self.y1_vals[other] * pool.column_weight[rest], lens)
        parts = [movies, seeds]
        linked = np.zeros(0, dtype=np.int64)
        if op.similar.nnz:
            linked = _distinct(op.similar.indices[gather_positions(op.similar.indptr, seeds)])
            parts.append(linked)
        support = _distinct(np.concatenate(parts))
        z = np.bincount(
            np.searchsorted(support, movies), weights=weights, minlength=support.shape[0]
        ).astype(np.float64, copy=False)
        z[np.searchsorted(support, seeds)] -= op.self_weight[seeds]
        if linked.shape[0]:
            z[np.searchsorted(support, linked)] += _row_sums(op.similar, linked, self._seed)
        # y2 = B^T x1 at the local columns: B^T z there, plus the hubs' share from the counts
        lens = (op.bw.indptr[support + 1] - op.bw.indptr[support]).astype(np.int64)
        local = pool.local_of[op.bw.indices[gather_positions(op.bw.indptr, support)]]
        inside = local >= 0
        self.y2 = np.bincount(
            local[inside], weights=np.repeat(z, lens)[inside], minlength=pool.n_local
        ).astype(np.float64, copy=False)
        a = pool.column_weight[pool.hubs] * _lookup(self.y1_cols, self.y1_vals, pool.hubs)
        self.y2[pool.local_of[pool.hubs]] += pool.gram @ a
        self.y2[pool.local_of[pool.near]] += pool.near_gram @ a
        self.y1_local = np.zeros(pool.n_local)
        at = pool.local_of[self.y1_cols]
        self.y1_local[at[at >= 0]] = self.y1_vals[at >= 0]
        # y2 at other columns (a seen movie's), summed over their movies when first asked
        self.extra_cols = np.zeros(0, dtype=np.int64)
        self.extra_vals = np.zeros(0)

    def _seed(self, at: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        """s at movies ``at``: 1.0 on the seeds."""
        return _lookup(self.seeds, np.ones(self.seeds.shape[0]), at)

    def _y1(self, cols: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        return _lookup(self.y1_cols, self.y1_vals, cols)

    def _y2(self, cols: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        local = self.pool.local_of[cols]
        inside = local >= 0
        return np.where(
            inside,
            self.y2[np.where(inside, local, 0)],
            _lookup(self.extra_cols, self.extra_vals, cols),
        )

    def first(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """x1 at ``rows``, equal bit for bit to ``HopGraph.first_of_rows`` there."""
        return self._first(np.asarray(rows, dtype=np.int64), pooled=False)

    def _first(self, rows: npt.NDArray[np.int64], pooled: bool) -> npt.NDArray[np.float64]:
        op, pool = self.pool.op, self.pool
        out = pool.rows_bw @ self.y1_local if pooled else _row_sums(op.bw, rows, self._y1)
        out -= op.self_weight[rows] * self._seed(rows)
        if op.similar.nnz:
            similar = pool.rows_similar if pooled else op.similar
            out += _row_sums(similar, np.arange(rows.shape[0]) if pooled else rows, self._seed)
        return np.asarray(out, dtype=np.float64)

    def levels(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """(2, len(rows)): x1 and x2 at ``rows`` (raw: round-off may leave them below 0)."""
        op = self.pool.op
        rows = np.asarray(rows, dtype=np.int64)
        self._fill(_distinct(op.bw.indices[gather_positions(op.bw.indptr, rows)]))
        return self._levels(rows, pooled=False)

    def pool_levels(self) -> npt.NDArray[np.float64]:
        """``levels(pool.rows)``, from the pool's own rows of B w and S."""
        return self._levels(self.pool.rows, pooled=True)

    def _levels(self, rows: npt.NDArray[np.int64], pooled: bool) -> npt.NDArray[np.float64]:
        op, pool = self.pool.op, self.pool
        x1 = self._first(rows, pooled)
        x2 = pool.rows_bw @ self.y2 if pooled else _row_sums(op.bw, rows, self._y2)
        x2 = np.asarray(x2, dtype=np.float64) - op.self_weight[rows] * x1
        if op.similar.nnz:
            similar = pool.rows_similar if pooled else op.similar
            at = np.arange(rows.shape[0]) if pooled else rows
            linked = _distinct(similar.indices[gather_positions(similar.indptr, at)])
            x1_linked = self._first(linked, pooled=False)
            x2 += _row_sums(similar, at, lambda c: _lookup(linked, x1_linked, c))
        return np.stack([x1, x2])

    def _fill(self, cols: npt.NDArray[np.int64]) -> None:
        """y2 at the columns not known yet, each summed over its own movies' x1."""
        known = self.pool.local_of[cols] >= 0
        if self.extra_cols.shape[0]:
            i = np.minimum(np.searchsorted(self.extra_cols, cols), self.extra_cols.shape[0] - 1)
            known |= self.extra_cols[i] == cols
        missing = cols[~known].astype(np.int64)
        if not missing.shape[0]:
            return
        op = self.pool.op
        lens = (op.bt.indptr[missing + 1] - op.bt.indptr[missing]).astype(np.int64)
        movies = op.bt.indices[gather_positions(op.bt.indptr, missing)].astype(np.int64)
        unique = _distinct(movies)
        values = self.first(unique)[np.searchsorted(unique, movies)]
        label = np.repeat(np.arange(missing.shape[0]), lens)
        sums = np.bincount(label, weights=values, minlength=missing.shape[0])
        cols_all = np.concatenate([self.extra_cols, missing])
        order = np.argsort(cols_all, kind="stable")
        self.extra_cols = cols_all[order]
        self.extra_vals = np.concatenate([self.extra_vals, sums])[order]
