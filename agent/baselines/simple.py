"""Baseline rankers, each a SlatePolicy: random, most-popular, item-bias, MF-greedy, EASE,
RP3beta (the graph baseline) and the oracle.

EASE, RP3beta and item-bias rank the candidates by the world's retrievers
(``SlateContext.retrievers``, fitted on the training users only): EASE-greedy is what the
agent's ranking serves with a zero action.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from features.candidates import retriever_scores
from features.context import Rows, SlateContext


def _top(candidates: Rows, scores: npt.NDArray[np.float64], k: int) -> Rows:
    """The k candidates with the highest scores; ties keep candidate order."""
    order = np.argsort(-scores, kind="stable")[:k]
    return candidates[order]


class RandomPolicy:
    """k candidates drawn uniformly without replacement."""

    name = "random"

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        k = min(ctx.k, ctx.candidates.shape[0])
        return ctx.rng.choice(ctx.candidates, size=k, replace=False)


class MostPopularPolicy:
    """The candidates with the most ratings in the catalogue."""

    name = "most-popular"

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        pop = ctx.catalog.popularity[ctx.candidates].astype(np.float64)
        return _top(ctx.candidates, pop, ctx.k)


class _RetrieverPolicy:
    """Greedy by one of the context's retrievers; popularity breaks ties."""

    name = ""

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        retriever = ctx.retrievers.get(self.name)
        if retriever is None:
            raise ValueError(
                f"the {self.name!r} baseline needs the world's {self.name} retriever; this "
                "world has none (rebuild it with `marquee train --rebuild-world`)"
            )
        scores = retriever_scores(retriever, ctx.history)[ctx.candidates]
        pop = ctx.catalog.popularity[ctx.candidates].astype(np.float64)
        order = np.lexsort((-pop, -scores))[: ctx.k]
        return ctx.candidates[order]


class EASEPolicy(_RetrieverPolicy):
    """EASE-greedy: the retriever the agent's ranking adds its corrections to."""

    name = "ease"


class GraphPolicy(_RetrieverPolicy):
    """The graph baseline: RP3beta random walks over ratings and content edges."""

    name = "rp3beta"


class ItemBiasPolicy(_RetrieverPolicy):
    """Each movie's shrunk mean rating, the same for everyone."""

    name = "item-bias"


class MFGreedyPolicy:
    """Myopic matrix-factorisation ranking: the user's vector is the rating-weighted mean of
    their history's embeddings (centred at 3 stars); score = e_i . u."""

    name = "mf-greedy"

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        h = ctx.history
        if not h.items:
            return MostPopularPolicy().select(obs, ctx)
        weights = np.asarray(h.ratings, dtype=np.float64) - 3.0
        user = weights @ ctx.embeddings[np.asarray(h.items)] / max(len(h.items), 1)
        scores = ctx.embeddings[ctx.candidates] @ user
        return _top(ctx.candidates, scores.astype(np.float64), ctx.k)


class OraclePolicy:
    """Knows the simulator's true utility: the myopic upper bound."""

    name = "oracle"

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        if ctx.true_utility is None:
            raise ValueError("the oracle needs the simulator's true utility in its context")
        return _top(ctx.candidates, ctx.true_utility(ctx.candidates), ctx.k)


BASELINES = {
    p.name: p
    for p in (
        RandomPolicy,
        MostPopularPolicy,
        ItemBiasPolicy,
        MFGreedyPolicy,
        EASEPolicy,
        GraphPolicy,
        OraclePolicy,
    )
}
