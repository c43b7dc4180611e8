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
