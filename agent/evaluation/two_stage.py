"""Two-stage scorers for the offline protocols: a retriever proposes, a reranker orders.

The product serves from a candidate set and lets the agent rank it; offline, the same shape is
"retriever's top n, reordered by the agent". Two ways of combining a retriever and a reranker
are measured here, both built from plain ``Scorer`` callables so any pair can be tried:

- ``rerank_top_n``: each user's n best unrated items by the retriever, ordered by the
  reranker, ahead of every other item (those keep the retriever's order). With n <= k the
  top k is the retriever's set, so the metrics that depend on the set alone equal the
  retriever's; n is the knob between "retriever" and "reranker over everything".
- ``zscore_blend``: per user, a weighted sum of each scorer's scores standardised over the
  unrated items, so that scales (dot products, counts, EASE weights) do not pick the winner.

Items the user rated in the train part are excluded before the top n is taken (protocol (a)
masks them anyway; keeping them would waste slots of the candidate set).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from agent.evaluation.offline import Scorer

# Items outside the retrieved set are placed below every reranked score by this margin.
_BELOW = 1e6


def _unrated_scores(
    scorer: Scorer, users: npt.NDArray[np.int64], rated: sp.csr_matrix
) -> npt.NDArray[np.float64]:
    """The scorer's scores with the users' train items set to -inf; shape checked."""
    scores = np.asarray(scorer(users), dtype=np.float64).copy()
    if scores.shape != (len(users), rated.shape[1]):
        raise ValueError(
            f"scorer returned shape {scores.shape}, expected {(len(users), rated.shape[1])}"
        )
    scores[rated[users].nonzero()] = -np.inf
    return scores


def rerank_top_n(retriever: Scorer, reranker: Scorer, n: int, rated: sp.csr_matrix) -> Scorer:
    """Retriever's top ``n`` unrated items per user ordered by ``reranker``, then the rest in
    retriever order. ``rated`` is the users x items train matrix (nonzero = rated)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")

    def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        base = _unrated_scores(retriever, users, rated)
        top_scores = np.asarray(reranker(users), dtype=np.float64)
        if top_scores.shape != base.shape:
            raise ValueError(f"reranker returned shape {top_scores.shape}, expected {base.shape}")
        if not np.all(np.isfinite(top_scores)) or np.abs(top_scores).max(initial=0.0) >= _BELOW:
            raise ValueError(f"reranker scores must be finite and below {_BELOW:g} in size")
        m = min(n, base.shape[1])
        order = np.argsort(-base, axis=1, kind="stable")
        # Below the reranked set: descending by retriever rank, all under -_BELOW.
        out = np.empty_like(base)
        np.put_along_axis(out, order, -_BELOW - np.arange(base.shape[1], dtype=np.float64), 1)
        top = order[:, :m]
        np.put_along_axis(out, top, np.take_along_axis(top_scores, top, 1), 1)
        out[np.isneginf(base)] = -np.inf
        return out

    return score


def zscore_blend(
    scorers: dict[str, Scorer], weights: dict[str, float], rated: sp.csr_matrix
) -> Scorer:
    """sum_j w_j * z_j where z_j is scorer j's scores standardised per user over the items the
    user has not rated (rated items score -inf)."""
    if set(scorers) != set(weights):
        raise ValueError(f"weights name {sorted(weights)}, scorers name {sorted(scorers)}")
    if not scorers:
        raise ValueError("need at least one scorer to blend")
    if not all(np.isfinite(w) for w in weights.values()):
        raise ValueError("blend weights must be finite")

    def score(users: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        total: npt.NDArray[np.float64] | None = None
        for name, scorer in scorers.items():
            s = _unrated_scores(scorer, users, rated)
            ok = np.isfinite(s)
            count = np.maximum(ok.sum(axis=1, keepdims=True), 1)
            filled = np.where(ok, s, 0.0)
            mean = filled.sum(axis=1, keepdims=True) / count
            var = (np.where(ok, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / count
            z = np.where(ok, (filled - mean) / np.sqrt(var + 1e-12), 0.0)
            part = weights[name] * z
            total = part if total is None else total + part
        assert total is not None
        total[rated[users].nonzero()] = -np.inf
        return total

    return score
