"""Catalog: keys <-> rows, genres, popularity, ratings order, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from features.catalog import Catalog
from features.graph.schema import DEFAULT_HOP_WEIGHTS, EdgeKind
from features.importers.movielens import load_movielens
from features.npz import open_arrays
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


def test_columns_of_one_movie_are_left_out_of_the_hop_operator() -> None:
    """Genre c holds only m7: a column that pairs a movie with itself adds nothing to any path
    between two movies, so the operator keeps a, b, p1, p2 and t1 only."""
    cat = tiny_catalog()
    assert cat.hop.bt.shape[0] == 5
    assert np.diff(cat.hop.bt.indptr).min() >= 2
    m7 = cat.index_of("m7")[0]
    assert cat.hop.self_weight[m7] == DEFAULT_HOP_WEIGHTS[EdgeKind.DIRECTED]  # p2 only


def test_a_file_saved_with_lone_columns_loads_the_lean_operator(tmp_path: Path) -> None:
    """Catalogs saved before lone columns were dropped still hold them; loading drops them and
    gives the operator a fresh build gives, array for array."""
    cat = tiny_catalog()
    lone = sp.csr_matrix(np.eye(cat.n_movies)[:, [6]])  # one extra column holding m7 alone
    old_bw = sp.csr_matrix(sp.hstack([cat.hop.bw, 0.05 * lone]))
    old_bt = sp.csr_matrix(sp.vstack([cat.hop.bt, lone.T]))
    with open_arrays(cat.save(tmp_path / "cat.npz")) as z:
        arrays = {name: np.array(z[name]) for name in z.files}
    for prefix, m in (("bw", old_bw), ("bt", old_bt)):
        arrays.update({f"{prefix}_data": m.data, f"{prefix}_indices": m.indices})
        arrays.update({f"{prefix}_indptr": m.indptr, f"{prefix}_shape": np.array(m.shape)})
    arrays["self_weight"] = np.asarray(old_bw.sum(axis=1)).ravel()
    np.savez(tmp_path / "old.npz", **arrays)
    back = Catalog.load(tmp_path / "old.npz")
    for name in ("bw", "bt"):
        a, b = getattr(back.hop, name), getattr(cat.hop, name)
        assert a.shape == b.shape and (a != b).nnz == 0
    assert np.array_equal(back.hop.self_weight, cat.hop.self_weight)
