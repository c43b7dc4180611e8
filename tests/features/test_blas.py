"""One BLAS thread inside ``single_threaded``, as many as before after it."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

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
