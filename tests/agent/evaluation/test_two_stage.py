"""Two-stage scorers: the retriever picks the set, the reranker orders it, blends standardise."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from agent.evaluation.offline import Scorer
from agent.evaluation.two_stage import rerank_top_n, zscore_blend

# 2 users x 6 items; user 0 rated item 0 in train, user 1 rated nothing.
RATED = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=float))
RETRIEVER = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])  # prefers low item ids
RERANKER = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # prefers high item ids


def _tile(row: np.ndarray) -> Scorer:
    return lambda users: np.tile(row, (len(users), 1))


def _order(scores: np.ndarray) -> list[int]:
    return np.argsort(-scores, kind="stable").tolist()


def test_rerank_orders_the_retrieved_set_then_keeps_retriever_order() -> None:
    score = rerank_top_n(_tile(RETRIEVER), _tile(RERANKER), 3, RATED)
    out = score(np.array([0, 1]))
    # user 0: item 0 is rated, so the top 3 unrated by the retriever are 1, 2, 3
    assert _order(out[0])[:5] == [3, 2, 1, 4, 5]
    assert out[0, 0] == -np.inf
    # user 1: top 3 are 0, 1, 2, reversed by the reranker; then 3, 4, 5 in retriever order
    assert _order(out[1]) == [2, 1, 0, 3, 4, 5]


def test_rerank_with_n_at_least_all_items_is_the_reranker() -> None:
    out = rerank_top_n(_tile(RETRIEVER), _tile(RERANKER), 100, RATED)(np.array([1]))
    assert _order(out[0]) == _order(RERANKER)


@pytest.mark.parametrize(
    ("n", "reranker", "error"),
    [
        (0, RERANKER, "n must be positive"),
        (-3, RERANKER, "n must be positive"),
        (2, np.array([0.0, np.nan, 0, 0, 0, 0]), "finite"),
        (2, np.array([0.0, 1e7, 0, 0, 0, 0]), "finite"),
        (2, np.zeros(5), "reranker returned shape"),
    ],
)
def test_rerank_refuses_bad_inputs(n: int, reranker: np.ndarray, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        rerank_top_n(_tile(RETRIEVER), _tile(reranker), n, RATED)(np.array([1]))


def test_retriever_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="scorer returned shape"):
        rerank_top_n(_tile(np.zeros(4)), _tile(RERANKER), 2, RATED)(np.array([1]))


def test_blend_is_scale_free_and_weighted() -> None:
    a, b = _tile(RETRIEVER), _tile(1000.0 * RERANKER)
    equal = zscore_blend({"a": a, "b": b}, {"a": 1.0, "b": 1.0}, RATED)(np.array([1]))
    np.testing.assert_allclose(equal[0], 0.0, atol=1e-9)  # opposite orders cancel
    lean = zscore_blend({"a": a, "b": b}, {"a": 1.0, "b": 0.5}, RATED)(np.array([0, 1]))
    assert _order(lean[1]) == _order(RETRIEVER)
    assert lean[0, 0] == -np.inf


@pytest.mark.parametrize(
    ("weights", "error"),
    [
        ({"a": 1.0}, "weights name"),
        ({"a": 1.0, "b": 1.0, "c": 1.0}, "weights name"),
        ({"a": 1.0, "b": float("nan")}, "finite"),
    ],
)
def test_blend_refuses_bad_weights(weights: dict[str, float], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        zscore_blend({"a": _tile(RETRIEVER), "b": _tile(RERANKER)}, weights, RATED)


def test_blend_needs_a_scorer() -> None:
    with pytest.raises(ValueError, match="at least one"):
        zscore_blend({}, {}, RATED)
