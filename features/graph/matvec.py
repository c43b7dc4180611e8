"""Sparse matrix-vector products split over two threads, bit-identical to one product.

Both hop operators (the embedded store's k-hop queries and the Catalog's state and candidate
hops) spend their time in scipy's CSR mat-vec over about a million entries. scipy releases the
GIL there, so a matrix cut into row blocks of equal nnz runs on both cores; each row is still
summed in the same order as by the whole matrix, so results do not change by a bit.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

PARALLEL_MIN_NNZ = 200_000  # below this a mat-vec is too quick to be worth a second thread
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="matvec")
    return _POOL


def row_blocks(m: sp.csr_matrix, parts: int | None = None) -> list[sp.csr_matrix]:
    """``m`` cut into row blocks of about equal nnz (stacked, they are ``m``): two when ``m``
    is large enough and there is a second core, else one; ``parts`` forces the count."""
    if parts is None:
        parts = 2 if m.nnz >= PARALLEL_MIN_NNZ and (os.cpu_count() or 1) > 1 else 1
    cuts = np.searchsorted(m.indptr, np.linspace(0, m.nnz, parts + 1)[1:-1])
    bounds = [0, *(int(c) for c in cuts), m.shape[0]]
    return [sp.csr_matrix(m[a:b]) for a, b in itertools.pairwise(bounds)]


def matvec(blocks: list[sp.csr_matrix], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The stacked row blocks times ``x``, the blocks in parallel; equal to ``m @ x``."""
    if len(blocks) == 1:
        return np.asarray(blocks[0] @ x)
    futures = [_pool().submit(b.__matmul__, x) for b in blocks[1:]]
    head = blocks[0] @ x
    return np.concatenate([head, *(f.result() for f in futures)])
