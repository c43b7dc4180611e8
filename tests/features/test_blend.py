"""The blend retriever: its parts add up as documented, it round-trips through a file, older
EASE-only files still load, and recent popularity never reads ratings from after its time."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.als import AlsRetriever
from features.blend import BlendRetriever, load_retriever
from features.popularity import RecentPopularity
from features.retrieval import EaseRetriever, zscores
from features.state import UserHistory

DAY = 86_400.0


def _ratings(seed: int = 0, users: int = 60, items: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = {(u, int(i)) for u in range(users) for i in rng.choice(items, 6, replace=False)}
    u, i = zip(*sorted(pairs), strict=True)
    return pd.DataFrame(
        {
            "user": [f"u{x}" for x in u],
            "movie": i,
            "rating": 4.0,
            "timestamp": rng.integers(0, 1000, len(u)) * DAY,
        }
    )


def test_recent_popularity_counts_only_ratings_before_the_day_and_decays_them() -> None:
    frame = pd.DataFrame({"movie": [0, 1, 1, 2], "timestamp": [0.0, 10 * DAY, 20 * DAY, 30 * DAY]})
    pop = RecentPopularity.fit(frame, 3, half_life_days=10.0)
    at = pop.scores_at(30 * DAY + 5)  # movie 2's rating is that same day: not yet counted
    assert at[2] == 0.0
    assert at[0] == pytest.approx(np.log1p(0.5**3))
    assert at[1] == pytest.approx(np.log1p(0.5**2 + 0.5**1))
    assert np.array_equal(pop.scores_at(None), pop.scores_at(pop.latest))


def test_recent_popularity_rejects_a_non_positive_half_life() -> None:
    frame = pd.DataFrame({"movie": [0], "timestamp": [0.0]})
    with pytest.raises(ValueError, match="half_life_days must be positive"):
        RecentPopularity.fit(frame, 1, half_life_days=0.0)


def test_als_scores_fold_in_a_history_the_fit_never_saw() -> None:
    als = AlsRetriever.fit(_ratings(), 15, factors=4, seed=0)
    liked = UserHistory.from_ratings(15, [1, 2, 3], [4.0, 4.0, 4.0])
    scores = als.scores(liked)
    assert scores.shape == (15,)
    assert np.all(np.isfinite(scores))
    # folding in the same items twice gives the same vector (deterministic least squares)
    assert np.allclose(scores, als.scores(UserHistory.from_ratings(15, [3, 2, 1], [4.0] * 3)))
    assert not np.any(als.scores(UserHistory(15)))


def test_als_fold_in_equals_implicits_recalculate_user() -> None:
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares

    als = AlsRetriever.fit(_ratings(), 15, factors=4, regularization=0.1, alpha=5.0, seed=0)
    model = AlternatingLeastSquares(factors=4, regularization=0.1, alpha=5.0)
    model.item_factors = als.item_factors
    rows = np.array([1, 2, 6, 9])
    x = sp.csr_matrix((np.ones(4, dtype=np.float32), (np.zeros(4, dtype=int), rows)), (1, 15))
    ours = als.user_vector(UserHistory.from_ratings(15, rows, [4.0] * 4))
    assert np.allclose(ours, model.recalculate_user(0, x), rtol=1e-3, atol=1e-4)


def test_blend_is_the_weighted_sum_of_z_scored_parts() -> None:
    frame = _ratings()
    blend = BlendRetriever.fit(frame, 15, w_als=0.3, w_popularity=0.5, popularity_n0=2.0)
    assert blend.als is not None and blend.popularity is not None
    h = UserHistory.from_ratings(15, [0, 4, 7, 9], [4.0] * 4, last_time=500 * DAY)
    expected = (
        zscores(blend.ease.scores(h))
        + 0.3 * (1 - 2.0 / 4) * zscores(blend.als.scores(h))
        + 0.5 * (2.0 / 4) * zscores(blend.popularity.scores_at(500 * DAY))
    )
    assert np.allclose(blend.scores(h), expected)
    # a cold (empty) history is ranked by popularity alone
    cold = blend.scores(UserHistory(15, last_time=500 * DAY))
    assert np.allclose(cold, 0.5 * zscores(blend.popularity.scores_at(500 * DAY)))


def test_blend_without_timestamps_leaves_popularity_out() -> None:
    blend = BlendRetriever.fit(_ratings().drop(columns="timestamp"), 15)
    assert blend.popularity is None


def test_blend_round_trips_and_old_ease_files_still_load(tmp_path: Path) -> None:
    frame = _ratings()
    blend = BlendRetriever.fit(frame, 15)
    blend.save(tmp_path / "blend.npz")
    back = load_retriever(tmp_path / "blend.npz")
    assert isinstance(back, BlendRetriever)
    h = UserHistory.from_ratings(15, [0, 4], [4.0, 2.0], last_time=300 * DAY)
    assert np.allclose(back.scores(h), blend.scores(h))
    ease = EaseRetriever.fit(frame, 15, min_count=1)
    ease.save(tmp_path / "ease.npz")
    old = load_retriever(tmp_path / "ease.npz")
    assert isinstance(old, EaseRetriever)
    assert np.array_equal(old.scores(h), ease.scores(h))


def test_blend_rejects_parts_of_another_catalogue() -> None:
    frame = _ratings()
    ease = EaseRetriever.fit(frame, 15, min_count=1)
    with pytest.raises(ValueError, match="covers 16 movies"):
        BlendRetriever(ease, popularity=RecentPopularity.fit(frame, 16))


def test_unknown_retriever_format_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "r.npz", format=np.str_("blend-9"))
    with pytest.raises(ValueError, match="unknown retriever format"):
        load_retriever(tmp_path / "r.npz")


def test_movies_outside_ease_are_ranked_by_the_cheaper_parts() -> None:
    """At catalogue scale EASE covers only the most-rated movies (``max_items``: a dense
    item-item table over 500K movies cannot exist); the others take EASE's minimum and the
    blend's ALS and popularity parts still order them among themselves."""
    items = 40
    ratings = _ratings(seed=3, users=80, items=items)
    ease = EaseRetriever.fit(ratings, items, max_items=10)
    assert ease.rows.shape[0] == 10
    blend = BlendRetriever(
        ease,
        AlsRetriever.fit(ratings, items, factors=4, seed=0),
        RecentPopularity.fit(ratings, items, half_life_days=30.0),
    )
    history = UserHistory.from_ratings(items, list(range(12)), [4.0] * 12, last_time=900 * DAY)
    outside = np.setdiff1d(np.arange(items), ease.rows)
    ease_part = ease.scores(history)
    assert np.all(ease_part[outside] == ease_part.min())  # one value: EASE cannot order them
    scores = blend.scores(history)
    assert np.all(np.isfinite(scores))
    assert np.unique(np.round(scores[outside], 9)).shape[0] > outside.shape[0] // 2


def test_recent_popularity_from_an_earlier_day_equals_the_direct_sum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large tables decay an earlier cached day's sums instead of reweighting every rating;
    the scores agree with the direct sum, and the per-day caches stay bounded."""
    import features.popularity as popularity

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"movie": rng.integers(0, 50, 3000), "timestamp": rng.integers(0, 400, 3000) * DAY}
    )
    direct = RecentPopularity.fit(frame, 50, half_life_days=20.0)
    days = [5, 90, 91, 200, 150, 399, 400, 30]
    expected = [direct.scores_on(d).copy() for d in days]
    monkeypatch.setattr(popularity, "INCREMENTAL_MIN_RATINGS", 1000)
    monkeypatch.setattr(popularity, "DAY_CACHE_BYTES", 3 * 8 * 50)  # three raw days
    monkeypatch.setattr(popularity, "DERIVED_CACHE_BYTES", 2 * 8 * 50)  # two days of scores
    incremental = RecentPopularity.fit(frame, 50, half_life_days=20.0)
    for d, want in zip(days, expected, strict=True):
        np.testing.assert_allclose(incremental.scores_on(d), want, rtol=1e-12)
    assert len(incremental._raw.days()) == 3 and len(incremental._cache.days()) == 2


def test_a_day_before_every_cached_day_starts_from_the_nearest_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Days asked latest first (each before every cached day) start from the checkpoint just
    before them, not from the first rating: they agree with the direct sum, and each reads only
    the ratings since its checkpoint. The checkpoints are spread by rating count, as many as
    the budget holds (8 at 500K movies), and a copy of the table starts without them."""
    import features.popularity as popularity

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"movie": rng.integers(0, 50, 4000), "timestamp": rng.integers(0, 400, 4000) * DAY}
    )
    days = [399, 350, 301, 200, 120, 60, 5]
    expected = [RecentPopularity.fit(frame, 50, half_life_days=20.0).scores_on(d) for d in days]
    monkeypatch.setattr(popularity, "INCREMENTAL_MIN_RATINGS", 1000)
    monkeypatch.setattr(popularity, "CHECKPOINT_BYTES", 7 * 8 * 50)  # seven checkpoints
    pop = RecentPopularity.fit(frame, 50, half_life_days=20.0)
    read: list[int] = []
    direct = RecentPopularity._direct

    def counted(
        self: RecentPopularity,
        t: float,
        lo: int,
        hi: int,
        start: object = None,
        decay: float = 1.0,
    ) -> object:
        read.append(hi - lo)
        return direct(self, t, lo, hi, start, decay)  # type: ignore[arg-type]

    monkeypatch.setattr(RecentPopularity, "_direct", counted)
    for d, want in zip(days, expected, strict=True):
        np.testing.assert_allclose(pop.scores_on(d), want, rtol=1e-12)
    built = pop._checkpoints._days
    assert built is not None and len(built) == 7
    per_gap = np.diff(np.searchsorted(pop.timestamps, np.r_[0, built] * DAY * 1.0))
    assert per_gap.max() - per_gap.min() < 200  # spread by count: ~500 ratings each
    assert max(read[7:]) <= per_gap.max() + 120  # each day: its checkpoint's ratings on
    assert sum(read) < 2 * 4000  # the checkpoints' one pass, then short ones
    copied = pickle.loads(pickle.dumps(pop))
    assert copied._checkpoints._days is None
    assert np.array_equal(copied.scores_on(200), pop.scores_on(200))
    at_500k = RecentPopularity.fit(_ratings(), 500_000)
    assert len(at_500k._checkpoint_days()) <= 8


def test_the_day_caches_of_a_500k_movie_blend_hold_at_most_80_mb() -> None:
    """At 500K movies a day is 4 MB: the raw counts keep 16 days (64 MB), the log1p scores
    derived from them 4 days; the blend keeps two numbers a day (it kept 4 days of z-scores,
    16 MB, before)."""
    pop = RecentPopularity.fit(_ratings(), 500_000)
    held = [pop._raw.size, pop._cache.size]
    assert held == [16, 4]
    assert sum(held) * 8 * 500_000 <= 80 * 2**20
    blend = BlendRetriever.fit(_ratings(), 15, w_als=0.0)
    h = UserHistory.from_ratings(15, [0, 4, 7, 9], [4.0] * 4, last_time=500 * DAY)
    blend.scores(h)
    assert blend._moments_cache.days() == [500] and blend._moments_cache.size == 256


def test_a_blend_with_warm_day_caches_pickles_and_deep_copies() -> None:
    """Ray ships the world to its workers by pickle and gymnasium's env checker deep-copies it:
    the per-day caches' locks must not travel (a copy starts with empty caches)."""
    blend = BlendRetriever.fit(_ratings(), 15, popularity_n0=2.0)
    h = UserHistory.from_ratings(15, [0, 4, 7, 9], [4.0] * 4, last_time=500 * DAY)
    before = blend.scores(h)  # fills the day caches
    for copied in (pickle.loads(pickle.dumps(blend)), copy.deepcopy(blend)):
        assert np.array_equal(copied.scores(h), before)


def test_recent_popularity_on_mapped_ratings_releases_its_long_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A mapped table's long passes (the checkpoints', over every rating, at the first day
    asked) unmap their pages afterwards (features.npz.release_pages): the same scores, bit for
    bit, as the table held in memory, day after day, and the pages no longer resident in this
    process."""
    import features.popularity as popularity
    from features.npz import open_arrays, save_arrays
    from tests.features.test_npz import linux, resident_kb

    rng = np.random.default_rng(2)
    n = 300_000
    frame = pd.DataFrame(
        {"movie": rng.integers(0, 500, n), "timestamp": rng.integers(0, 400, n) * DAY}
    )
    monkeypatch.setattr(popularity, "INCREMENTAL_MIN_RATINGS", 1000)
    monkeypatch.setattr(popularity, "RELEASE_MIN_RATINGS", 100_000)
    held = RecentPopularity.fit(frame, 500, half_life_days=20.0)
    folder = save_arrays(tmp_path / "pop", held.arrays())
    mapped = RecentPopularity.from_arrays(open_arrays(folder))
    mapped._checkpoints.latest_before(300, mapped)  # what the first day builds: a long pass
    if not linux.args[0]:  # on Linux (/proc/self/smaps): its pages are no longer resident
        assert resident_kb(folder / "timestamps.npy") < n * 8 // 1024 // 4
        assert resident_kb(folder / "movies.npy") < n * 8 // 1024 // 4
    for day in [300, 301, 250, 399, 10, 400]:
        assert np.array_equal(mapped.scores_on(day), held.scores_on(day)), day


def test_the_fused_blend_equals_the_reference_and_ranks_the_same() -> None:
    """``scores`` builds the blend in place (EASE's z-scores from its covered rows, ALS's
    statistics in closed form, popularity added in place): the reference computation up to
    rounding, and the same top rows, for empty, short and long histories, with movies
    outside EASE (max_items) and a popularity part."""
    from features.candidates import top_unseen

    items = 60
    ratings = _ratings(seed=5, users=120, items=items)
    blend = BlendRetriever(
        EaseRetriever.fit(ratings, items, max_items=20),
        AlsRetriever.fit(ratings, items, factors=4, seed=0),
        RecentPopularity.fit(ratings, items, half_life_days=30.0),
        popularity_n0=4.0,
    )
    rng = np.random.default_rng(6)
    for length in (0, 1, 3, 4, 9, 25):
        rows = rng.choice(items, length, replace=False).tolist()
        h = UserHistory.from_ratings(items, rows, [4.0] * length, last_time=700 * DAY)
        want = blend.reference_scores(h)
        got = blend.scores(h)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert np.array_equal(top_unseen(got, h.seen, 15), top_unseen(want, h.seen, 15))
    # EASE alone (no ALS, no popularity) and a history outside EASE's rows
    bare = BlendRetriever(blend.ease)
    outside = np.setdiff1d(np.arange(items), blend.ease.rows)[:3].tolist()
    for rows in ([1, 2, 3], outside):
        h = UserHistory.from_ratings(items, rows, [4.0] * len(rows))
        np.testing.assert_allclose(bare.scores(h), bare.reference_scores(h), atol=1e-12)


def test_sparse_zscores_are_the_zscores_of_the_filled_vector() -> None:
    from features.blend import _sparse_zscores

    rng = np.random.default_rng(7)
    covered = rng.standard_normal(40).astype(np.float32)
    rows = np.sort(rng.choice(1000, 40, replace=False))
    full = np.full(1000, float(covered.min()))
    full[rows] = covered
    fill, spread = _sparse_zscores(covered, 1000)
    want = zscores(full)
    np.testing.assert_allclose(spread, want[rows], rtol=1e-12, atol=1e-12)
    others = np.setdiff1d(np.arange(1000), rows)
    np.testing.assert_allclose(want[others], fill, rtol=1e-12)
    # every movie covered: no fill; a constant vector: zeros, as zscores
    np.testing.assert_allclose(_sparse_zscores(covered, 40)[1], zscores(covered), rtol=1e-12)
    assert _sparse_zscores(np.full(5, 2.0, dtype=np.float32), 9)[0] == 0.0


def test_large_catalogues_score_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """At SINGLE_THREAD_MIN_MOVIES movies or more the blend's products run on one BLAS
    thread (features.blas), below it as numpy leaves them; the same scores either way."""
    import features.blend as blend_module
    from features.blas import single_threaded

    entered: list[int] = []

    def counted() -> object:
        entered.append(1)
        return single_threaded()

    monkeypatch.setattr(blend_module, "single_threaded", counted)
    blend = BlendRetriever.fit(_ratings(), 15, popularity_n0=2.0)
    h = UserHistory.from_ratings(15, [0, 4, 7, 9], [4.0] * 4, last_time=500 * DAY)
    small = blend.scores(h)
    assert entered == []
    monkeypatch.setattr(blend_module, "SINGLE_THREAD_MIN_MOVIES", 15)
    assert np.array_equal(blend.scores(h), small)
    assert entered == [1]


def test_prepare_computes_the_latest_days_of_a_large_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a large table ``prepare`` builds the checkpoints and the raw counts of the days up to
    the day after the last rating (what users active now ask, and the memory later days reuse):
    as many as the raw cache holds, each equal to the direct sum; a small table: nothing."""
    import features.popularity as popularity

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {"movie": rng.integers(0, 50, 3000), "timestamp": rng.integers(0, 400, 3000) * DAY}
    )
    small = RecentPopularity.fit(frame, 50, half_life_days=20.0)
    small.prepare()
    assert small._raw.days() == [] and small._checkpoints._days is None
    monkeypatch.setattr(popularity, "INCREMENTAL_MIN_RATINGS", 1000)
    monkeypatch.setattr(popularity, "DAY_CACHE_BYTES", 3 * 8 * 50)  # three raw days
    large = RecentPopularity.fit(frame, 50, half_life_days=20.0)
    large.prepare()
    last = large.day_of(None) + 1
    assert sorted(large._raw.days()) == [last - 2, last - 1, last]
    assert large._checkpoints._days is not None
    for day in (last - 2, last):
        np.testing.assert_allclose(large.scores_on(day), small.scores_on(day), rtol=1e-12)
