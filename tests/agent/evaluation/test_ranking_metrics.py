"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from agent.evaluation.ranking_metrics import ndcg_at_k, precision_at_k, recall_at_k


def test_precision_and_recall_by_hand() -> None:
    ranked = [5, 1, 9, 2]
    relevant = {1, 2, 7}
    assert precision_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)
    assert precision_at_k(ranked, relevant, 4) == pytest.approx(2 / 4)
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)


def test_ndcg_by_hand() -> None:
    # hits at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal for 2 hits = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([5, 1, 9, 2], {1, 2}, 4) == pytest.approx(expected)
    assert ndcg_at_k([1, 2, 3], {1, 2}, 3) == pytest.approx(1.0)
    assert ndcg_at_k([3, 4], set(), 2) == 0.0


@pytest.mark.parametrize(
    ("ranked", "k", "message"),
    [([1, 2], 0, "k must be positive"), ([1, 1, 2], 3, "repeats an item")],
)
def test_bad_inputs(ranked: list[int], k: int, message: str) -> None:
    for metric in (precision_at_k, recall_at_k, ndcg_at_k):
        with pytest.raises(ValueError, match=message):
            metric(ranked, {1}, k)
