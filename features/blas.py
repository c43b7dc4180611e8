"""One BLAS thread for a request's large vector products, and the in-place y += a x they use.

OpenBLAS splits a matrix-vector product over every core (two here). On a machine whose cores
are busy (other requests, other workers, other jobs) its threads wait for each other, spinning:
a first request's ALS product over 500K movies cost 17 ms of CPU with two threads against 10
with one, its in-place y += a x 4.2 against 1.1 (load average ~8, experiments/bench
/first_request.py). A served request runs beside others, so one thread is the better trade;
the products give the same values either way (each output entry is the same dot product).

``single_threaded()`` limits every loaded BLAS to one thread for a ``with`` block, through a
threadpoolctl controller found once (finding one costs ~20 ms; entering the limit ~0.05 ms).
The limit is process-wide, so blocks that overlap (requests on the service's threads) share
one: the first to enter sets it, the last to leave restores the threads there were before
(counted under a lock; a per-block limit would let the second block record "one thread" as
the original and leave the process on one thread).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.linalg.blas import daxpy

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _blas() -> Any:
    """The BLAS libraries numpy and scipy load (both loaded first, then found once)."""
    import scipy.linalg.blas  # noqa: F401  (scipy links its own OpenBLAS beside numpy's)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


_lock = threading.Lock()
_holders = 0
_limit: Any = None  # the shared limit while any block holds it


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Every loaded BLAS on one thread inside the block (module doc: overlapping blocks share
    one limit)."""
    global _holders, _limit
    with _lock:
        if _holders == 0:
            _limit = _blas().limit(limits=1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limit.restore_original_limits()
                _limit = None


def axpy(a: float, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> None:
    """y += a x in place, in one pass (BLAS daxpy; numpy's ``y += a * x`` makes a temporary
    and passes twice over it: at 500K movies a fresh 4 MB, whose pages a first request pays)."""
    if y.shape[0] and x.flags.c_contiguous and y.flags.c_contiguous:
        daxpy(x, y, a=a)
    else:
        y += a * x
