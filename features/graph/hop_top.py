"""A top-``limit`` k-hop query's first and last hops, through the hub columns in full and the
rest of the graph only where it matters.

The path counts of a hop at movie j are ``x_h[j] = sum_{v in cols(j)} w_v (y_v - x[j])`` with
``x`` the previous hop and ``y = B^T x`` (features.graph.hop), every term >= 0. A few columns
are hubs (genres, the commonest tags: more than ``HUB_DEGREE`` movies each; at 500K movies 254
columns holding 42% of B's entries). Their terms dominate the totals and are computed for every
movie, streaming through the hubs' entries only; every other column v holds at most ``deg_v``
movies, so its term is at most ``w_v (deg_v - 1) max(x)``.

- First hop: the seeds' non-hub columns are few and small, so their movies are counted
  directly; the hub part is one pass over the hub entries, not over all of B.
- Middle hop (3 hops, graphs of ``REST_MIN_NNZ`` entries or more): the hub part is a float64
  pass each way over the hub entries (the hubs' column sums in the same order as the full hop,
  so that their long sums round alike); the rest (58% of the entries) a pass each way in
  float32 on integers, exact (features.graph.exact32); the float64 hop when exactness cannot
  be proved.
- Last hop: only movies whose upper bound reaches the ``limit``-th lower bound get their exact
  count, from their own rows (about 600 of 500K on the synthetic graph).

Every pass runs compiled (features.graph.hop_kernels, numba) over the movies' rows in a padded
layout of column numbers only (features.graph.padded_rows), each float64 sum in scipy's order:
at 500K, 1,000 queries gave answers identical to the numpy/scipy passes at ~60% of their CPU.

The results are those of the full hops up to the order of additions, and the exact part's
values differ from float64 sums only by those sums' own round-off (the store rounds path counts
so that such differences vanish: 1,000 queries at 100K and 500K gave identical answers).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from features.graph import exact32, hop_threads
from features.graph.exact32 import integer_scale
from features.graph.hop import HopGraph, gather_positions
from features.graph.padded_rows import REST_QUANTILE, Rows, padded_rows

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

log = logging.getLogger(__name__)


def _kernels() -> ModuleType:
    """features.graph.hop_kernels, imported on first use: numba's import (~0.4 s) then falls
    on the first k-hop query's hub split, not on every process that imports the graph store."""
    from features.graph import hop_kernels

    return hop_kernels


HUB_DEGREE = 1000  # columns of more movies than this are computed in full, the rest bounded
SLACK = 1e-9  # relative margin on the bound test, far above the round-off of the sums
MAX_EXACT_SHARE = 0.25  # more candidate entries than this share of B: one full hop is cheaper
# B's entries from which the middle hop's non-hub part runs in exact float32: below it the
# conversions and extra hand-offs cost what the passes save (100K movies, 1M entries: 6.9 vs
# 6.6 ms CPU; 500K, 5M entries: 51 vs 59 ms, under load; measured with scipy's passes, kept so
# that 100K answers stay those of the float64 middle hop)
REST_MIN_NNZ = 2_000_000
# candidate rows from which the last hop's exact rows are shared out between threads (at 500K
# ~560 rows take ~4 ms, each one summing its non-hub columns over their movies)
PARALLEL_MIN_ROWS = 128


@dataclass(frozen=True)
class HubSplit:
    """A HopGraph with its hub columns split out, as index arrays only (no values: B^T's are
    all 1, B w's one weight per column) in the layouts the compiled passes read
    (features.graph.hop_kernels)."""

    op: HopGraph
    hubs: npt.NDArray[np.int64]  # the hub columns of B, ascending
    is_hub: npt.NDArray[np.bool_]  # per column of B
    column_weight: npt.NDArray[np.float64]  # w_v per column of B
    hub_w: npt.NDArray[np.float64]  # w_v per hub
    hub_rows: Rows  # per movie, its hubs' numbers (positions in ``hubs``), ascending
    hub_of: npt.NDArray[np.int32]  # per column of B, its hub number, or -1
    hub_self: npt.NDArray[np.float64]  # sum_{hub v in cols(j)} w_v, per movie
    rest_reach: npt.NDArray[np.float64]  # sum_{other v in cols(j)} w_v (deg_v - 1), per movie
    rest_reach_max: float
    row_length: npt.NDArray[np.int64]  # entries of B w per movie
    rest: RestPart | None  # the non-hub part in integers, None when weights are no short decimals


@dataclass(frozen=True)
class RestPart:
    """The non-hub columns per movie (``Rows``), numbered by their first movie, so that the
    column sums scattered and gathered while the movies are read in order touch nearby
    entries; their weights scaled to integers (features.graph.exact32), in float32. Renumbering
    the movies too (reverse Cuthill-McKee) made passes faster but cost two gathers over every
    movie (x1 in, the output back), ~14% more in all at 500K with scipy's passes (38.6 vs
    33.1 ms CPU p50). Exact sums do not depend on the order of their terms."""

    rows: Rows  # per movie, its non-hub columns
    weight: npt.NDArray[np.float32]  # w_v * ``weight_scale`` per column of ``rows``, pads 0
    path_scale: int  # makes every column weight, hence every first-hop count, an integer
    weight_scale: int  # makes every non-hub weight an integer


def _rest_part(
    op: HopGraph, is_hub: npt.NDArray[np.bool_], column_weight: npt.NDArray[np.float64]
) -> RestPart | None:
    """The non-hub part of B (``RestPart``), when the weights are short decimals. Built from
    index arrays (no float64 copies), so that the build leaves little behind in the heap."""
    rest = np.flatnonzero(~is_hub)
    path_scale = integer_scale(column_weight)
    weight_scale = integer_scale(column_weight[rest])
    if path_scale is None or weight_scale is None:
        return None
    n_rows, n_rest = op.bw.shape[0], rest.shape[0]
    lens = np.diff(op.bt.indptr)
    indptr = np.zeros(n_rest + 1, dtype=np.int64)
    np.cumsum(lens[rest], out=indptr[1:])
    movies = op.bt.indices[np.repeat(~is_hub, lens)]  # B_rest^T: column -> movies
    pattern = sp.csr_matrix(
        (np.ones(movies.shape[0], dtype=np.float32), movies, indptr), shape=(n_rest, n_rows)
    )
    pattern.sort_indices()
    # columns by their first movie (lone columns are dropped: every column has one)
    cols = np.argsort(pattern.indices[pattern.indptr[:-1]], kind="stable")
    bw = sp.csr_matrix(pattern[cols].T)
    rows = padded_rows(bw.indptr, bw.indices, pad=n_rest, quantile=REST_QUANTILE)
    weight = np.zeros(rows.size, dtype=np.float32)
    weight[:n_rest] = np.rint(column_weight[rest[cols]] * weight_scale)
    return RestPart(
        rows=rows,
        weight=weight,
        path_scale=path_scale,
        weight_scale=weight_scale,
    )


def hub_split(op: HopGraph, hub_degree: int | None = None) -> HubSplit:
    """The HubSplit of ``op`` (built once per operator: a few passes over B); hubs are the
    columns of more than ``hub_degree`` (default ``HUB_DEGREE``) movies. Compiles the passes
    (or loads them from numba's disk cache) on first use."""
    _kernels().compile_kernels()
    degree = np.diff(op.bt.indptr)
    is_hub = degree > (HUB_DEGREE if hub_degree is None else hub_degree)
    hubs = np.flatnonzero(is_hub).astype(np.int64)
    bw_hub = sp.csr_matrix(op.bw[:, hubs])
    bw_hub.sort_indices()
    column_weight = np.zeros(op.bw.shape[1])
    column_weight[op.bw.indices] = op.bw.data
    rest_weight = np.where(is_hub, 0.0, (degree - 1).astype(np.float64))
    rest_reach = np.asarray(op.bw @ rest_weight).reshape(-1)
    hub_self = np.asarray(bw_hub @ np.ones(hubs.shape[0])).reshape(-1)
    hub_of = np.full(op.bw.shape[1], -1, dtype=np.int32)
    hub_of[hubs] = np.arange(hubs.shape[0], dtype=np.int32)
    if not op.bt.has_sorted_indices:  # the hub sums go by movie: equal up to their order
        log.warning("hub split: B^T's rows are not sorted; hub sums by movie instead")
    log.debug(
        "hub split: %d hub columns hold %d of %d entries", hubs.shape[0], bw_hub.nnz, op.bt.nnz
    )
    return HubSplit(
        op=op,
        hubs=hubs,
        is_hub=is_hub,
        column_weight=column_weight,
        hub_w=column_weight[hubs],
        hub_rows=padded_rows(bw_hub.indptr, bw_hub.indices, pad=hubs.shape[0]),
        hub_of=hub_of,
        hub_self=hub_self,
        rest_reach=rest_reach,
        rest_reach_max=float(rest_reach.max(initial=0.0)),
        row_length=np.diff(op.bw.indptr).astype(np.int64),
        rest=_rest_part(op, is_hub, column_weight)
        if hubs.shape[0] and op.bt.nnz >= REST_MIN_NNZ
        else None,
    )


def _seed_counts(
    hs: HubSplit, seeds: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(B^T s at the hub columns, the first hop's non-hub part B_rest w_rest B_rest^T s per
    movie) for s = 1 on ``seeds``: the seeds' own columns are counted from their few entries
    (no array over all columns), their non-hub columns' movies one by one."""
    op = hs.op
    cols, counts = np.unique(
        op.bw.indices[gather_positions(op.bw.indptr, seeds)], return_counts=True
    )
    hub = hs.is_hub[cols]
    hub_counts = np.zeros(hs.hubs.shape[0])
    hub_counts[np.searchsorted(hs.hubs, cols[hub])] = counts[hub]
    rest = cols[~hub].astype(np.int64)
    starts = op.bt.indptr[rest]
    lens = op.bt.indptr[rest + 1] - starts
    weights = np.repeat(counts[~hub] * hs.column_weight[rest], lens)
    near = np.bincount(
        op.bt.indices[gather_positions(op.bt.indptr, rest)],
        weights=weights,
        minlength=op.bw.shape[0],
    ).astype(np.float64, copy=False)
    return hub_counts, near


def _work(rows: Rows) -> int:
    """Entries a pass over ``rows`` reads: its slots and its overflow."""
    return int(rows.slots.size) + int(rows.over_idx.shape[0])


def _row_spans(rows: Rows, threads: int) -> list[tuple[int, int]]:
    """Ranges of movies for a pass over ``rows``: one when the pass is small or one thread
    is asked for (hop_threads.blocks), the movies in even ranges otherwise (every row has
    the same slots; the overflow is ~1% of the entries)."""
    return hop_threads.even_spans(rows.slots.shape[0], hop_threads.blocks(threads, _work(rows)))


def _hub_terms(hs: HubSplit, y_hub: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``w_v y_v`` per hub, then the paddings' 0: what a hub row's sum gathers."""
    terms = np.zeros(hs.hub_rows.size)
    np.multiply(hs.hub_w, y_hub, out=terms[: hs.hub_rows.pad])
    return terms


def _hub_product(
    hs: HubSplit, y_hub: npt.NDArray[np.float64], threads: int = 1
) -> npt.NDArray[np.float64]:
    """``B_hub w_hub y_hub`` per movie, as scipy's CSR mat-vec sums it (each movie's row on
    its own: ranges of movies on ``threads`` threads give the same values)."""
    rows, terms = hs.hub_rows, _hub_terms(hs, y_hub)
    out = np.empty(hs.op.bw.shape[0])
    row_sums = _kernels().row_sums

    def part(a: int, b: int, _: int) -> None:
        row_sums(rows.slots[a:b], rows.over_ptr[a : b + 1], rows.over_idx, terms, out[a:b])

    hop_threads.run(part, _row_spans(rows, threads), threads)
    return out


def _hub_sums(hs: HubSplit, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``B_hub^T x``, each hub's movies in order, as B^T's rows hold them."""
    rows = hs.hub_rows
    out = np.zeros(rows.size)
    _kernels().column_sums(rows.slots, rows.over_ptr, rows.over_idx, x, out)
    return out[: rows.pad]


def first_hop(
    hs: HubSplit, seeds: npt.NDArray[np.int64], threads: int | None = None
) -> npt.NDArray[np.float64]:
    """H @ s for s = 1 on ``seeds`` (distinct movies): the hub part in one pass over the hub
    entries, the seeds' other columns movie by movie. Equal to ``HopGraph.first_of_rows`` up
    to the order of additions. ``threads`` (None: hop_threads' configured count) share out
    the pass; the values do not depend on it."""
    op = hs.op
    if op.similar.nnz:
        return op.first_of_few_rows(seeds)
    seeds = np.asarray(seeds, dtype=np.int64)
    hub_counts, near = _seed_counts(hs, seeds)
    out = _hub_product(hs, hub_counts, hop_threads.resolve(threads))
    out += near
    out[seeds] -= op.self_weight[seeds]
    return out


def first_two_hops(
    hs: HubSplit, seeds: npt.NDArray[np.int64], threads: int | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(x1, x2) = (H s, H H s) for s = 1 on ``seeds``; x1 equal bit for bit to ``first_hop``,
    x2 to ``op.step(x1)`` up to the order of additions.

    H x1 = B_hub w_hub B_hub^T x1 + B_rest w_rest B_rest^T x1 - d x1. The hub part in float64,
    its sums in the full hop's order; the rest in float32 on x1 and the weights scaled to
    integers, exact (features.graph.exact32: computing the hub sums that way too would give
    exact values where the full hop's long float64 sums are off by ~1e-13, and one score in
    ~1,000 would round differently). Where the float32 part cannot be proved exact, the
    float64 hop runs instead.

    With ``threads`` (None: hop_threads' configured count), the row passes run on ranges of
    movies, and the non-hub counts are scattered by each thread into its own array, summed
    after: every partial sum is an integer below 2^24 or makes the total reach 2^24 (terms
    >= 0, rounding monotone), so the totals, and the fallback, are those of one thread. The
    hub column sums of x1 (a float64 scatter in movie order, which ranges would reorder) run
    whole, as one task beside the non-hub ranges."""
    op = hs.op
    threads = hop_threads.resolve(threads)
    x1 = first_hop(hs, seeds, threads)
    rest = hs.rest
    if op.similar.nnz or rest is None:
        return x1, op.step_few(x1)
    limit = exact32.EXACT_LIMIT
    rows = rest.rows
    n_rest = rows.pad
    counts, top, y_hub = _rest_counts(hs, rest, x1, threads)  # B_rest^T x1 scaled, B_hub^T x1
    if top >= limit or (n_rest and float(counts.max()) >= limit):
        log.debug("middle hop: float32 not proved exact, float64 hop")
        return x1, op.step_few(x1)
    counts *= rest.weight  # exact below 2^24; above, the sums below reach it too
    hr, terms = hs.hub_rows, _hub_terms(hs, y_hub)
    x2 = np.empty(x1.shape[0])
    k = _kernels()
    scale = float(rest.path_scale * rest.weight_scale)
    tops = [0.0] * threads

    def part(a: int, b: int, worker: int) -> None:  # a range's hub part, then its rest
        k.row_sums(hr.slots[a:b], hr.over_ptr[a : b + 1], hr.over_idx, terms, x2[a:b])
        top = k.add_rest(
            rows.slots[a:b], rows.over_ptr[a : b + 1], rows.over_idx, counts, x1[a:b],
            op.self_weight[a:b], scale, x2[a:b],
        )  # fmt: skip
        tops[worker] = max(tops[worker], top)

    work = _work(hr) + _work(rows)
    spans = hop_threads.even_spans(x1.shape[0], hop_threads.blocks(threads, work))
    hop_threads.run(part, spans, threads)  # one hand-off for both passes
    if max(tops) >= limit:
        log.debug("middle hop: float32 not proved exact, float64 hop")
        return x1, op.step_few(x1)
    return x1, x2


def _rest_counts(
    hs: HubSplit, rest: RestPart, x1: npt.NDArray[np.float64], threads: int
) -> tuple[npt.NDArray[np.float32], float, npt.NDArray[np.float64]]:
    """(``B_rest^T rint(x1 * path_scale)`` in float32, paddings 0; the largest scaled count;
    ``B_hub^T x1``). The scatter in ranges of movies, each worker into its own zeroed array,
    the arrays summed after (exact: see ``first_two_hops``); the hub sums beside them."""
    rows = rest.rows
    spans = _row_spans(rows, threads)
    counts = np.zeros(rows.size, dtype=np.float32)
    outs: list[npt.NDArray[np.float32] | None] = [counts] + [None] * (threads - 1)
    tops = [0.0] * threads
    scatter_counts, scale = _kernels().scatter_counts, float(rest.path_scale)

    def part(a: int, b: int, worker: int) -> None:
        out = outs[worker]
        if out is None:  # allocated (and zeroed) by the worker that needs it
            out = outs[worker] = np.zeros(rows.size, dtype=np.float32)
        top = scatter_counts(
            rows.slots[a:b], rows.over_ptr[a : b + 1], rows.over_idx, x1[a:b], scale, out
        )
        tops[worker] = max(tops[worker], top)

    hub: list[npt.NDArray[np.float64]] = []
    tasks: list[Callable[[int], None]] = [functools.partial(part, a, b) for a, b in spans]
    if len(spans) > 1:  # the longest task first: the others fill in around it
        tasks.insert(0, lambda _: hub.append(_hub_sums(hs, x1)))
    hop_threads.run_tasks(tasks, threads)
    for out in outs[1:]:
        if out is not None:
            counts += out
    counts[rows.pad :] = 0.0
    return counts, max(tops), hub[0] if hub else _hub_sums(hs, x1)


def top_last_hop(
    hs: HubSplit,
    x: npt.NDArray[np.float64],
    total: npt.NDArray[np.float64],
    excluded: npt.NDArray[np.int64],
    limit: int,
    threads: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
    """(movies, ``total + H x`` at them): a superset of the top ``limit`` movies of
    ``total + H x`` outside ``excluded`` and all their ties, with their values; None when the
    bound does not narrow things down (then the caller runs the full hop). ``threads`` (None:
    hop_threads' configured count) share out the lower bound's and the exact rows' movies;
    the values do not depend on it."""
    op = hs.op
    n = x.shape[0]
    if limit <= 0 or limit >= n or op.similar.nnz or not hs.hubs.shape[0]:
        return None  # without hubs (a hub cap removed them) the bound leaves too many movies
    threads = hop_threads.resolve(threads)
    y_hub = _hub_sums(hs, x)
    hr, lower, terms = hs.hub_rows, np.empty(n), _hub_terms(hs, y_hub)
    lower_bound = _kernels().lower_bound

    def part(a: int, b: int, _: int) -> None:
        lower_bound(
            hr.slots[a:b], hr.over_ptr[a : b + 1], hr.over_idx, terms, hs.hub_self[a:b],
            x[a:b], total[a:b], lower[a:b],
        )  # fmt: skip

    hop_threads.run(part, _row_spans(hr, threads), threads)
    lower[excluded] = 0.0
    threshold = kth_largest(lower, limit)
    if threshold <= 0.0:
        return None
    reach = max(float(x.max()), 0.0)
    cut = threshold * (1.0 - SLACK)
    # upper bound: lower + rest_reach * max(x); first the movies it can lift over the cut
    near = np.flatnonzero(lower >= cut - hs.rest_reach_max * reach)
    near = near[lower[near] + hs.rest_reach[near] * reach >= cut]
    seen = np.zeros(n, dtype=np.bool_)
    seen[excluded] = True
    candidates = near[~seen[near]]
    if int(hs.row_length[candidates].sum()) > MAX_EXACT_SHARE * op.bw.nnz:
        return None
    return candidates, total[candidates] + _hop_at(hs, x, y_hub, candidates, threads)


def kth_largest(values: npt.NDArray[np.float64], k: int) -> float:
    """The ``k``-th largest value (1 <= k <= len), as ``np.partition`` gives it, partitioning
    only the values that reach a threshold guessed from a strided sample when at least ``k``
    do (then the k-th largest is among them), not the whole array."""
    n = values.shape[0]
    if k * 16 < n:
        step = max(1, n // (k * 8))
        sample = values[::step]
        m = min(sample.shape[0], max(1, (2 * k) // step))
        guess = np.partition(sample, sample.shape[0] - m)[sample.shape[0] - m]
        top = values[values >= guess]
        if top.shape[0] >= k:
            values, n = top, top.shape[0]
    return float(np.partition(values, n - k)[n - k])


def _hop_at(
    hs: HubSplit,
    x: npt.NDArray[np.float64],
    y_hub: npt.NDArray[np.float64],
    rows: npt.NDArray[np.int64],
    threads: int = 1,
) -> npt.NDArray[np.float64]:
    """``(H x)[rows]``: each row's products, with the hubs' column sums known and the others'
    summed from their own few movies (``hop_kernels.hop_rows``), ranges of ``rows`` on
    ``threads`` threads from ``PARALLEL_MIN_ROWS`` rows."""
    op = hs.op
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty(rows.shape[0])
    hop_rows = _kernels().hop_rows
    parts = hop_threads.blocks(threads, rows.shape[0], PARALLEL_MIN_ROWS)

    def part(a: int, b: int, _: int) -> None:
        hop_rows(
            op.bw.indptr, op.bw.indices, op.bw.data, op.bt.indptr, op.bt.indices, op.bt.data,
            hs.hub_of, y_hub, x, op.self_weight, rows[a:b], out[a:b],
        )  # fmt: skip

    hop_threads.run(part, hop_threads.even_spans(rows.shape[0], parts), threads)
    return out
