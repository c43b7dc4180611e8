"""Top-k ranking metrics on logged data: Precision@k, Recall@k, NDCG@k (binary relevance)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(ranked: Sequence[int], k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if len(set(ranked[:k])) != len(ranked[:k]):
        raise ValueError("the ranked list repeats an item")


def precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Share of the top k that is relevant (k in the denominator, even if fewer are ranked)."""
    _check(ranked, k)
    return sum(1 for i in ranked[:k] if i in relevant) / k


def recall_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Share of the relevant items found in the top k (0 when nothing is relevant)."""
    _check(ranked, k)
    if not relevant:
        return 0.0
    return sum(1 for i in ranked[:k] if i in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """DCG of the top k over the ideal DCG for min(k, |relevant|) hits; log2 discounts."""
    _check(ranked, k)
    if not relevant:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.array([1.0 if i in relevant else 0.0 for i in ranked[:k]])
    dcg = float((gains * discounts[: len(gains)]).sum())
    ideal = float(discounts[: min(k, len(relevant))].sum())
    return dcg / ideal
