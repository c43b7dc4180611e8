"""Item embeddings: shape, unit rows, reproducibility, training-only fit, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.importers.movielens import load_movielens
from tests.features.catalog_fixtures import tiny_catalog

BUNDLED = Path(__file__).resolve().parents[2] / "features/datasets/ml-latest-small"


@pytest.fixture(scope="module")
def ml_catalog() -> Catalog:
    return Catalog.from_batch(load_movielens(BUNDLED))


def test_shape_unit_rows_and_reproducible() -> None:
    cat = tiny_catalog()
    e1 = ItemEmbeddings.fit(cat, dim=3, seed=1, prior_weight=0.0)
    e2 = ItemEmbeddings.fit(cat, dim=3, seed=1, prior_weight=0.0)
    assert e1.vectors.shape == (8, 3) and e1.vectors.dtype == np.float32
    norms = np.linalg.norm(e1.vectors, axis=1)
    assert np.allclose(norms[:7], 1.0, atol=1e-5)
    assert norms[7] == 0.0  # m8: no ratings, no content edges (similar_to is not content)
    assert np.array_equal(e1.vectors, e2.vectors)
    assert e1.movie_keys.tolist() == cat.movie_keys.tolist()


def test_prior_columns_rank_popularity_and_mean_rating() -> None:
    cat = tiny_catalog()
    emb = ItemEmbeddings.fit(cat, dim=5, prior_weight=0.5)
    assert emb.vectors.shape == (8, 5)
    content = emb.vectors[:, :3]
    assert np.allclose(np.linalg.norm(content[:7], axis=1), 1.0, atol=1e-5)
    pop, quality = emb.vectors[:, 3], emb.vectors[:, 4]
    counts = np.bincount(cat.ratings["movie"].to_numpy(), minlength=cat.n_movies)
    # percentile ranks scaled into [-0.5, 0.5]: the order of the counts is kept exactly
    assert pop.min() >= -0.5 and pop.max() <= 0.5
    assert np.array_equal(np.argsort(pop, kind="stable"), np.argsort(counts, kind="stable"))
    assert quality.min() >= -0.5 and quality.max() <= 0.5


def test_only_the_ratings_given_are_used() -> None:
    cat = tiny_catalog()
    train = cat.ratings[cat.ratings["user"] != "u4"]
    base = ItemEmbeddings.fit(cat, train, dim=3)
    altered = cat.ratings.copy()
    altered.loc[altered["user"] == "u4", "rating"] = [0.5, 5.0]  # a test user's ratings change
    train2 = altered[altered["user"] != "u4"]
    assert np.allclose(base.vectors, ItemEmbeddings.fit(cat, train2, dim=3).vectors)
    assert not np.allclose(base.vectors, ItemEmbeddings.fit(cat, altered, dim=3).vectors)


def test_related_movies_are_closer_than_unrelated(ml_catalog: Catalog) -> None:
    emb = ItemEmbeddings.fit(ml_catalog, dim=32)
    v = emb.vectors
    toy1, toy2, toy3 = ml_catalog.index_of(["1", "3114", "78499"])  # the Toy Story films
    sims = v @ v[toy1]
    assert sims[toy2] > np.quantile(sims, 0.99)
    assert sims[toy3] > np.quantile(sims, 0.95)


def test_save_load_round_trip(tmp_path: Path) -> None:
    cat = tiny_catalog()
    emb = ItemEmbeddings.fit(cat, dim=3)
    emb.save(tmp_path / "emb.npz")
    back = ItemEmbeddings.load(tmp_path / "emb.npz")
    assert np.array_equal(back.vectors, emb.vectors)
    back.check_catalog(cat)
    assert not list(tmp_path.glob("*.tmp*"))


def test_embeddings_for_another_catalog_are_refused(ml_catalog: Catalog) -> None:
    emb = ItemEmbeddings.fit(tiny_catalog(), dim=3)
    with pytest.raises(
        ValueError, match="embeddings cover 8 movies that do not match the catalog's 9742"
    ):
        emb.check_catalog(ml_catalog)


def test_bad_dim() -> None:
    with pytest.raises(ValueError, match="embedding dim must exceed the 2 prior columns, got 2"):
        ItemEmbeddings.fit(tiny_catalog(), dim=2)
    with pytest.raises(ValueError, match="embedding dim must exceed the 0 prior columns, got 0"):
        ItemEmbeddings.fit(tiny_catalog(), dim=0, prior_weight=0.0)
