"""The offline protocols on a tiny hand-made ratings log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from agent.baselines.ease import EASE
from agent.evaluation.offline import (
    evaluate_drr,
    evaluate_full_ranking,
    oracle_scorer,
    popularity_scorer,
    random_scorer,
    time_split,
)


def _log() -> pd.DataFrame:
    rows = []
    # user a rates m1..m5 in time order; user b rates m1, m2, m6 ... m10
    for t, (m, r) in enumerate([("m1", 5), ("m2", 4), ("m3", 2), ("m4", 5), ("m5", 1)]):
        rows.append(("a", m, r, t))
    for t, m in enumerate(["m1", "m2", "m6", "m7", "m8", "m9", "m10"]):
        rows.append(("b", m, 4.0, t))
    return pd.DataFrame(rows, columns=["src", "dst", "rating", "timestamp"])


def test_time_split_keeps_the_earliest_80_percent_per_user() -> None:
    split = time_split(_log())
    a = int(np.where(split.user_keys == "a")[0][0])
    train_a = split.train[split.train.user == a]
    assert sorted(split.item_keys[train_a.item]) == ["m1", "m2", "m3", "m4"]
    assert list(split.item_keys[split.test[split.test.user == a].item]) == ["m5"]


def test_bad_split_fraction() -> None:
    with pytest.raises(ValueError, match="train_fraction"):
        time_split(_log(), 1.0)
    with pytest.raises(ValueError, match="lacks columns"):
        time_split(_log().drop(columns=["timestamp"]), 0.8)


def test_drr_ranks_only_test_items_and_uses_rating_relevance() -> None:
    split = time_split(_log(), 0.5)
    # user a's test part: m3 (2), m4 (5), m5 (1) -> fewer than k=10 test items, so k=2 here
    score_by_key = {"m4": 3.0, "m3": 2.0, "m5": 1.0}
    scores = np.array([score_by_key.get(k, 0.0) for k in split.item_keys])
    result = evaluate_drr(lambda users: np.tile(scores, (len(users), 1)), split, k=2)
    # a: ranked m4 (relevant), m3 (not) -> P@2 = 0.5, NDCG = 1 (one relevant, found first)
    # b: test items m7..m10 all rated 4 -> any order gives P@2 = 1, NDCG = 1
    assert result["users"] == 2
    assert result["precision"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["ndcg"] == pytest.approx(1.0)


def test_full_ranking_excludes_train_items() -> None:
    split = time_split(_log())
    pop = popularity_scorer(split)
    result = evaluate_full_ranking(pop, split, k=2)
    assert 0.0 <= result["precision"] <= 1.0
    assert result["users"] == 2


def test_ease_recovers_co_occurrence() -> None:
    # items 0 and 1 always co-occur; item 2 never with them
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=float))
    model = EASE(l2=1.0).fit(x)
    scores = model.scores(sp.csr_matrix(np.array([[1.0, 0.0, 0.0]])))
    assert scores[0, 1] > scores[0, 2]
    with pytest.raises(ValueError, match="l2 must be positive"):
        EASE(l2=0)


def test_oracle_is_the_ceiling_and_random_stays_in_range() -> None:
    split = time_split(_log(), 0.5)
    oracle = evaluate_drr(oracle_scorer(split), split, k=2)
    # a: test m3 (2), m4 (5), m5 (1): m4 first -> P@2 = 0.5, NDCG 1; b: all relevant
    assert oracle["precision"] == pytest.approx(0.75)
    assert oracle["ndcg"] == pytest.approx(1.0)
    full = evaluate_full_ranking(oracle_scorer(split), split, k=2)
    assert full["precision"] == pytest.approx(1.0)  # both users have >= 2 test items
    rand = random_scorer(split, seed=1)(np.array([0, 1]))
    assert rand.shape == (2, split.n_items)
    assert np.all((rand >= 0) & (rand < 1))
