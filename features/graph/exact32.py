"""Sparse products of small non-negative integers in float32, exact and checked after the fact.

A float32 mat-vec reads 8 bytes an entry instead of 12 and runs in about 60% of the float64
time (19 -> 11 ms over the 500K catalogue's 5M hop entries). It gives the same answer as any
exact arithmetic when every operand and every partial sum is an integer below 2^24 (all such
integers are float32 numbers, so no operation rounds). For non-negative terms that is checked
on the result alone: rounding to nearest is monotone and 2^24 is a float32 number, so once an
exact partial sum (or a product) reaches 2^24 the computed one does too, and it never falls
back below, the terms being >= 0. A result below 2^24 everywhere therefore proves that no
operation rounded, in whatever order the terms were added.

Hop weights are decimals (0.05, 0.3, ...): scaled by a power of ten they are integers, and so
are the path counts they weigh (features.graph.hop_top uses this for the middle hop, whose
compiled passes in features.graph.hop_kernels check their results against ``EXACT_LIMIT``;
the float32 products below are what they replaced, kept for the A/B against earlier
``hop_top`` versions, experiments/bench/hop_top_ab.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from features.graph.matvec import matvec

EXACT_LIMIT = float(2**24)  # every integer below this is a float32 number
SCALES = (1, 10, 100, 1000, 10_000)  # the powers of ten tried to make weights integers


def integer_scale(values: npt.NDArray[np.float64]) -> int | None:
    """The smallest of ``SCALES`` that makes every value a positive integer (to 1e-9 of
    itself), or None: then the values are not short decimals, or some are not positive."""
    v = np.asarray(values, dtype=np.float64)
    if v.size and float(v.min()) <= 0.0:
        return None
    for scale in SCALES:
        scaled = v * scale
        if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-9 * np.maximum(scaled, 1.0)):
            return scale
    return None


def as_integers32(x: npt.NDArray[np.float64], scale: int) -> npt.NDArray[np.float32] | None:
    """``x * scale`` rounded to integers, as float32, or None when some reach 2^24. For path
    counts over weights that ``scale`` makes integers (``integer_scale``), ``x * scale`` is
    an integer in exact arithmetic and the float64 sums are within far less than 0.5 of it, so
    rounding recovers it; such counts are >= 0 (a rounded -0.0 is still 0)."""
    scaled = x * scale
    np.rint(scaled, out=scaled)
    if scaled.size and float(scaled.max()) >= EXACT_LIMIT:
        return None
    return scaled.astype(np.float32)


def exact_product(
    blocks: list[sp.csr_matrix], x: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32] | None:
    """``m @ x`` for the stacked row blocks ``m`` (non-negative integer entries, float32) and
    non-negative integers ``x`` below 2^24: the exact product, or None when some result
    reached 2^24 (then an operation may have rounded; see module doc)."""
    out = matvec(blocks, x)  # type: ignore[arg-type]
    if out.size and float(out.max()) >= EXACT_LIMIT:
        return None
    return out.astype(np.float32, copy=False)  # type: ignore[return-value]


def scaled32(m: sp.csr_matrix, scale: int) -> sp.csr_matrix:
    """``m * scale`` with its entries rounded to integers, in float32 (for ``exact_product``;
    the caller checks that ``m``'s entries are multiples of ``1 / scale``)."""
    out = sp.csr_matrix(
        (
            np.rint(np.asarray(m.data, dtype=np.float64) * scale).astype(np.float32),
            m.indices,
            m.indptr,
        ),
        shape=m.shape,
    )
    out.sort_indices()
    return out
