"""Sparse matrix-vector products split over two threads, bit-identical to one product.

The hop operator (features.graph.hop: the embedded store's k-hop queries and the Catalog's
state and candidate hops) spends its time in scipy's CSR mat-vec over about a million
entries. scipy releases the GIL there, so a matrix cut into row blocks of equal nnz runs on
both cores; each row is still summed in the same order as by the whole matrix, so results do
not change by a bit. The blocks run on features.graph.hop_threads' runner (the caller and
one pool thread taking blocks from a shared counter), as the 3-hop's compiled passes do.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from features.graph import hop_threads

PARALLEL_MIN_NNZ = 200_000  # below this a mat-vec is too quick to be worth a second thread
BLOCKS = 4  # row blocks of a large matrix, shared out between two threads
THREADS = 2  # the caller and one pool thread


def row_blocks(m: sp.csr_matrix, parts: int | None = None) -> list[sp.csr_matrix]:
    """``m`` cut into row blocks of about equal nnz (stacked, they are ``m``): ``BLOCKS`` when
    ``m`` is large enough and there is a second core, else one; ``parts`` forces the count."""
    if parts is None:
        parts = BLOCKS if m.nnz >= PARALLEL_MIN_NNZ and (os.cpu_count() or 1) > 1 else 1
    if parts <= 1:
        return [m]
    return [_rows(m, a, b) for a, b in hop_threads.weighted_spans(m.indptr, parts)]


def _rows(m: sp.csr_matrix, a: int, b: int) -> sp.csr_matrix:
    """Rows ``a:b`` of ``m`` sharing its data and indices (views, not copies: a mapped
    matrix stays mapped, and a block costs a worker no memory of its own)."""
    start, stop = int(m.indptr[a]), int(m.indptr[b])
    block = sp.csr_matrix((b - a, m.shape[1]), dtype=m.dtype)
    # set, not passed to the constructor: its check copies a view smaller than half its base
    block.indptr = np.asarray(m.indptr[a : b + 1] - m.indptr[a], dtype=m.indices.dtype)
    block.indices = m.indices[start:stop]
    block.data = m.data[start:stop]
    return block


def matvec(blocks: list[sp.csr_matrix], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The stacked row blocks times ``x``; equal to ``m @ x``. The caller and one pool thread
    take blocks from a shared counter until none is left (hop_threads.run_tasks), so a thread
    the OS has parked does not hold the product up: the other one finishes the rest."""
    if len(blocks) == 1:
        return np.asarray(blocks[0] @ x)
    out: list[npt.NDArray[np.float64] | None] = [None] * len(blocks)

    def product(i: int, _worker: int) -> None:
        out[i] = blocks[i] @ x

    hop_threads.run_tasks([functools.partial(product, i) for i in range(len(blocks))], THREADS)
    return np.concatenate(out)  # type: ignore[arg-type]
