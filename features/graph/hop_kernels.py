"""Compiled passes (numba) for the 3-hop query's hub split (features.graph.hop_top), over the
movies' rows of B in a padded layout, bit for bit what the scipy/numpy passes computed.

Why a padded layout: a CSR pass over 500K movies of 4-6 entries each costs more in the exits
of its short inner loops, each of a different length (a mispredicted branch per row), than in
reading its entries (500K rows: 11 ms with random lengths, 4 ms with equal ones, 0.5 ms for
the same entries read flat, on this machine under load). So each movie's row is a fixed number
of slots and the longer rows continue in a small overflow (features.graph.padded_rows).

Every float64 sum is formed as scipy's CSR mat-vec forms it: from 0.0, term by term in the
row's order (ascending column), each term the product ``weight * value`` (taken from a table
of such products, the same multiplication), no fused multiply-add (numba compiles without
fast-math). A pad adds 0.0, which leaves a sum >= 0 unchanged. The hub column sums
``B_hub^T x`` are accumulated movie by movie (each movie's ``x`` added to its hubs' sums):
the same terms in the same order as B^T's rows, which are sorted by movie, and x read once
where a pass along B^T's rows fetched it once per hub (10 vs 5 ms). So the hub part of a hop
equals the float64 computation's bit for bit. The non-hub part holds integers
(features.graph.exact32: path counts and weights scaled to whole numbers) in float32, exact
as long as every value stays below 2^24: checked after the fact on the results (terms >= 0,
rounding monotone), and where it does not hold the caller runs the float64 hop, as before.

Why the padded-row summing loop is written out again in ``row_sums``, ``lower_bound`` and
``add_rest`` (and the scatter loop in ``column_sums`` and ``scatter_counts``): moved into
shared njit helpers, the 500K 3-hop query became 2-3x slower (236.7 ms per query, 196.4 with
``inline="always"``, against 64.4 ms with the loops in place, CPU p50), so keep them apart.

The kernels release the GIL (``nogil``): features.graph.hop_threads runs them on ranges of
rows from a few plain Python threads (each kernel's arguments sliced to its rows; ``over_ptr``
keeps its absolute offsets into ``over_idx``).

Compiled on first use and cached on disk (``cache=True``: numba's cache beside this file in
__pycache__, or NUMBA_CACHE_DIR); ``hop_top.hub_split`` calls ``compile_kernels`` so that the
compile (4.3 s wall once, 1.3 s from the cache, measured at load average 10) falls on building
the split, not on a query. hop_top imports this module on first use (numba's import, ~0.4 s).
"""

from __future__ import annotations

import logging
import time

import numba
import numpy as np

from features.graph.padded_rows import padded_rows

log = logging.getLogger(__name__)


@numba.njit(cache=True, nogil=True)
def row_sums(slots, over_ptr, over_idx, values, out):  # type: ignore[no-untyped-def]
    """``out[j] = sum of values[c]`` over row j's columns in order (the paddings' 0)."""
    width = slots.shape[1]
    for j in range(out.shape[0]):
        s = 0.0
        for i in range(width):
            s += values[slots[j, i]]
        if over_ptr[j] != over_ptr[j + 1]:
            for e in range(over_ptr[j], over_ptr[j + 1]):
                s += values[over_idx[e]]
        out[j] = s


@numba.njit(cache=True, nogil=True)
def column_sums(slots, over_ptr, over_idx, x, out):  # type: ignore[no-untyped-def]
    """``out[c] += x[j]`` for every column c of every row j, rows in order (``out`` zeroed,
    its paddings left holding junk): the transpose's product, each column's terms in row
    order."""
    width = slots.shape[1]
    for j in range(x.shape[0]):
        v = x[j]
        for i in range(width):
            out[slots[j, i]] += v
        if over_ptr[j] != over_ptr[j + 1]:
            for e in range(over_ptr[j], over_ptr[j + 1]):
                out[over_idx[e]] += v


@numba.njit(cache=True, nogil=True)
def lower_bound(  # type: ignore[no-untyped-def]
    slots, over_ptr, over_idx, terms, hub_self, x, total, out
):
    """``out[j] = (row_sums(terms)[j] - hub_self[j] x[j]) + total[j]``: the last hop's hub
    part less its diagonal plus the earlier hops, as ``out = B_hub w y``, ``out -= hub_self *
    x``, ``out += total`` compute it."""
    width = slots.shape[1]
    for j in range(out.shape[0]):
        s = 0.0
        for i in range(width):
            s += terms[slots[j, i]]
        if over_ptr[j] != over_ptr[j + 1]:
            for e in range(over_ptr[j], over_ptr[j + 1]):
                s += terms[over_idx[e]]
        s -= hub_self[j] * x[j]
        out[j] = s + total[j]


@numba.njit(cache=True, nogil=True)
def scatter_counts(slots, over_ptr, over_idx, x, path_scale, out):  # type: ignore[no-untyped-def]
    """``out[c] += rint(x[j] * path_scale)`` (float32) for every column c of every row j
    (``out`` zeroed, its paddings left holding junk). Returns the largest scaled count."""
    width = slots.shape[1]
    top = 0.0
    for j in range(x.shape[0]):
        v = np.rint(x[j] * path_scale)
        if v > top:
            top = v
        if v != 0.0:
            f = np.float32(v)
            for i in range(width):
                out[slots[j, i]] += f
            if over_ptr[j] != over_ptr[j + 1]:
                for e in range(over_ptr[j], over_ptr[j + 1]):
                    out[over_idx[e]] += f
    return top


@numba.njit(cache=True, nogil=True)
def add_rest(  # type: ignore[no-untyped-def]
    slots, over_ptr, over_idx, terms, x1, self_weight, scale, x2
):
    """The middle hop from its hub part ``h`` (``row_sums``, already in ``x2``): ``x2[j] =
    (r_j / scale + h_j) - d_j x1[j]``, ``r_j`` the sum of ``terms`` (float32 integers) over
    row j's columns, in float64 (exact), as ``x2 = r / scale``, ``x2 += h``, ``x2 -= d * x1``
    compute it. Returns the largest ``r_j``. (One loop over both parts' rows took 21-31 ms at
    500K where the two took 13-19.)"""
    width = slots.shape[1]
    top = 0.0
    for j in range(x2.shape[0]):
        r = 0.0
        for i in range(width):
            r += terms[slots[j, i]]
        if over_ptr[j] != over_ptr[j + 1]:
            for e in range(over_ptr[j], over_ptr[j + 1]):
                r += terms[over_idx[e]]
        if r > top:
            top = r
        v = r / scale + x2[j]
        v -= self_weight[j] * x1[j]
        x2[j] = v
    return top


@numba.njit(cache=True, nogil=True)
def hop_rows(  # type: ignore[no-untyped-def]
    bw_ptr, bw_idx, bw_data, bt_ptr, bt_idx, bt_data, hub_of, y_hub, x, self_weight, rows, out
):
    """``out[i] = (B w y)[j] - d_j x[j]`` for ``j = rows[i]``, ``y = B^T x``: a hub column's
    ``y`` from ``y_hub`` (``hub_of[c]``: its hub number, or -1), any other column's summed from
    its own movies where the row meets it. Each sum as scipy's mat-vec forms it (``(B w @ y)
    [rows]`` and ``(B^T @ x)[c]``), so equal bit for bit to ``HopGraph.apply_rows``; without
    the column vector over every column that the numpy version filled (~4 ms at 500K)."""
    for i in range(rows.shape[0]):
        j = rows[i]
        s = 0.0
        for e in range(bw_ptr[j], bw_ptr[j + 1]):
            c = bw_idx[e]
            k = hub_of[c]
            if k >= 0:
                y = y_hub[k]
            else:
                y = 0.0
                for f in range(bt_ptr[c], bt_ptr[c + 1]):
                    y += bt_data[f] * x[bt_idx[f]]
            s += bw_data[e] * y
        s -= self_weight[j] * x[j]
        out[i] = s


def compile_kernels() -> None:
    """Compile (or load from numba's disk cache) every kernel for the argument types the hub
    split passes (int32 indices, two-byte hub slots, four-byte non-hub slots, float64 values,
    float32 integer counts), on a tiny graph; other slot types compile on first use."""
    c0 = time.perf_counter()
    ptr = np.array([0, 1, 1], dtype=np.int32)
    idx = np.zeros(1, dtype=np.int32)
    hubs, rest = padded_rows(ptr, idx, pad=2**8), padded_rows(ptr, idx, pad=2**16)
    f64, h64 = np.zeros(2), np.zeros(hubs.size)
    f32 = np.zeros(rest.size, dtype=np.float32)
    row_sums(hubs.slots, hubs.over_ptr, hubs.over_idx, h64, np.zeros(2))
    column_sums(hubs.slots, hubs.over_ptr, hubs.over_idx, f64, h64)
    lower_bound(hubs.slots, hubs.over_ptr, hubs.over_idx, h64, f64, f64, f64, np.zeros(2))
    scatter_counts(rest.slots, rest.over_ptr, rest.over_idx, f64, 100.0, f32)
    add_rest(rest.slots, rest.over_ptr, rest.over_idx, f32, f64, f64, 1000.0, np.zeros(2))
    rows = np.zeros(1, dtype=np.int64)
    hop_rows(ptr, idx, f64, ptr, idx, f64, idx, f64, f64, f64, rows, np.zeros(1))
    log.debug("hop kernels ready in %.2f s", time.perf_counter() - c0)
