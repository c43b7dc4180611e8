"""Two hops at a few rows (features.graph.reach_pool) give the full hops' values there, the pooled
2-hop candidates are the full computation's top over the pool, and graphs below the gate
(ml-latest-small) never take that path: their candidates are the full computation's."""

from __future__ import annotations

import numpy as np
import pytest

from env.world import SimulationWorld
from features.candidates import CandidateGenerator, khop_scores, top_rows
from features.catalog import Catalog
from features.graph import reach_pool as rp
from features.graph.reach_pool import TwoHops, build_reach_pool
from features.importers.synthetic import generate_synthetic
from features.state import UserHistory


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """A small synthetic catalogue with similar_to links (the Catalog keeps them in S)."""
    cat = Catalog.from_batch(generate_synthetic(movies=800, people=500, users=40, tags=40, seed=3))
    assert cat.hop.similar.nnz > 0
    return cat


def _histories(cat: Catalog, n: int) -> list[UserHistory]:
    out = []
    for user in cat.users[:n]:
        mine = cat.ratings[cat.ratings["user"] == user]
        out.append(UserHistory.from_ratings(cat.n_movies, mine["movie"], mine["rating"]))
    return [h for h in out if h.positives]


@pytest.mark.parametrize("hub_degree", [8, 30, 10**9])
def test_two_hops_equal_the_full_levels(catalog: Catalog, hub_degree: int) -> None:
    """x1 bit for bit; x2 up to the order of additions, at the pool, at seen movies and at
    random movies (columns outside the pool summed over their own movies)."""
    pool = build_reach_pool(catalog.hop, size=60, hub_degree=hub_degree)
    rng = np.random.default_rng(0)
    histories = _histories(catalog, 12)
    assert len(histories) >= 8
    for history in histories:
        seeds = np.unique(np.asarray(history.positives, dtype=np.int64))
        seed = np.zeros(catalog.n_movies)
        seed[seeds] = 1.0
        full = catalog.hop.levels(seed, 2)
        two = TwoHops(pool, seeds)
        at_pool = two.pool_levels()
        assert np.array_equal(at_pool[0], full[0][pool.rows])
        assert np.allclose(at_pool[1], full[1][pool.rows], rtol=1e-12, atol=1e-9)
        for rows in (
            np.flatnonzero(history.seen),
            np.sort(rng.choice(catalog.n_movies, 50, replace=False)),
            pool.rows,
        ):
            got = two.levels(rows)
            assert np.array_equal(got[0], full[0][rows])
            assert np.allclose(got[1], full[1][rows], rtol=1e-12, atol=1e-9)


def test_state_levels_at_seen_rows_come_from_the_pool(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the gate, ``hop_levels_at`` reads both levels from the pool's TwoHops."""
    monkeypatch.setattr(rp, "POOLED_MIN_NNZ", 0)
    monkeypatch.setattr(rp, "POOL_SIZE", 40)
    monkeypatch.setattr(rp, "HUB_DEGREE", 30)
    monkeypatch.setattr(rp, "_POOLS", {})
    for history in _histories(catalog, 6):
        rows = np.flatnonzero(history.seen)
        got = history.hop_levels_at(catalog.hop, rows, 2)
        assert any(k[0] == "two_hops" for k in history.derived if isinstance(k, tuple))
        want = np.maximum(catalog.hop.levels(_seed(catalog, history), 2)[:, rows], 0.0)
        assert np.allclose(got, want, rtol=1e-12, atol=1e-9)


def _seed(cat: Catalog, history: UserHistory) -> np.ndarray:
    seed = np.zeros(cat.n_movies)
    seed[np.asarray(history.positives, dtype=np.int64)] = 1.0
    return seed


def test_pooled_candidates_are_the_full_top_over_the_pool(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator's graph candidates are the top of the full 2-hop scores restricted to the
    pool (the same scores; rows may swap only between scores equal up to round-off)."""
    monkeypatch.setattr(rp, "POOLED_MIN_NNZ", 0)
    monkeypatch.setattr(rp, "POOL_SIZE", 50)
    monkeypatch.setattr(rp, "HUB_DEGREE", 30)
    monkeypatch.setattr(rp, "_POOLS", {})
    gen = CandidateGenerator(catalog, max_candidates=40, hops=2)
    pool = rp.reach_pool(catalog.hop)
    assert pool is not None and pool.rows.shape[0] == 50
    in_pool = np.zeros(catalog.n_movies, dtype=bool)
    in_pool[pool.rows] = True
    for history in _histories(catalog, 12):
        full = khop_scores(catalog, _fresh(history), 2)
        want = top_rows(np.where(in_pool, full, 0.0), gen.n_graph + 64)[: gen.n_graph]
        got = gen._graph(history)
        assert np.all(in_pool[got]) and not np.any(history.seen[got])
        assert got.shape == want.shape
        assert np.allclose(full[got], full[want], rtol=1e-12)
        assert np.array_equal(np.sort(got), np.sort(want)) or _near_ties(full, got, want)


def _fresh(history: UserHistory) -> UserHistory:
    """The same history without its cached levels (the full computation's path)."""
    out = UserHistory(n_movies=history.n_movies)
    for movie, rating in zip(history.items, history.ratings, strict=True):
        out.add(movie, rating)
    return out


def _near_ties(scores: np.ndarray, got: np.ndarray, want: np.ndarray) -> bool:
    """Rows only one side holds all score within round-off of the boundary."""
    differ = np.setxor1d(got, want)
    return bool(np.allclose(scores[differ], scores[want[-1]], rtol=1e-12))


def test_small_graphs_keep_the_full_computation(ml_world: SimulationWorld) -> None:
    """ml-latest-small is far below the gate: no pool, and the generator's graph candidates
    are exactly the full 2-hop computation's (the same rows in the same order)."""
    cat = ml_world.catalog
    assert cat.hop.bt.nnz < rp.POOLED_MIN_NNZ
    assert rp.reach_pool(cat.hop) is None
    gen = CandidateGenerator(cat, hops=2)
    for history in _histories(cat, 20):
        assert history.two_hops(cat.hop) is None
        want = top_rows(khop_scores(cat, _fresh(history), 2), gen.n_graph + 64)[: gen.n_graph]
        assert np.array_equal(gen._graph(history), want)
