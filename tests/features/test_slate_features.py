"""Slate features: quality and variety per candidate, how the action weighs them, and how
bundles and rankers carry them (features.slate_features, features.ranking)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.bundle import RankingBundle
from features.embeddings import ItemEmbeddings
from features.ranker import Ranker
from features.ranking import candidate_scores, rank
from features.retrieval import ItemBias, zscores
from features.slate_features import RECENT, SLATE_FEATURES, SlateFeatures
from features.state import UserHistory
from tests.features.catalog_fixtures import tiny_catalog


def _features(weight: float = 1.0) -> SlateFeatures:
    catalog = tiny_catalog()
    return SlateFeatures.fit(catalog, catalog.ratings, SLATE_FEATURES, weight)


def _rows(*keys: str) -> np.ndarray:
    return tiny_catalog().index_of(list(keys))


def test_quality_is_the_standardised_item_bias_times_the_weight() -> None:
    catalog = tiny_catalog()
    feats = _features(weight=4.0)
    cands = _rows("m1", "m2", "m3", "m6")
    got = feats.compute(UserHistory(catalog.n_movies), cands)
    bias = ItemBias.fit(catalog.ratings, catalog.n_movies).bias
    assert got.shape == (4, 2)
    assert np.allclose(got[:, 0], 4.0 * zscores(bias[cands]))


def test_variety_moves_away_from_the_last_movies_genres() -> None:
    """Genres: a (m1 m2 m3 m4), b (m3 m5 m6), c (m7). After m1, m2, m4 (all a) a genre-a
    candidate has the least variety, b and c ones the most; older history does not count."""
    catalog = tiny_catalog()
    history = UserHistory.from_ratings(catalog.n_movies, _rows("m7", "m1", "m2", "m4"), [4] * 4)
    assert RECENT == 3  # m7 (genre c) is older than the last three
    cands = _rows("m3", "m5", "m7")
    variety = _features().compute(history, cands)[:, 1]
    assert variety[1] > variety[0]  # b shares nothing with a; m3 is a|b
    assert variety[1] == pytest.approx(variety[2])  # nor does c
    assert np.isclose(variety.mean(), 0.0)


def test_no_history_gives_no_variety_signal() -> None:
    catalog = tiny_catalog()
    got = _features().compute(UserHistory(catalog.n_movies), _rows("m1", "m5", "m7"))
    assert np.array_equal(got[:, 1], np.zeros(3))


def test_only_the_named_features_in_their_order() -> None:
    catalog = tiny_catalog()
    feats = SlateFeatures.fit(catalog, catalog.ratings, ("variety",))
    history = UserHistory.from_ratings(catalog.n_movies, _rows("m1"), [5.0])
    assert feats.dim == 1
    both = _features().compute(history, _rows("m2", "m7"))
    assert np.array_equal(feats.compute(history, _rows("m2", "m7"))[:, 0], both[:, 1])


@pytest.mark.parametrize(
    ("names", "quality", "message"),
    [
        (("quality", "novelty"), 8, r"unknown slate features \['novelty'\]"),
        (("quality",), 3, "quality covers 3 movies, genres 8"),
    ],
)
def test_bad_features(names: tuple[str, ...], quality: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlateFeatures(names, np.zeros(quality), np.zeros((8, 3), dtype=np.float32))


def test_the_action_weighs_the_features_after_the_embedding() -> None:
    emb = np.zeros((5, 2), dtype=np.float32)
    extras = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
    cands = np.array([0, 3, 4])
    _, scores = candidate_scores([0, 0, 2.0, 0.5], cands, emb, base=[0.1, 0.2, 0.3], extras=extras)
    assert np.allclose(scores, [0.1 + 0.5, 0.2 + 2.0, 0.3 - 0.5])
    assert rank([0, 0, 2.0, 0.5], cands, emb, 1, extras=extras).indices.tolist() == [3]
    assert rank([0, 0, 0, 0], cands, emb, 1, base=[1, 0, 0], extras=extras).indices.tolist() == [0]


@pytest.mark.parametrize(
    ("action", "extras", "message"),
    [
        (
            np.zeros(2),
            np.zeros((3, 2)),
            "action has dimension 2 but embeddings have dimension 2 and there are 2 slate features",
        ),
        (np.zeros(4), np.zeros((2, 2)), r"extras must be a \(candidates, features\) array"),
        (np.zeros(4), np.zeros(3), r"extras must be a \(candidates, features\) array"),
        (np.zeros(4), np.array([[0, 1], [np.nan, 0], [0, 0]]), "slate features contain NaN"),
        (np.zeros(3), None, "action has dimension 3 but embeddings have dimension 2$"),
    ],
)
def test_bad_extras(action: np.ndarray, extras: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        candidate_scores(action, [0, 1, 2], np.zeros((3, 2), dtype=np.float32), extras=extras)


def _bundle(tmp_path: Path, **kw: object) -> Path:
    catalog = tiny_catalog()
    bundle = RankingBundle(catalog, ItemEmbeddings.fit(catalog, dim=4), **kw)  # type: ignore[arg-type]
    return bundle.save(tmp_path / "b")


def test_bundles_carry_their_features_and_old_ones_have_none(tmp_path: Path) -> None:
    folder = _bundle(tmp_path, slate_features=SLATE_FEATURES)
    loaded = RankingBundle.load(folder)
    assert loaded.slate_features == SLATE_FEATURES
    assert Ranker(loaded).action_size == 4 + 2
    settings = json.loads((folder / "ranking.json").read_text())
    del settings["slate_features"]
    (folder / "ranking.json").write_text(json.dumps(settings))
    old = RankingBundle.load(folder)
    assert old.slate_features == () and Ranker(old).action_size == 4


def test_the_reach_scales_the_features_the_ranker_computes(tmp_path: Path) -> None:
    """A bundle's reach is what a feature weight of 1 moves, as a share of the base: the
    ranker's features are the full-reach ones times it; bundles saved before it have reach 1."""
    full = Ranker(RankingBundle.load(_bundle(tmp_path / "full", slate_features=SLATE_FEATURES)))
    folder = _bundle(tmp_path / "short", slate_features=SLATE_FEATURES, slate_feature_reach=0.125)
    short = Ranker(RankingBundle.load(folder))
    assert RankingBundle.load(folder).slate_feature_reach == 0.125
    assert full.slate_features is not None and short.slate_features is not None
    history = UserHistory.from_ratings(8, _rows("m1", "m2"), [5.0, 2.0])
    cands = _rows("m3", "m4", "m6", "m7")
    wide = full.slate_features.compute(history, cands)
    assert np.abs(wide).max() > 0
    assert np.allclose(short.slate_features.compute(history, cands), 0.125 * wide)
    settings = json.loads((folder / "ranking.json").read_text())
    del settings["slate_feature_reach"]
    (folder / "ranking.json").write_text(json.dumps(settings))
    assert RankingBundle.load(folder).slate_feature_reach == 1.0
