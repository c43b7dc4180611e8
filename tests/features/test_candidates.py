"""Hop scores against a brute-force reading of the store's definition; candidate sets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import features.graph.hop as hop_mod
import features.graph.matvec as matvec_mod
import features.state as state_mod
from features.candidates import (
    DEFAULT_CANDIDATE_HOPS,
    CandidateGenerator,
    base_scores,
    khop_scores,
    top_rows,
)
from features.catalog import Catalog
from features.graph.local import LocalGraphStore
from features.graph.schema import DEFAULT_HOP_WEIGHTS, EdgeKind
from features.importers.movielens import load_movielens
from features.state import UserHistory
from tests.features.catalog_fixtures import DIRECTED, GENRES, SIMILAR, TAGGED, tiny_catalog

BUNDLED = Path(__file__).resolve().parents[2] / "features/datasets/ml-latest-small"


def brute_force_h(cat: Catalog) -> np.ndarray:
    """H[i, j] = sum_e w_e n_e(i, j) for i != j, straight from the edge lists."""
    keys = list(cat.movie_keys)
    links: dict[EdgeKind, set[tuple[str, str]]] = {
        EdgeKind.IN_GENRE: {(m, g) for m, gs in GENRES.items() for g in gs.split("|") if g},
        EdgeKind.DIRECTED: {(m, p) for p, m in DIRECTED},
        EdgeKind.TAGGED: set(TAGGED),
    }
    n = len(keys)
    h = np.zeros((n, n))
    for kind, pairs in links.items():
        w = DEFAULT_HOP_WEIGHTS[kind]
        for i, a in enumerate(keys):
            for j, b in enumerate(keys):
                if i != j:
                    shared = {v for m, v in pairs if m == a} & {v for m, v in pairs if m == b}
                    h[i, j] += w * len(shared)
    for a, b in SIMILAR:
        i, j = keys.index(a), keys.index(b)
        h[i, j] += DEFAULT_HOP_WEIGHTS[EdgeKind.SIMILAR_TO]
        h[j, i] += DEFAULT_HOP_WEIGHTS[EdgeKind.SIMILAR_TO]
    return h


def test_hop_operator_matches_brute_force() -> None:
    cat = tiny_catalog()
    h = brute_force_h(cat)
    eye = np.eye(cat.n_movies)
    assert np.allclose(cat.hop.apply(eye), h)
    seed = np.zeros(cat.n_movies)
    seed[cat.index_of(["m1", "m3"])] = 1.0
    levels = cat.hop.levels(seed, 3)
    assert np.allclose(levels[0], h @ seed)
    assert np.allclose(levels[2], h @ h @ h @ seed)


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_khop_scores_drop_seen_and_sum_hops(hops: int) -> None:
    cat = tiny_catalog()
    h = brute_force_h(cat)
    hist = UserHistory.from_ratings(cat.n_movies, cat.index_of(["m1", "m5", "m2"]), [5.0, 2.0, 4.0])
    seed = np.zeros(cat.n_movies)
    seed[cat.index_of(["m1", "m2"])] = 1.0  # m5 (2.0) is seen but not a positive
    expect = np.sum([np.linalg.matrix_power(h, k) @ seed for k in range(1, hops + 1)], axis=0)
    expect[cat.index_of(["m1", "m2", "m5"])] = 0.0
    assert np.allclose(khop_scores(cat, hist, hops), expect)


def test_khop_rejects_bad_hops() -> None:
    cat = tiny_catalog()
    with pytest.raises(ValueError, match="hops must be 1, 2 or 3, got 4"):
        khop_scores(cat, UserHistory(cat.n_movies), 4)


def test_top_rows_orders_by_score_then_row() -> None:
    scores = np.array([0.0, 2.0, 1.0, 2.0, 3.0, -1.0])
    assert top_rows(scores, 3).tolist() == [4, 1, 3]
    assert top_rows(scores, 10).tolist() == [4, 1, 3, 2]


def test_candidates_graph_first_then_popular_never_seen() -> None:
    cat = tiny_catalog()
    hist = UserHistory.from_ratings(cat.n_movies, cat.index_of(["m1"]), [5.0])
    gen = CandidateGenerator(cat, max_candidates=5, graph_share=0.6)
    cands = gen.generate(hist)
    assert len(cands) == 5
    assert len(set(cands.tolist())) == 5
    assert not hist.seen[cands].any()
    assert gen.hops == DEFAULT_CANDIDATE_HOPS
    scores = khop_scores(cat, hist, gen.hops)
    assert cands[:3].tolist() == top_rows(scores, 3).tolist()
    rest = [r for r in cat.popular_order().tolist() if not hist.seen[r] and r not in cands[:3]]
    assert cands[3:].tolist() == rest[:2]


def test_candidates_without_positives_are_popular_unseen() -> None:
    cat = tiny_catalog()
    hist = UserHistory.from_ratings(cat.n_movies, cat.index_of(["m2"]), [1.0])
    cands = CandidateGenerator(cat, max_candidates=3).generate(hist)
    expect = [r for r in cat.popular_order().tolist() if r != cat.index_of("m2")[0]][:3]
    assert cands.tolist() == expect


def test_candidate_cache_matches_a_fresh_history() -> None:
    """Filtering the cached ranking as movies become seen gives the same set as recomputing."""
    cat = tiny_catalog()
    gen = CandidateGenerator(cat, max_candidates=4, graph_share=1.0)
    hist = UserHistory.from_ratings(cat.n_movies, cat.index_of(["m1"]), [5.0])
    gen.generate(hist)
    for key, rating in [("m6", 2.0), ("m3", 3.0), ("m4", 5.0), ("m8", 1.0)]:
        hist.add(int(cat.index_of(key)[0]), rating)
        fresh = UserHistory.from_ratings(cat.n_movies, hist.items, hist.ratings)
        assert gen.generate(hist).tolist() == gen.generate(fresh).tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_candidates": 0}, "max_candidates must be positive, got 0"),
        ({"graph_share": 1.5}, r"graph_share must be in \[0, 1\], got 1.5"),
        ({"hops": 0}, "hops must be 1, 2 or 3, got 0"),
    ],
)
def test_candidate_generator_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CandidateGenerator(tiny_catalog(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ml_store_and_catalog() -> tuple[LocalGraphStore, Catalog]:
    store = LocalGraphStore()
    store.upsert(load_movielens(BUNDLED))
    return store, Catalog.from_store(store)


def test_catalog_from_store_matches_the_batch(
    ml_store_and_catalog: tuple[LocalGraphStore, Catalog],
) -> None:
    _, cat = ml_store_and_catalog
    direct = Catalog.from_batch(load_movielens(BUNDLED))
    assert np.array_equal(cat.movie_keys, direct.movie_keys)
    assert cat.ratings.equals(direct.ratings)
    assert (cat.genres != direct.genres).nnz == 0


@pytest.mark.parametrize(("user", "hops"), [("1", 3), ("42", 2), ("600", 1)])
def test_khop_scores_agree_with_the_store(
    ml_store_and_catalog: tuple[LocalGraphStore, Catalog], user: str, hops: int
) -> None:
    store, cat = ml_store_and_catalog
    """Same scores for every movie; the same top 100 up to the order of near-ties (the two
    sum in different orders, so equal scores may differ in the last bits)."""
    expect = store.khop_scores(user, hops=hops)
    theirs = dict(expect)
    mine = cat.ratings[cat.ratings["user"] == user]
    hist = UserHistory.from_ratings(cat.n_movies, mine["movie"], mine["rating"])
    scores = khop_scores(cat, hist, hops)
    assert np.count_nonzero(scores) == len(expect)
    keys = cat.movie_keys
    assert np.allclose([theirs[k] for k in keys[scores > 0]], scores[scores > 0], rtol=1e-6)
    rows = top_rows(scores, 100)
    assert np.allclose(scores[rows], [s for _, s in expect[:100]], rtol=1e-6)


def _applied(cat: Catalog, seed: np.ndarray) -> np.ndarray:
    """H^1..3 seed by plain ``apply`` (the reference for the fast ``levels``)."""
    out, x = [], seed
    for _ in range(3):
        x = cat.hop.apply(x)
        out.append(x)
    return np.stack(out)


@pytest.mark.parametrize("parallel", [False, True])
def test_levels_fast_path_is_bit_identical_to_apply(
    ml_store_and_catalog: tuple[LocalGraphStore, Catalog],
    monkeypatch: pytest.MonkeyPatch,
    parallel: bool,
) -> None:
    """The seeds-only first hop and the row-block (threaded) mat-vecs sum every entry in the
    same order as ``apply``, so the levels are equal bit for bit, not just close."""
    _, cat = ml_store_and_catalog
    if parallel:  # force the two-thread split on this small graph (a fresh operator)
        monkeypatch.setattr(matvec_mod, "PARALLEL_MIN_NNZ", 0)
        monkeypatch.setattr(matvec_mod.os, "cpu_count", lambda: 2)
    hop = dataclasses.replace(cat.hop)
    fresh = dataclasses.replace(cat, hop=hop)
    assert len(hop._blocks[0]) == (matvec_mod.BLOCKS if parallel else 1)
    rng = np.random.default_rng(0)
    for n_seeds in (1, 7, 300):
        seed = np.zeros(cat.n_movies)
        seed[rng.choice(cat.n_movies, n_seeds, replace=False)] = 1.0
        assert np.array_equal(hop.levels(seed, 3), _applied(fresh, seed))
    weighted = rng.random(cat.n_movies) * (rng.random(cat.n_movies) < 0.01)  # not 0/1
    assert np.array_equal(hop.levels(weighted, 3), _applied(fresh, weighted))
    assert not hop.levels(np.zeros(cat.n_movies), 2).any()


@pytest.mark.parametrize(
    ("scores", "n"),
    [
        (np.r_[np.zeros(5000), np.full(300, 2.0), np.full(50, 3.0)], 100),  # ties at the cut
        (np.r_[np.zeros(5000), [1.0, 2.0, 3.0]], 100),  # fewer positive scores than n
        (np.random.default_rng(1).random(20_000), 150),  # the sampled threshold is taken
        (np.random.default_rng(2).integers(0, 4, 20_000).astype(float), 150),  # many ties
        (np.r_[np.full(3000, 5.0), np.zeros(3000)], 40),
    ],
)
def test_top_rows_equals_a_full_sort(scores: np.ndarray, n: int) -> None:
    """The sampled-threshold shortcut keeps the full ranking's answer (score desc, row asc)."""
    positive = np.flatnonzero(scores > 0)
    expect = positive[np.lexsort((positive, -scores[positive]))][:n]
    assert top_rows(scores, n).tolist() == expect.tolist()


def test_from_ratings_equals_adding_one_by_one(
    ml_store_and_catalog: tuple[LocalGraphStore, Catalog],
) -> None:
    _, cat = ml_store_and_catalog
    mine = cat.ratings[cat.ratings["user"] == "42"]
    bulk = UserHistory.from_ratings(cat.n_movies, mine["movie"], mine["rating"])
    one = UserHistory(cat.n_movies)
    for m, r in zip(mine["movie"], mine["rating"], strict=True):
        one.add(int(m), float(r))
    assert (bulk.items, bulk.ratings, bulk.positives) == (one.items, one.ratings, one.positives)
    assert np.array_equal(bulk.seen, one.seen) and bulk.positives


@pytest.mark.parametrize(
    ("movies", "ratings", "message"),
    [
        ([0, 8], [4.0, 4.0], r"movie row 8 out of range \[0, 8\)"),
        ([-1], [4.0], r"movie row -1 out of range \[0, 8\)"),
        ([0, 1], [4.0], "2 movie rows but 1 ratings"),
    ],
)
def test_from_ratings_rejects_bad_input(
    movies: list[int], ratings: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        UserHistory.from_ratings(8, movies, ratings)


@pytest.mark.parametrize("rows_only", [True, False])
def test_levels_at_rows_equal_the_full_levels(
    ml_store_and_catalog: tuple[LocalGraphStore, Catalog],
    monkeypatch: pytest.MonkeyPatch,
    rows_only: bool,
) -> None:
    """The deepest level read at a few rows (as the state's seen-movie correction does) is
    bit for bit what the full pass over the graph gives there, before and after more rows
    become seen, and once the full level is computed too."""
    _, cat = ml_store_and_catalog
    # the rows-only path is for large graphs: force it (or its opposite) on this small one
    monkeypatch.setattr(state_mod, "ROWS_ONLY_MIN_NNZ", 0 if rows_only else 10**12)
    rng = np.random.default_rng(1)
    x = rng.random(cat.n_movies) * (rng.random(cat.n_movies) < 0.05)
    rows = rng.choice(cat.n_movies, 40, replace=False)
    assert np.array_equal(cat.hop.apply_rows(x, rows), cat.hop.step(x)[rows])
    assert np.array_equal(cat.hop.apply_rows(x, rows[:3]), cat.hop.step(x)[rows[:3]])  # few
    assert cat.hop.apply_rows(x, np.zeros(0, dtype=np.int64)).shape == (0,)

    movies = rng.choice(cat.n_movies, 30, replace=False)
    lazy = UserHistory.from_ratings(cat.n_movies, movies, rng.choice([2.0, 4.5, 5.0], 30))
    eager = UserHistory.from_ratings(cat.n_movies, movies, lazy.ratings)
    full = eager.hop_levels(cat.hop, 3)
    first = rows[:25]
    assert np.array_equal(lazy.hop_levels_at(cat.hop, first), full[:, first])
    assert len(lazy._levels) == (2 if rows_only else 3)  # rows only: the third level is not whole
    assert (("column_sums", 2) in lazy.derived) == rows_only
    assert np.array_equal(lazy.hop_levels_at(cat.hop, rows), full[:, rows])  # 15 new rows
    assert np.array_equal(lazy.hop_levels(cat.hop, 3), full)
    assert np.array_equal(lazy.hop_levels_at(cat.hop, rows, 2), full[:2, rows])
    lazy.add(int(rows[0]), 5.0)  # a new positive: every cached level goes
    eager.add(int(rows[0]), 5.0)
    assert np.array_equal(lazy.hop_levels_at(cat.hop, rows), eager.hop_levels(cat.hop)[:, rows])


def test_apply_rows_counts_similar_to_links() -> None:
    cat = tiny_catalog()  # has similar_to edges
    assert cat.hop.similar.nnz
    x = np.arange(1.0, cat.n_movies + 1.0)
    rows = np.arange(cat.n_movies)[::-1]
    assert np.array_equal(cat.hop.apply_rows(x, rows), cat.hop.step(x)[rows])
    assert np.array_equal(cat.hop.apply_rows(x, rows[:3]), cat.hop.step(x)[rows[:3]])  # few


@pytest.mark.parametrize("padded_max", [hop_mod.PADDED_MAX, 0])
def test_row_products_equal_the_full_product_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, padded_max: int
) -> None:
    """Rows of every length (empty ones too), in any order and repeated, through the padded
    table and through scipy's slicing (``padded_max`` 0 forces it)."""
    monkeypatch.setattr(hop_mod, "PADDED_MAX", padded_max)
    rng = np.random.default_rng(3)
    m = sp.random(300, 400, density=0.05, format="csr", random_state=4)
    m = sp.csr_matrix(m.multiply(rng.choice([0.05, 0.3, 0.8, 1.0], m.shape)))
    keep = np.ones(300)
    keep[5] = 0.0  # an empty row
    m = sp.csr_matrix(sp.diags(keep) @ m)
    m.eliminate_zeros()
    assert m.indptr[6] == m.indptr[5]
    x = rng.random(400) * 1e3 - 1.0
    rows = np.r_[rng.choice(300, 120, replace=False), 5, 5, 7]
    assert np.array_equal(hop_mod.row_products(m, rows, x), (m @ x)[rows])
    assert hop_mod.row_products(m, np.zeros(0, dtype=np.int64), x).shape == (0,)


def test_hop_sum_and_first_of_rows_equal_the_stacked_levels(
    ml_store_and_catalog: tuple[LocalGraphStore, Catalog],
) -> None:
    """The candidates' summed levels and the seeds-only first hop, without the dense seed
    vector or the stacked table, are the same numbers bit for bit."""
    _, cat = ml_store_and_catalog
    mine = cat.ratings[cat.ratings["user"] == "42"]
    for hops in (1, 2, 3):
        lazy = UserHistory.from_ratings(cat.n_movies, mine["movie"], mine["rating"])
        eager = UserHistory.from_ratings(cat.n_movies, mine["movie"], mine["rating"])
        assert np.array_equal(lazy.hop_sum(cat.hop, hops), eager.hop_levels(cat.hop, hops).sum(0))
        assert np.array_equal(eager.hop_sum(cat.hop, hops), lazy.hop_sum(cat.hop, hops))  # cached
    seeds = np.unique(np.asarray(lazy.positives))
    dense = np.zeros(cat.n_movies)
    dense[seeds] = 1.0
    assert np.array_equal(cat.hop.first_of_rows(seeds), cat.hop.first(dense))
    assert np.array_equal(cat.hop.first_of_rows(seeds), cat.hop.apply(dense))


class _Fixed:
    """A retriever with fixed scores (movie row i scores scores[i])."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        self._scores = scores
        self.calls = 0

    def scores(self, history: UserHistory) -> np.ndarray:
        self.calls += 1
        return self._scores.copy()


def test_retrieved_candidates_come_first_then_graph_then_popular() -> None:
    cat = tiny_catalog()
    fixed = _Fixed(np.arange(cat.n_movies, dtype=np.float64))  # the last rows score best
    gen = CandidateGenerator(cat, max_candidates=6, retriever=fixed, n_retrieved=2)
    h = UserHistory.from_ratings(cat.n_movies, [cat.n_movies - 1, 0], [5.0, 4.0])
    cands = gen.generate(h)
    assert list(cands[:2]) == [cat.n_movies - 2, cat.n_movies - 3]  # best unseen, in order
    assert not h.seen[cands].any()
    assert np.unique(cands).shape == cands.shape
    plain = CandidateGenerator(cat, max_candidates=6).generate(h)
    rest = [c for c in plain if c not in cands[:2]]
    assert list(cands[2:]) == rest[: 6 - 2]


def test_retriever_scores_are_cached_until_the_history_changes() -> None:
    cat = tiny_catalog()
    fixed = _Fixed(np.ones(cat.n_movies))
    h = UserHistory.from_ratings(cat.n_movies, [0], [2.0])
    base_scores(fixed, h, np.arange(3))
    base_scores(fixed, h, np.arange(3))
    assert fixed.calls == 1
    h.add(1, 2.0)  # not a positive, yet the scores change
    base_scores(fixed, h, np.arange(3))
    assert fixed.calls == 2
    assert base_scores(None, h, np.arange(3)) is None


def _top_by_sort(scores: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    rows = np.flatnonzero(~seen)
    return rows[np.lexsort((rows, -scores[rows]))][:n]


def test_top_unseen_is_the_sorted_top_of_the_unseen_rows() -> None:
    """On a large vector top_unseen looks only above a sampled threshold; the result is the
    full sort's (score descending, row ascending), ties at the boundary included, and when
    the threshold leaves too few unseen rows (the best ones seen) it falls back."""
    from features.candidates import top_unseen

    rng = np.random.default_rng(3)
    size = 200_000
    for case in range(6):
        scores = rng.standard_normal(size)
        if case == 1:
            scores = np.round(scores, 1)  # many ties, at the boundary too
        seen = rng.random(size) < 0.01
        if case == 2:
            seen[np.argsort(-scores)[:5_000]] = True  # the best 5,000 all seen: fallback
        for n in (1, 100, 264):
            assert np.array_equal(top_unseen(scores, seen, n), _top_by_sort(scores, seen, n))
    small = np.array([0.5, 2.0, -1.0, 2.0])
    assert top_unseen(small, np.array([False, False, False, True]), 10).tolist() == [1, 0, 2]
    assert top_unseen(small, np.ones(4, dtype=bool), 3).shape == (0,)


def test_top_unseen_lowers_its_cut_before_searching_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A blend-like vector (a few hundred rows far above the rest, as the EASE-covered rows
    a history reaches): the first sampled cut lands on one of the high rows and too few
    unseen reach it; a lower cut finds the top among a few thousand rows, not all 500K, and
    it is the full sort's."""
    import features.candidates as candidates

    rng = np.random.default_rng(8)
    size = 500_000
    scores = rng.standard_normal(size) * 0.1
    high = rng.choice(np.arange(1, size), 500, replace=False)
    scores[high] = 5.0 + 3.0 * rng.exponential(size=500)
    scores[0] = np.sort(scores[high])[-90]  # a sampled row (the sample starts at 0), high
    seen = np.zeros(size, dtype=bool)
    seen[high[np.argsort(-scores[high])[:10]]] = True  # and a user has seen the best 10
    searched: list[int] = []
    best = candidates._best

    def counted(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
        searched.append(rows.shape[0])
        return best(rows, values, n)

    monkeypatch.setattr(candidates, "_best", counted)
    for n in (100, 200):
        searched.clear()
        got = candidates.top_unseen(scores, seen, n)
        assert np.array_equal(got, _top_by_sort(scores, seen, n))
        assert searched and searched[0] < size // 20
    first = candidates._sampled_cut(scores, 100, candidates._UNSEEN_SHARES[0])
    assert first is not None
    assert np.count_nonzero((scores >= first) & ~seen) < 100  # the first cut falls short
