"""Retrievers: EASE equals the closed form, recency weights halve, RP3beta equals its walk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from agent.baselines.ease import EASE
from features.retrieval import EaseRetriever, ItemBias, RP3Beta, recency_weights, zscores
from features.state import UserHistory
from tests.features.catalog_fixtures import tiny_catalog


def _ratings(seed: int = 0, users: int = 40, items: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = {(u, int(i)) for u in range(users) for i in rng.choice(items, 5, replace=False)}
    u, i = zip(*sorted(pairs), strict=True)
    return pd.DataFrame({"user": [f"u{x}" for x in u], "movie": i, "rating": 4.0})


def test_ease_without_recency_equals_the_closed_form() -> None:
    r = _ratings()
    ret = EaseRetriever.fit(r, 12, l2=10.0, min_count=1, half_life=None)
    users = pd.factorize(r["user"])[0]
    x = sp.csr_matrix((np.ones(len(r)), (users, r["movie"])), shape=(users.max() + 1, 12))
    ref = EASE(10.0).fit(x)
    history = UserHistory.from_ratings(12, [3, 7, 1], [4.0, 2.0, 5.0])
    expect = ref.scores(sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [3, 7, 1])), shape=(1, 12)))
    assert ret.scores(history) == pytest.approx(expect[0], rel=1e-4, abs=1e-5)


def test_recency_weights_halve_every_half_life() -> None:
    assert recency_weights(4, 1.0) == pytest.approx([0.125, 0.25, 0.5, 1.0])
    assert recency_weights(3, None) == pytest.approx([1.0, 1.0, 1.0])
    assert recency_weights(0, 2.0).shape == (0,)


def test_ease_recency_weights_the_latest_interaction_of_a_movie() -> None:
    r = _ratings(1)
    ret = EaseRetriever.fit(r, 12, l2=10.0, min_count=1, half_life=1.0)
    # 3 rated first and again last: it counts once, with the latest (full) weight
    twice = UserHistory.from_ratings(12, [3, 7, 3], [4.0, 4.0, 4.0])
    expect = ret.weights[ret.column[3]] + 0.5 * ret.weights[ret.column[7]]
    assert ret.scores(twice) == pytest.approx(expect, rel=1e-5)


def test_ease_covers_only_movies_seen_often_enough() -> None:
    r = pd.DataFrame({"user": ["a", "b", "c", "a"], "movie": [0, 0, 0, 1], "rating": 4.0})
    ret = EaseRetriever.fit(r, 3, l2=1.0, min_count=2)
    assert list(ret.rows) == [0]
    scores = ret.scores(UserHistory.from_ratings(3, [0], [4.0]))
    assert scores[1] == scores[2] == scores.min()  # uncovered movies never outrank covered


def test_ease_save_load_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ret = EaseRetriever.fit(_ratings(), 12, l2=5.0, min_count=1, half_life=3.0)
    ret.save(tmp_path / "r.npz")
    back = EaseRetriever.load(tmp_path / "r.npz")
    h = UserHistory.from_ratings(12, [0, 5], [4.0, 3.0])
    assert back.half_life == 3.0
    assert np.array_equal(back.scores(h), ret.scores(h))


@pytest.mark.parametrize(
    ("kwargs", "frame", "message"),
    [
        ({"l2": 0.0}, _ratings(), "l2 must be positive"),
        ({}, _ratings().iloc[:0], "at least one rating"),
    ],
)
def test_ease_bad_inputs(kwargs: dict[str, float], frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EaseRetriever.fit(frame, 12, **kwargs)  # type: ignore[arg-type]


def test_rp3beta_equals_the_dense_walk() -> None:
    cat = tiny_catalog()
    walk = RP3Beta.fit(cat, alpha=0.8, beta=0.4, content_weight=0.5)
    r = cat.ratings
    users = pd.factorize(r["user"])[0]
    a_users = np.zeros((cat.n_movies, users.max() + 1))
    a_users[r["movie"], users] = 1.0
    content = cat.hop.bw.toarray()
    a = np.hstack([a_users, np.where(content > 0, 0.5, 0.0)])
    p_in = (a / a.sum(axis=1, keepdims=True).clip(1e-300)) ** 0.8
    p_out = (a.T / a.T.sum(axis=1, keepdims=True).clip(1e-300)) ** 0.8
    pop = a_users.sum(axis=1) + 1.0
    seeds = [0, 4]
    expect = (p_in[seeds].mean(axis=0) @ p_out) * pop**-0.4
    history = UserHistory.from_ratings(cat.n_movies, seeds, [5.0, 1.0])
    assert walk.scores(history) == pytest.approx(expect)


def test_rp3beta_penalises_popular_movies_more_with_beta() -> None:
    cat = tiny_catalog()
    h = UserHistory.from_ratings(cat.n_movies, [1], [5.0])
    flat, steep = RP3Beta.fit(cat, beta=0.0).scores(h), RP3Beta.fit(cat, beta=1.0).scores(h)
    popular = int(np.argmax(cat.popularity))
    assert steep[popular] / max(flat[popular], 1e-12) < 1.0
    assert RP3Beta.fit(cat).scores(UserHistory(cat.n_movies)).sum() == 0.0


def test_item_bias_is_the_shrunk_mean_offset() -> None:
    r = pd.DataFrame({"movie": [0, 0, 1], "rating": [5.0, 5.0, 2.0], "user": ["a", "b", "a"]})
    bias = ItemBias.fit(r, 3, shrink=1.0).scores(UserHistory(3))
    mu = 4.0
    assert bias == pytest.approx([2 * (5 - mu) / 3, (2 - mu) / 2, 0.0])


def test_zscores() -> None:
    assert zscores(np.array([1.0, 3.0])) == pytest.approx([-1.0, 1.0])
    assert zscores(np.array([2.0, 2.0])) == pytest.approx([0.0, 0.0])
    assert zscores(np.zeros(0)).shape == (0,)


def test_zscores_are_bit_for_bit_numpys_mean_and_std() -> None:
    """zscores centres once and divides in place: the same floats as (v - mean) / std."""
    rng = np.random.default_rng(4)
    for n in (1, 2, 7, 1000, 70_001):
        for v in (
            rng.standard_normal(n) * 300.0 + 1e4,
            np.log1p(rng.exponential(size=n) * (rng.random(n) < 0.3)),
        ):
            sd = float(v.std())
            want = (v - v.mean()) / sd if sd > 1e-12 else np.zeros_like(v)
            assert np.array_equal(zscores(v), want), n
    assert not np.any(zscores(np.full(9, 3.25)))


def test_ease_covered_scores_are_what_scores_spreads_over_the_catalogue() -> None:
    rng = np.random.default_rng(5)
    ratings = pd.DataFrame(
        {"user": rng.integers(0, 40, 400).astype(str), "movie": rng.integers(0, 30, 400)}
    )
    ease = EaseRetriever.fit(ratings, 30, max_items=12)
    h = UserHistory.from_ratings(30, [0, 3, 5, 9, 11, 3], [4.0] * 6)
    covered = ease.covered_scores(h)
    assert covered is not None and covered.shape == (12,)
    full = ease.scores(h)
    assert np.array_equal(full[ease.rows], covered)
    others = np.setdiff1d(np.arange(30), ease.rows)
    assert np.all(full[others] == covered.min())
    outside = UserHistory.from_ratings(30, others[:2].tolist(), [4.0, 4.0])
    assert ease.covered_scores(outside) is None and not np.any(ease.scores(outside))
