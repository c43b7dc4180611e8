"""Helpers of the hop operator's module (features.graph.hop)."""

from __future__ import annotations

import numpy as np
import pytest

from features.graph.hop import distinct


@pytest.mark.parametrize("n", [0, 1, 2, 50, 6000])
def test_distinct_equals_unique(n: int) -> None:
    a = np.random.default_rng(n).integers(0, max(n // 3, 1), n).astype(np.int32)
    got = distinct(a)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.unique(a))
