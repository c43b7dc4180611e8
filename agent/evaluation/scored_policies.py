"""Stochastic slate policies: a Plackett-Luce sample over a weighted mix of score features.

Off-policy evaluation needs policies that put probability on many slates (as the service does
at MARQUEE_TEMPERATURE > 0) and whose probability of any slate can be computed. Each policy
here scores the candidates by a weighted sum of per-context z-scored features (popularity, the
MF-greedy user match, graph path counts, the simulator's true utility for oracle-like
policies), then draws the slate from softmax(score / temperature) without replacement, as
features.ranking.rank does for the agent. Each is also a SlatePolicy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.policies import Rows, SlateContext
from features.candidates import khop_scores
from features.ranking import plackett_luce_log_probs

Scorer = Callable[[SlateContext], npt.NDArray[np.float64]]


def _popularity(ctx: SlateContext) -> npt.NDArray[np.float64]:
    return np.log1p(ctx.catalog.popularity[ctx.candidates].astype(np.float64))


def _mf(ctx: SlateContext) -> npt.NDArray[np.float64]:
    h = ctx.history
    if not h.items:
        return np.zeros(ctx.candidates.shape[0])
    weights = np.asarray(h.ratings, dtype=np.float64) - 3.0
    user = weights @ ctx.embeddings[np.asarray(h.items)].astype(np.float64)
    return np.asarray(ctx.embeddings[ctx.candidates].astype(np.float64) @ user)


def _graph(ctx: SlateContext) -> npt.NDArray[np.float64]:
    return np.log1p(khop_scores(ctx.catalog, ctx.history)[ctx.candidates])


def _utility(ctx: SlateContext) -> npt.NDArray[np.float64]:
    if ctx.true_utility is None:
        raise ValueError("the 'utility' feature needs the simulator's true utility")
    return np.asarray(ctx.true_utility(ctx.candidates), dtype=np.float64)


FEATURES: dict[str, Scorer] = {
    "popularity": _popularity,
    "mf": _mf,
    "graph": _graph,
    "utility": _utility,
}


def zscore(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def feature_matrix(ctx: SlateContext, names: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """(features, candidates) z-scored features of one context."""
    return np.stack([zscore(FEATURES[n](ctx)) for n in names]) if names else np.zeros((0, 0))


@dataclass(frozen=True)
class ScoredPolicy:
    """Plackett-Luce over sum_f weight_f * z_f(candidates), at ``temperature`` (module doc)."""

    name: str
    weights: Mapping[str, float]
    temperature: float = 1.0
    features: tuple[str, ...] = field(default=tuple(FEATURES))

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError("a scored policy samples: temperature must be > 0")
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")

    def scores_from(self, feats: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Scores from a precomputed feature_matrix(ctx, self.features)."""
        w = np.array([self.weights.get(n, 0.0) for n in self.features])
        return np.asarray(w @ feats)

    def scores(self, ctx: SlateContext) -> npt.NDArray[np.float64]:
        names = tuple(n for n in self.features if self.weights.get(n, 0.0) != 0.0)
        if not names:
            return np.zeros(ctx.candidates.shape[0])
        w = np.array([self.weights[n] for n in names])
        return np.asarray(w @ feature_matrix(ctx, names))

    def sample_positions(
        self, scores: npt.NDArray[np.float64], k: int, rng: np.random.Generator, draws: int = 1
    ) -> npt.NDArray[np.int64]:
        """(draws, k) candidate positions: Plackett-Luce samples by the Gumbel top-k trick."""
        keys = scores / self.temperature + rng.gumbel(size=(draws, scores.shape[0]))
        k = min(k, scores.shape[0])
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1).astype(np.int64)

    def log_props(
        self, scores: npt.NDArray[np.float64], positions: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """Per-position log-propensities of a slate given as candidate positions."""
        return plackett_luce_log_probs(scores, positions, self.temperature)

    def log_props_batch(
        self, scores: npt.NDArray[np.float64], positions: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """(slates, k) per-position log-propensities of many slates in one context, computed
        as plackett_luce_log_probs does (masked picks, each row's own max)."""
        logits = scores / self.temperature
        m, k = positions.shape
        taken = np.zeros((m, k, logits.shape[0]), dtype=bool)
        rows = np.arange(m)[:, None]
        taken[rows, np.arange(1, k)[None, :], positions[:, :-1]] = True
        taken = np.logical_or.accumulate(taken, axis=1)
        masked = np.where(taken, -np.inf, logits[None, None, :])
        top = masked.max(axis=2, keepdims=True)
        lse = top[..., 0] + np.log(np.exp(masked - top).sum(axis=2))
        return np.asarray(logits[positions] - lse)

    def select(self, obs: npt.NDArray[np.float32], ctx: SlateContext) -> Rows:
        pos = self.sample_positions(self.scores(ctx), ctx.k, ctx.rng)[0]
        return ctx.candidates[pos]
