"""One BLAS thread inside ``single_threaded``, as many as before after it."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from features.blas import single_threaded


def _threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


def test_single_threaded_limits_blas_for_the_block_only() -> None:
    before = _threads()
    assert before, "numpy links a BLAS"
    with single_threaded():
        assert _threads() == [1] * len(before)
        v = np.ones((1000, 8), dtype=np.float32) @ np.ones(8, dtype=np.float32)
    assert np.all(v == 8.0)
    assert _threads() == before


def test_overlapping_blocks_restore_the_threads_there_were() -> None:
    """Two requests' blocks that overlap (entered A, B; left A, B) leave the process with its
    threads, not on one: the limit is shared and the last to leave restores it."""
    with threadpool_limits(limits=2, user_api="blas"):  # more than one, on any machine
        before = _threads()
        a, b = single_threaded(), single_threaded()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert _threads() == [1] * len(before), "a block still holds the limit"
        b.__exit__(None, None, None)
        assert _threads() == before == [2] * len(before)


def test_axpy_adds_in_place() -> None:
    from features.blas import axpy

    y = np.arange(5.0)
    axpy(0.5, np.ones(5), y)
    assert np.array_equal(y, np.arange(5.0) + 0.5)
    strided = np.arange(10.0)
    axpy(2.0, np.ones(10)[::2], strided[::2])  # not contiguous: numpy's way
    assert np.array_equal(strided[::2], np.arange(0.0, 10.0, 2.0) + 2.0)
