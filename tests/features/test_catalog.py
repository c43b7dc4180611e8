"""Catalog: keys <-> rows, genres, popularity, ratings order, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.catalog import Catalog
from features.importers.movielens import load_movielens
from tests.features.catalog_fixtures import RATINGS, tiny_catalog, tiny_frames

BUNDLED = Path(__file__).resolve().parents[2] / "features/datasets/ml-latest-small"


def test_keys_genres_popularity() -> None:
    cat = tiny_catalog()
    assert cat.movie_keys.tolist() == [f"m{i}" for i in range(1, 9)]
    assert cat.genre_keys.tolist() == ["a", "b", "c"]
    assert cat.genre_names.tolist() == ["Alpha", "Beta", "Gamma"]
    m3 = cat.index_of("m3")[0]
    assert cat.genres[m3].toarray().ravel().tolist() == [1.0, 1.0, 0.0]
    counts = {k: sum(1 for _, m, _, _ in RATINGS if m == k) for k in cat.movie_keys}
    assert cat.popularity.tolist() == list(counts.values())
    assert cat.users.tolist() == ["u1", "u2", "u3", "u4"]
    u3 = cat.ratings[cat.ratings["user"] == "u3"]
    assert cat.movie_keys[u3["movie"]].tolist() == ["m2", "m4", "m7", "m1"]  # by timestamp


def test_genres_from_the_movie_column_when_no_edges() -> None:
    frames = tiny_frames()
    frames["edges"] = {}
    cat = Catalog.from_frames(**frames)  # type: ignore[arg-type]
    assert cat.genre_names.tolist() == ["Alpha", "Beta", "Gamma"]
    assert cat.genres.sum() == 8


def test_unknown_key_is_named() -> None:
    with pytest.raises(KeyError, match="no movie with key 'zz' in the catalog"):
        tiny_catalog().index_of(["m1", "zz"])


def test_save_load_round_trip(tmp_path: Path) -> None:
    cat = tiny_catalog()
    cat.save(tmp_path / "cat.npz")
    back = Catalog.load(tmp_path / "cat.npz")
    assert back.movie_keys.tolist() == cat.movie_keys.tolist()
    assert (back.genres != cat.genres).nnz == 0
    assert back.ratings.equals(cat.ratings)
    x = np.arange(cat.n_movies, dtype=np.float64)
    assert np.allclose(back.hop.apply(x), cat.hop.apply(x))


def test_movielens_catalog() -> None:
    cat = Catalog.from_batch(load_movielens(BUNDLED))
    assert cat.n_movies == 9742 and len(cat.ratings) == 100836 and len(cat.users) == 610
    assert cat.titles[cat.index_of("1")[0]] == "Toy Story"
    assert int(cat.popularity.sum()) == 100836
