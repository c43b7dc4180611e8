"""Sparse rows in a padded layout for the compiled passes (features.graph.hop_kernels): each
row a fixed number of slots, the longer rows continued in a small CSR overflow.

A CSR pass over 500K movies of 4-6 entries each costs more in the exits of its short inner
loops, each of a different length (a mispredicted branch per row), than in reading its
entries (500K rows: 11 ms with random lengths, 4 ms with equal ones, 0.5 ms for the same
entries read flat, on this machine under load). Slot i of a shorter row holds the padding
column ``pad + i``, one per position: a gather reads 0 there, and a scatter adds into it junk
that is never read; one padding column for all would chain every padded slot's addition on
the one before (measured: the hub column sums in 10 ms instead of 5). Kept apart from the
kernels so that building and holding the layout does not import numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# rows longer than this percentile of the lengths overflow: the hubs' two-byte slots are cheap
# to pad, the rest's four-byte ones less so (at 500K the middle hop took 14-17 ms with the
# rest's rows cut at the 90th percentile, 9 slots, vs 17-19 ms at the 99th, 11 slots; one
# loop over both parts then)
HUB_QUANTILE, REST_QUANTILE = 99.0, 90.0


@dataclass(frozen=True)
class Rows:
    """A CSR matrix's rows as ``slots`` (rows x width, column numbers, slot i of a shorter row
    holding the padding column ``pad + i``; in the narrowest unsigned type that holds them)
    plus the entries past the width in a CSR overflow (``over_ptr``, ``over_idx``). Arrays
    indexed by column number need ``size`` entries, the paddings' 0 for a gather."""

    slots: npt.NDArray[np.unsignedinteger]
    over_ptr: npt.NDArray[np.int32]
    over_idx: npt.NDArray[np.int32]
    pad: int  # the number of real columns: the first padding column

    @property
    def size(self) -> int:
        """Columns, paddings included."""
        return self.pad + int(self.slots.shape[1])


def padded_rows(
    indptr: npt.NDArray[np.integer],
    indices: npt.NDArray[np.integer],
    pad: int,
    quantile: float = HUB_QUANTILE,
) -> Rows:
    """``Rows`` of a CSR pattern over ``pad`` columns (rows' entries in their order), width
    the ``quantile`` percentile of the row lengths (at least 1)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    lens = np.diff(indptr)
    n = lens.shape[0]
    width = max(1, int(np.percentile(lens, quantile))) if n else 1
    rank = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1], lens)
    rows = np.repeat(np.arange(n, dtype=np.int64), lens)
    inside = rank < width
    top = pad + width
    dtype = np.uint8 if top <= 2**8 else np.uint16 if top <= 2**16 else np.uint32
    slots = np.empty((n, width), dtype=dtype)
    slots[:] = np.arange(pad, top, dtype=dtype)
    slots[rows[inside], rank[inside]] = indices[inside]
    over_lens = np.maximum(lens - width, 0)
    over_ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(over_lens, out=over_ptr[1:])
    return Rows(
        slots=slots,
        over_ptr=over_ptr,
        over_idx=np.asarray(indices[~inside], dtype=np.int32),
        pad=pad,
    )
