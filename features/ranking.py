"""The one action-to-ranking function, shared by the simulator and the service.

An action a is a direction in item-embedding space, optionally followed by weights for the
candidates' slate features (``features.slate_features``); candidate i scores
``base_i + w_n (e_i . a_e + f_i . a_f)``, where base_i is a retriever's score for the
candidate (``features.retrieval``, standardised over the candidates), so a zero action
reproduces the retriever and the agent learns corrections to it, and w_n the share of the
correction a user with n interactions gets (``residual_weight``); without a base the score is
the rest alone. With temperature 0 the slate is the deterministic top-k (ties keep candidate
order); with temperature T > 0 the slate is a Plackett-Luce sample of k candidates without
replacement from softmax(scores / T), drawn with the Gumbel top-k trick, and each position's
propensity (the probability of that pick given the picks before it) is returned for
off-policy evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Slate:
    """A ranked slate. ``indices`` are item (embedding-row) indices, best first.

    ``propensities[j]`` is P(position j gets indices[j] | positions < j), 1.0 for deterministic
    slates; ``log_propensity`` is the log-probability of the whole ordered slate.
    """

    indices: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    propensities: npt.NDArray[np.float64]
    log_propensity: float

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def plackett_luce_log_probs(
    scores: npt.ArrayLike, order: npt.ArrayLike, temperature: float
) -> npt.NDArray[np.float64]:
    """Per-position log-probabilities of picking ``order`` (positions into ``scores``) one by
    one without replacement from softmax(scores / temperature).

    All positions at once: row j of a (picks x items) table masks the items picked before j,
    and each row's log-sum-exp is taken about that row's own maximum (as a pick-by-pick loop
    would), so a peaked softmax at a low temperature neither overflows nor loses the
    remaining mass to cancellation."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for Plackett-Luce, got {temperature}")
    logits = np.asarray(scores, dtype=np.float64) / temperature
    picks = np.asarray(order, dtype=np.int64)
    if picks.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    taken = np.zeros((picks.shape[0], logits.shape[0]), dtype=bool)
    taken[np.arange(1, picks.shape[0]), picks[:-1]] = True
    taken = np.logical_or.accumulate(taken, axis=0)  # row j: picks 0..j-1
    masked = np.where(taken, -np.inf, logits)
    top = masked.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(masked - top).sum(axis=1))
    return logits[picks] - lse


RESIDUAL_RAMP = 10.0  # new worlds: no correction at 10 interactions, half at 20, 0.9 at 100


def residual_weight(history_length: int, ramp: float) -> float:
    """The share of the agent's correction a user with ``history_length`` interactions gets:
    max(0, 1 - ramp / n), 1 when ``ramp`` is 0 (worlds and bundles saved before it). An
    actor reading a short history is guessing, and on real users with 10 interactions its
    correction cost the retriever's precision (README), so it grows with what is known, as
    the blend's ALS part does (``features.blend``)."""
    if ramp < 0:
        raise ValueError(f"residual ramp must be >= 0, got {ramp}")
    if ramp == 0:
        return 1.0
    return max(0.0, 1.0 - ramp / history_length) if history_length > 0 else 0.0


def candidate_scores(
    action: npt.ArrayLike,
    candidate_indices: npt.ArrayLike,
    embeddings: npt.NDArray[np.floating],
    base: npt.ArrayLike | None = None,
    extras: npt.ArrayLike | None = None,
    residual: float = 1.0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(candidates, scores): ``base + residual (embeddings[i] . a_e + extras_i . a_f)`` per
    candidate, a = (a_e, a_f) with a_e the embedding's dimension and a_f one weight per extras
    column, ``residual`` the user's ``residual_weight``. Validates every input; the one scoring
    rule behind ``rank`` and full-ranking evaluation."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d (items, dim) array, got shape {emb.shape}")
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    cands = np.asarray(candidate_indices, dtype=np.int64).reshape(-1)
    x = None if extras is None else np.asarray(extras, dtype=np.float64)
    if x is not None and (x.ndim != 2 or x.shape[0] != cands.shape[0]):
        raise ValueError(
            f"extras must be a (candidates, features) array for {cands.shape[0]} candidates, "
            f"got shape {x.shape}"
        )
    want = emb.shape[1] + (0 if x is None else x.shape[1])
    if a.shape[0] != want:
        raise ValueError(
            f"action has dimension {a.shape[0]} but embeddings have dimension {emb.shape[1]}"
            + ("" if x is None else f" and there are {x.shape[1]} slate features")
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("action contains NaN or infinite values")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual weight must be in [0, 1], got {residual}")
    if cands.shape[0] == 0:
        raise ValueError("no candidates to rank")
    if cands.min() < 0 or cands.max() >= emb.shape[0]:
        raise ValueError(
            f"candidate index out of range [0, {emb.shape[0]}): "
            f"min {int(cands.min())}, max {int(cands.max())}"
        )
    d = emb.shape[1]
    scores = (emb[cands] @ a[:d].astype(emb.dtype)).astype(np.float64)
    if x is not None and x.shape[1]:
        if not np.all(np.isfinite(x)):
            raise ValueError("slate features contain NaN or infinite values")
        scores = scores + x @ a[d:]
    scores = residual * scores
    if base is not None:
        b = np.asarray(base, dtype=np.float64).reshape(-1)
        if b.shape != scores.shape:
            raise ValueError(f"base has {b.shape[0]} scores for {scores.shape[0]} candidates")
        if not np.all(np.isfinite(b)):
            raise ValueError("base scores contain NaN or infinite values")
        scores = scores + b
    return cands, scores


def rank(
    action: npt.ArrayLike,
    candidate_indices: npt.ArrayLike,
    embeddings: npt.NDArray[np.floating],
    k: int,
    temperature: float = 0.0,
    rng: np.random.Generator | None = None,
    base: npt.ArrayLike | None = None,
    extras: npt.ArrayLike | None = None,
    residual: float = 1.0,
) -> Slate:
    """Rank candidates by ``candidate_scores``; a slate of ``min(k, n)`` items.

    ``embeddings`` is the (n_items, d) matrix; ``action`` has shape (d + m,) for ``extras`` of
    shape (candidates, m) (m = 0 without); ``base`` (optional) holds one finite score per
    candidate, in candidate order. ``rng`` is needed only when temperature > 0 (a fresh
    unseeded generator is used if omitted, so pass one to be reproducible).
    """
    cands, scores = candidate_scores(action, candidate_indices, embeddings, base, extras, residual)
    return rank_scores(cands, scores, k, temperature, rng)


def rank_scores(
    cands: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    k: int,
    temperature: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Slate:
    """``rank``'s slate from ``candidate_scores``' output, for a caller that needs the scores
    too (``features.ranker``'s implied action), so they are computed once."""
    if k <= 0:
        raise ValueError(f"slate size k must be positive, got {k}")
    if temperature < 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    n = min(k, cands.shape[0])
    if temperature == 0.0:
        order = np.argsort(-scores, kind="stable")[:n]
        props = np.ones(n, dtype=np.float64)
        log_prop = 0.0
    else:
        gen = rng if rng is not None else np.random.default_rng()
        keys = scores / temperature + gen.gumbel(size=scores.shape[0])
        order = np.argsort(-keys, kind="stable")[:n]
        logs = plackett_luce_log_probs(scores, order, temperature)
        props = np.exp(logs)
        log_prop = float(np.sum(logs))
    return Slate(
        indices=cands[order],
        scores=scores[order].astype(np.float32),
        propensities=props,
        log_propensity=log_prop,
    )
