"""Float32 products of small integers are exact, and a result that may have rounded is caught
(features.graph.exact32)."""

from __future__ import annotations

import numpy as np

from features.graph.exact32 import EXACT_LIMIT, integer_scale
from features.graph.schema import DEFAULT_HOP_WEIGHTS


def test_integer_scale_of_the_hop_weights() -> None:
    assert integer_scale(np.array(list(DEFAULT_HOP_WEIGHTS.values()))) == 100
    assert integer_scale(np.array([1.0, 0.8, 0.5, 0.3])) == 10
    assert integer_scale(np.array([2.0, 3.0])) == 1
    assert integer_scale(np.array([1.0, 1.0 / 3.0])) is None  # not a short decimal
    assert integer_scale(np.array([1.0, -0.5])) is None  # the proof needs terms >= 0
    assert integer_scale(np.array([0.0, 0.5])) is None


def test_float32_sums_of_integers_are_exact_below_the_limit_and_caught_above() -> None:
    """The argument the middle hop's checks rest on: a float32 sum of non-negative integers
    that stays below 2^24 is exact in any order; 2^24 - 1 + 2 is 2^24 + 1, which float32
    rounds to 2^24, so a result at or above the limit is where rounding may have happened."""
    rng = np.random.default_rng(3)
    terms = rng.integers(0, 2**14, 1000)
    for order in (terms, terms[::-1], rng.permutation(terms)):
        s = np.float32(0.0)
        for t in order.astype(np.float32):
            s = np.float32(s + t)
        assert int(s) == int(terms.sum()) and s < EXACT_LIMIT
    s = np.float32(EXACT_LIMIT - 1) + np.float32(2.0)
    assert s >= EXACT_LIMIT and int(s) != 2**24 + 1
