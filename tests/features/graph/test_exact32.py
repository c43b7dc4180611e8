"""Float32 products of small integers are exact, and a result that may have rounded is caught
(features.graph.exact32)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from features.graph.exact32 import (
    EXACT_LIMIT,
    as_integers32,
    exact_product,
    integer_scale,
    scaled32,
)
from features.graph.matvec import row_blocks
from features.graph.schema import DEFAULT_HOP_WEIGHTS


def test_integer_scale_of_the_hop_weights() -> None:
    assert integer_scale(np.array(list(DEFAULT_HOP_WEIGHTS.values()))) == 100
    assert integer_scale(np.array([1.0, 0.8, 0.5, 0.3])) == 10
    assert integer_scale(np.array([2.0, 3.0])) == 1
    assert integer_scale(np.array([1.0, 1.0 / 3.0])) is None  # not a short decimal
    assert integer_scale(np.array([1.0, -0.5])) is None  # the proof needs terms >= 0
    assert integer_scale(np.array([0.0, 0.5])) is None


def test_product_equals_integer_arithmetic() -> None:
    rng = np.random.default_rng(3)
    m = sp.random(300, 200, density=0.05, random_state=4, format="csr")
    m.data = rng.integers(1, 11, m.nnz).astype(np.float64) / 10.0  # weights 0.1 .. 1.0
    x = rng.integers(0, 40_000, 200)
    want = (sp.csr_matrix(np.rint(m.toarray() * 10).astype(np.int64)) @ x).astype(np.int64)
    for parts in (1, 3):
        got = exact_product(row_blocks(scaled32(m, 10), parts), x.astype(np.float32))
        assert got is not None and got.dtype == np.float32
        np.testing.assert_array_equal(got.astype(np.int64), want)


def test_a_sum_that_may_have_rounded_is_caught() -> None:
    """2^24 - 1 + 2 is 2^24 + 1, which float32 rounds to 2^24: not returned. One below the
    limit everywhere is returned, exactly."""
    m = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]], dtype=np.float32))
    assert exact_product([m], np.array([EXACT_LIMIT - 1, 2.0], dtype=np.float32)) is None
    assert exact_product([m], np.array([2.0**23, 2.0**23], dtype=np.float32)) is None
    got = exact_product([m], np.array([EXACT_LIMIT - 3, 2.0], dtype=np.float32))
    assert got is not None
    assert got.astype(np.int64).tolist() == [2**24 - 1, 2**24 - 3]


def test_as_integers32() -> None:
    x = np.array([0.05 * 3, 0.3 + 0.05 * 7, 1.0 / 3.0 * 0.0, 4.0])  # float sums of weights
    got = as_integers32(x, 100)
    assert got is not None and got.tolist() == [15.0, 65.0, 0.0, 400.0]
    assert as_integers32(np.array([EXACT_LIMIT / 100]), 100) is None
