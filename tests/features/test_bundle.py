"""The ranking bundle: what the service loads from a trained world, and nothing of the
simulator; its named arrays and settings survive a save and a load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.bundle import RankingBundle
from features.embeddings import ItemEmbeddings
from features.state import LEGACY_POOL_HOPS, POOL_HOPS
from tests.features.catalog_fixtures import tiny_catalog


def _bundle(**kw: object) -> RankingBundle:
    catalog = tiny_catalog()
    return RankingBundle(catalog, ItemEmbeddings.fit(catalog, dim=4), **kw)  # type: ignore[arg-type]


def test_save_and_load_keep_everything(tmp_path: Path) -> None:
    scores = np.linspace(0.0, 1.0, tiny_catalog().n_movies)
    bundle = _bundle(pool_hops=(2, 3), artefacts={"retriever_scores": scores})
    loaded = RankingBundle.load(bundle.save(tmp_path / "b"))
    assert loaded.pool_hops == (2, 3)
    assert np.array_equal(loaded.catalog.movie_keys, bundle.catalog.movie_keys)
    assert np.array_equal(loaded.embeddings.vectors, bundle.embeddings.vectors)
    assert set(loaded.artefacts) == {"retriever_scores"}
    assert np.array_equal(loaded.artefacts["retriever_scores"], scores)


def test_a_world_folder_gives_its_pool_hops(tmp_path: Path) -> None:
    """A world saved by env.world has catalog.npz, embeddings.npz and world.json (settings);
    worlds saved before pool_hops was a setting were trained with the legacy hops."""
    folder = _bundle().save(tmp_path / "w")
    (folder / "ranking.json").unlink()
    assert RankingBundle.load(folder).pool_hops == LEGACY_POOL_HOPS
    (folder / "world.json").write_text(json.dumps({"settings": {"pool_hops": list(POOL_HOPS)}}))
    assert RankingBundle.load(folder).pool_hops == POOL_HOPS


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"catalog\.npz, embeddings\.npz"):
        RankingBundle.load(tmp_path)


def test_embeddings_must_fit_the_catalogue() -> None:
    catalog = tiny_catalog()
    other = ItemEmbeddings(np.zeros((1, 4), dtype=np.float32), np.array(["x"]))
    with pytest.raises(ValueError, match="do not match"):
        RankingBundle(catalog, other)


# ---- the mapped layout, on ml-latest-small ------------------------------------------------

BUNDLED = Path(__file__).resolve().parents[2] / "features/datasets/ml-latest-small"


@pytest.fixture(scope="module")
def movielens(tmp_path_factory: pytest.TempPathFactory) -> tuple[RankingBundle, Path, object]:
    """A bundle of ml-latest-small with every part (blend retriever, slate features), its
    saved folder, and a store holding the same graph (users' histories)."""
    from features.blend import BlendRetriever
    from features.catalog import Catalog
    from features.graph.local import LocalGraphStore
    from features.importers.movielens import load_movielens
    from features.slate_features import SLATE_FEATURES

    batch = load_movielens(BUNDLED)
    catalog = Catalog.from_batch(batch)
    bundle = RankingBundle(
        catalog,
        ItemEmbeddings.fit(catalog, dim=16),
        retriever=BlendRetriever.fit(catalog.ratings, catalog.n_movies),
        slate_features=SLATE_FEATURES,
        artefacts={"retriever_scores": np.linspace(0.0, 1.0, catalog.n_movies)},
    )
    store = LocalGraphStore()
    store.upsert(batch)
    return bundle, bundle.save(tmp_path_factory.mktemp("ml") / "world"), store


def _slates(bundle: RankingBundle, store: object, users: list[str]) -> list[tuple[object, ...]]:
    """Every user's slate by a fixed linear actor: (indices, scores, state, action)."""
    from features.ranker import Ranker

    ranker = Ranker(bundle)
    w = np.random.default_rng(0).standard_normal((ranker.observation_size, ranker.action_size))

    def act(state: np.ndarray) -> np.ndarray:
        return np.tanh(state @ w).astype(np.float32)

    out = []
    for user in users:
        ranked = ranker.rank(store, user, act, 10)  # type: ignore[arg-type]
        assert ranked is not None and ranked.slate is not None
        s = ranked.slate
        out.append((s.indices.tolist(), s.scores.tolist(), ranked.state.tolist(), s.log_propensity))
    return out


def test_a_loaded_bundle_is_mapped_and_ranks_as_the_one_in_memory(movielens: tuple) -> None:
    """Loaded from its folders, every large array is a read-only file mapping (shared between
    workers through the page cache), and the rankings are the in-memory bundle's, bit for bit."""
    from features.npz import is_mapped

    bundle, folder, store = movielens
    loaded = RankingBundle.load(folder)
    retriever = loaded.retriever
    assert retriever is not None and hasattr(retriever, "ease")
    for array in (
        loaded.catalog.movie_keys,
        loaded.catalog.hop.bw.data,
        loaded.catalog.hop.bt.indices,
        loaded.catalog.genres.indices,
        loaded.embeddings.vectors,
        retriever.ease.weights,
        retriever.als.item_factors,
        retriever.popularity.timestamps,
        loaded.artefacts["retriever_scores"],
        *(loaded.pool_tables or ()),
    ):
        assert is_mapped(array) and not array.flags.writeable
    users = [str(u) for u in bundle.catalog.users[::20]]
    assert len(users) >= 30
    assert _slates(loaded, store, users) == _slates(bundle, store, users)


def test_the_service_side_load_never_reads_the_ratings(
    movielens: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranking needs no user's ratings from the catalogue (histories come from the store): a
    loaded bundle reads neither the ratings' user keys nor their frame, even with the quality
    slate feature (which reads the movie and rating columns alone)."""
    from features import npz

    _, folder, store = movielens
    opened: list[str] = []
    real = npz.read_npy
    monkeypatch.setattr(npz, "read_npy", lambda path: opened.append(path.name) or real(path))
    loaded = RankingBundle.load(folder)
    assert loaded.slate_features
    _slates(loaded, store, ["1", "2"])
    assert "r_user.npy" not in opened and "r_timestamp.npy" not in opened
    assert "ratings" not in vars(loaded.catalog)  # the frame was never built
    # the simulator still gets them all
    assert len(loaded.catalog.ratings) == 100_836
    assert "r_user.npy" in opened


def test_a_bundle_saved_as_npz_archives_still_loads_and_ranks_the_same(
    movielens: tuple, tmp_path: Path
) -> None:
    """Bundles saved before the folders (catalog.npz, embeddings.npz, retriever.npz,
    ranking.npz) load, read into memory, and rank as before."""
    from features.npz import is_mapped, open_arrays

    bundle, folder, store = movielens
    old = tmp_path / "old"
    old.mkdir()
    for name in ("catalog", "embeddings", "retriever", "ranking"):
        with open_arrays(folder / name) as z:
            np.savez(old / f"{name}.npz", **{n: np.array(z[n]) for n in z.files})
    (old / "ranking.json").write_text((folder / "ranking.json").read_text())
    loaded = RankingBundle.load(old)
    assert not is_mapped(loaded.embeddings.vectors)
    users = [str(u) for u in bundle.catalog.users[::40]]
    assert _slates(loaded, store, users) == _slates(bundle, store, users)


def test_saving_over_a_mapped_bundle_leaves_the_mapped_arrays_intact(
    movielens: tuple, tmp_path: Path
) -> None:
    """A save writes new files and swaps folders, never rewriting a file a worker has mapped:
    a bundle loaded before the save keeps its values."""
    bundle, _, _ = movielens
    folder = bundle.save(tmp_path / "w")
    before = RankingBundle.load(folder)
    vectors = np.array(before.embeddings.vectors)
    zeroed = ItemEmbeddings(np.zeros_like(vectors), bundle.embeddings.movie_keys)
    RankingBundle(bundle.catalog, zeroed, retriever=bundle.retriever).save(folder)
    assert np.array_equal(before.embeddings.vectors, vectors)
    assert not RankingBundle.load(folder).embeddings.vectors.any()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_the_state_pool_tables_are_saved_mapped_and_give_the_same_states(
    movielens: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The state builder's graph-pool tables (H^h E, H^h 1) are saved with the bundle and
    mapped on load (shared between workers, not rebuilt by each): equal to the computed ones
    bit for bit, and so the same states and slates. A bundle saved before them, or with tables
    for other pool hops, computes them as before (logged)."""
    import shutil

    from features.bundle import POOL_TABLES_FILE
    from features.ranker import Ranker
    from features.state import pool_tables

    bundle, folder, store = movielens
    loaded = RankingBundle.load(folder)
    assert loaded.pool_tables is not None
    computed = pool_tables(bundle.catalog, bundle.embeddings.vectors, bundle.pool_hops)
    for mapped, want in zip(loaded.pool_tables, computed, strict=True):
        assert np.array_equal(mapped, want)
    assert Ranker(loaded).builder._hop_emb is loaded.pool_tables[0]
    users = [str(u) for u in bundle.catalog.users[::25]]
    want_slates = _slates(bundle, store, users)
    older = tmp_path / "older"
    shutil.copytree(folder, older)
    shutil.rmtree(older / POOL_TABLES_FILE)
    with caplog.at_level("INFO", logger="features.bundle"):
        assert RankingBundle.load(older).pool_tables is None
    assert "no saved pool tables" in caplog.text
    assert _slates(RankingBundle.load(older), store, users) == want_slates
    settings = json.loads((folder / "ranking.json").read_text())
    (older / "ranking.json").write_text(json.dumps({**settings, "pool_hops": [2, 3]}))
    RankingBundle.load(folder).save(older)  # tables for (1, 2) ...
    (older / "ranking.json").write_text(json.dumps({**settings, "pool_hops": [2, 3]}))
    with caplog.at_level("WARNING", logger="features.bundle"):
        assert RankingBundle.load(older).pool_tables is None  # ... not used for (2, 3)
    assert "not used" in caplog.text


def test_row_reader_reads_mapped_rows_from_the_file_bit_for_bit(tmp_path: Path) -> None:
    """The state's pool-table rows are read with preadv from the mapped .npy (a touched page
    of a mapping can make megabytes resident): the same values as indexing, for runs of
    consecutive rows and scattered ones, on any axis; in-memory arrays are indexed."""
    from features.npz import RowReader, read_npy, write_npy

    rng = np.random.default_rng(3)
    table = rng.standard_normal((2, 1000, 5))
    write_npy(tmp_path / "t.npy", table)
    mapped = read_npy(tmp_path / "t.npy")
    for axis in (0, 1, 2):
        reader = RowReader(mapped, axis)
        assert reader.reads_file
        n = table.shape[axis]
        for rows in (
            [],
            [0],
            [n - 1],
            [*range(min(3, n)), n - 1],
            np.unique(rng.integers(0, n, 7)),
        ):
            got = reader.take(np.asarray(rows, dtype=np.int64))
            assert np.array_equal(got, np.take(table, rows, axis=axis))
            assert got.flags.writeable and not isinstance(got, np.memmap)
    with pytest.raises(IndexError):
        RowReader(mapped, 1).take(np.array([1000]))
    assert not RowReader(table, 1).reads_file and not RowReader(mapped[:, 3:], 1).reads_file
    assert np.array_equal(RowReader(mapped[:, 3:], 1).take(np.array([2])), table[:, [5]])


def test_the_state_reads_pool_rows_from_the_saved_file(movielens: tuple) -> None:
    from features.ranker import Ranker

    _, folder, _ = movielens
    assert Ranker(RankingBundle.load(folder)).builder._emb_rows.reads_file


def test_mapped_row_readers_pickle_and_ease_reads_its_rows_from_the_file(
    movielens: tuple,
) -> None:
    """EASE's weight rows come from the file too; a pickled retriever (Ray ships worlds by
    pickle) scores the same."""
    import pickle

    from features.state import UserHistory

    _, folder, _ = movielens
    ease = RankingBundle.load(folder).retriever.ease  # type: ignore[union-attr]
    assert ease._weight_rows.reads_file
    n = ease.n_movies
    history = UserHistory.from_ratings(n, ease.rows[[3, 40, 7, 900]], [5.0, 3.0, 4.0, 1.0])
    want = ease.scores(history)
    copy = pickle.loads(pickle.dumps(ease))
    assert np.array_equal(copy.scores(history), want)
    reader = pickle.loads(pickle.dumps(ease._weight_rows))
    assert np.array_equal(reader.take(np.array([5, 3])), np.asarray(ease.weights)[[5, 3]])


def test_a_mapped_ranker_reads_embedding_rows_from_the_file_and_ranks_as_before(
    movielens: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ranker and its state builder read the embedding rows they need with preadv
    (features.npz.RowReader), not through the mapping, once the table is large (500K movies;
    here the threshold is lowered): the slates equal ranking the cached candidates against the
    whole mapped matrix (the path before), bit for bit. A small table is read through its
    mapping (a preadv per request would cost more than its pages)."""
    import features.state
    from features.ranker import Ranker
    from features.ranking import rank

    _, folder, store = movielens
    assert not Ranker(RankingBundle.load(folder)).builder.vector_rows.reads_file
    monkeypatch.setattr(features.state, "VECTOR_FILE_MIN_BYTES", 0)
    ranker = Ranker(RankingBundle.load(folder))
    assert ranker.builder.vector_rows.reads_file
    w = np.random.default_rng(1).standard_normal((ranker.observation_size, ranker.action_size))
    users = [str(u) for u in ranker.bundle.catalog.users[::25]]
    for user in users:
        ranked = ranker.rank(store, user, lambda s: np.tanh(s @ w).astype(np.float32), 10)
        assert ranked is not None and ranked.slate is not None
        entry = ranker._cache[user].value
        assert entry is not None
        _, cands, base, extras, residual = entry
        want = rank(ranked.action, cands, ranker.vectors, 10, 0.0, None, base, extras, residual)
        got = ranked.slate
        assert got.indices.dtype == want.indices.dtype
        assert got.indices.tolist() == want.indices.tolist(), user
        assert got.scores.tobytes() == want.scores.tobytes(), user
        assert got.log_propensity == want.log_propensity
        rows = np.asarray(cands[:50], dtype=np.int64)
        expected = np.asarray(ranker.vectors[rows], dtype=np.float64)
        assert ranker.builder._emb(rows).tobytes() == expected.tobytes()
