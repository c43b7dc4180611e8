"""The ALS retriever's closed-form score statistics (the blend z-scores its scores with them)."""

from __future__ import annotations

import numpy as np

from features.als import AlsRetriever


def test_score_moments_are_the_mean_and_sd_of_the_scores() -> None:
    """mean = u . mean(Y), variance = u^T Cov(Y) u, over more rows than one block of the
    moments' pass, with factors far from centred (a large common offset)."""
    rng = np.random.default_rng(0)
    offset = np.array([3.0, -2.0, 0.0, 0.0, 1.0, 0.5])
    factors = (rng.standard_normal((70_000, 6)) + offset).astype(np.float32)
    als = AlsRetriever(factors)
    for _ in range(5):
        user = rng.standard_normal(6)
        scores = als.raw_scores(user).astype(np.float64)
        mean, sd = als.score_moments(user)
        assert abs(mean - scores.mean()) <= 1e-6 * scores.std()
        assert abs(sd - scores.std()) <= 1e-6 * scores.std()
    assert als.score_moments(np.zeros(6)) == (0.0, 0.0)


def test_raw_scores_are_the_scores_before_widening() -> None:
    rng = np.random.default_rng(1)
    als = AlsRetriever(rng.standard_normal((50, 4)).astype(np.float32))
    user = rng.standard_normal(4)
    raw = als.raw_scores(user)
    assert raw.dtype == np.float32
    assert np.array_equal(raw, als.item_factors @ user.astype(np.float32))
