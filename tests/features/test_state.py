"""StateBuilder: layout, each block against its definition, and the caches staying exact."""

from __future__ import annotations

import numpy as np
import pytest

from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.state import LEGACY_POOL_HOPS, POOL_HOPS, StateBuilder, UserHistory
from tests.features.catalog_fixtures import tiny_catalog


@pytest.fixture
def setup() -> tuple[Catalog, ItemEmbeddings, StateBuilder]:
    cat = tiny_catalog()
    emb = ItemEmbeddings.fit(cat, dim=3)
    return cat, emb, StateBuilder(cat, emb, n_recent=2)


def test_layout_and_size(setup: tuple[Catalog, ItemEmbeddings, StateBuilder]) -> None:
    _, _, sb = setup
    assert sb.observation_size == 4 * 3 + 3 + 2
    assert [sb.layout[k].stop - sb.layout[k].start for k in sb.layout] == [3, 3, 3, 3, 3, 2]


@pytest.mark.parametrize("pool_hops", [POOL_HOPS, LEGACY_POOL_HOPS, (3,)])
def test_blocks_follow_their_definitions(
    setup: tuple[Catalog, ItemEmbeddings, StateBuilder], pool_hops: tuple[int, ...]
) -> None:
    cat, emb, _ = setup
    sb = StateBuilder(cat, emb, n_recent=2, pool_hops=pool_hops)
    rows = cat.index_of(["m1", "m5", "m2", "m4"])
    ratings = [5.0, 2.0, 4.0, 4.5]
    hist = UserHistory.from_ratings(cat.n_movies, rows, ratings)
    s = sb.build(hist)
    assert s.dtype == np.float32 and s.shape == (sb.observation_size,)
    e = emb.vectors.astype(np.float64)
    w = (np.array(ratings) - 3) / 2
    user = (w[:, None] * e[rows]).sum(axis=0) / 4
    recent = e[cat.index_of(["m2", "m4"])].mean(axis=0)  # last 2 positives
    g = cat.genres.toarray()
    genres = (w[:, None] * g[rows]).sum(axis=0) / 4
    assert np.allclose(s[sb.layout["user"]], user, atol=1e-6)
    assert np.allclose(s[sb.layout["recent"]], recent, atol=1e-6)
    assert np.allclose(s[sb.layout["product"]], user * recent, atol=1e-6)
    assert np.allclose(s[sb.layout["genres"]], genres, atol=1e-6)
    assert np.allclose(s[sb.layout["stats"]], [np.log1p(4) / np.log1p(1000), 3 / 4], atol=1e-6)
    # Graph block: the pooled hops from the positives, seen movies dropped, each normalised.
    seed = np.zeros(cat.n_movies)
    seed[cat.index_of(["m1", "m2", "m4"])] = 1.0
    h = cat.hop.apply(np.eye(cat.n_movies))
    pools = []
    for k in pool_hops:
        c = np.linalg.matrix_power(h, k) @ seed
        c[rows] = 0.0
        pools.append(c @ e / c.sum())
    assert np.allclose(s[sb.layout["graph"]], np.mean(pools, axis=0), atol=1e-5)


def test_incremental_history_matches_fresh(
    setup: tuple[Catalog, ItemEmbeddings, StateBuilder],
) -> None:
    cat, _, sb = setup
    hist = UserHistory(cat.n_movies)
    for key, rating in [("m3", 4.0), ("m6", 1.5), ("m7", 5.0), ("m8", 3.0), ("m2", 4.5)]:
        hist.add(int(cat.index_of(key)[0]), rating)
        fresh = UserHistory.from_ratings(cat.n_movies, hist.items, hist.ratings)
        assert np.array_equal(sb.build(hist), sb.build(fresh))


def test_empty_history_is_all_zero(setup: tuple[Catalog, ItemEmbeddings, StateBuilder]) -> None:
    cat, _, sb = setup
    assert not sb.build(UserHistory(cat.n_movies)).any()


def test_bad_inputs(setup: tuple[Catalog, ItemEmbeddings, StateBuilder]) -> None:
    cat, emb, _ = setup
    with pytest.raises(ValueError, match="n_recent must be positive, got 0"):
        StateBuilder(cat, emb, n_recent=0)
    for bad in [(), (0, 1), (4,)]:
        with pytest.raises(ValueError, match="pool_hops must be hops from 1 to 3"):
            StateBuilder(cat, emb, pool_hops=bad)
    with pytest.raises(ValueError, match=r"movie row 8 out of range \[0, 8\)"):
        UserHistory(cat.n_movies).add(8, 4.0)


def test_the_builder_keeps_no_copy_of_the_embeddings(
    setup: tuple[Catalog, ItemEmbeddings, StateBuilder],
) -> None:
    """A service worker's state builder reads the bundle's float32 vectors (mapped, shared)
    rather than holding a float64 copy, and genres as one byte each: at 500K movies those
    copies were 61 + 76 MB of every worker's own memory."""
    catalog, emb, builder = setup
    assert builder.vectors is emb.vectors
    assert builder.genres.dtype == np.uint8
    assert np.array_equal(builder.genres, catalog.genres.toarray())
    assert not [
        k
        for k, v in vars(builder).items()
        if isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == emb.vectors.shape
    ]
