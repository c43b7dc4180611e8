"""The shared ranking function: top-k, Plackett-Luce sampling, propensities, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from features.ranking import candidate_scores, plackett_luce_log_probs, rank, residual_weight


@pytest.fixture
def emb() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(30, 4)).astype(np.float32)


def test_deterministic_top_k_is_the_best_scores(emb: np.ndarray) -> None:
    a = np.array([0.5, -1.0, 0.2, 0.9], dtype=np.float32)
    cands = np.array([3, 7, 11, 2, 29, 15, 0])
    slate = rank(a, cands, emb, 3)
    scores = emb[cands] @ a
    assert slate.indices.tolist() == cands[np.argsort(-scores)[:3]].tolist()
    assert np.allclose(slate.scores, np.sort(scores)[::-1][:3])
    assert slate.propensities.tolist() == [1.0, 1.0, 1.0]
    assert slate.log_propensity == 0.0


def test_ties_keep_candidate_order() -> None:
    emb = np.ones((5, 2), dtype=np.float32)
    slate = rank(np.array([1.0, 0.0]), [4, 1, 3, 0], emb, 3)
    assert slate.indices.tolist() == [4, 1, 3]


def test_k_larger_than_candidates_returns_all(emb: np.ndarray) -> None:
    slate = rank(np.ones(4), [5, 6], emb, 10)
    assert len(slate) == 2 and sorted(slate.indices.tolist()) == [5, 6]


def test_sampling_is_reproducible_with_a_seeded_rng(emb: np.ndarray) -> None:
    a = np.array([0.3, 0.1, -0.4, 0.2])
    cands = np.arange(30)
    s1 = rank(a, cands, emb, 5, temperature=0.5, rng=np.random.default_rng(11))
    s2 = rank(a, cands, emb, 5, temperature=0.5, rng=np.random.default_rng(11))
    assert s1.indices.tolist() == s2.indices.tolist()
    draws = {
        tuple(rank(a, cands, emb, 5, temperature=0.5, rng=np.random.default_rng(s)).indices)
        for s in range(20)
    }
    assert len(draws) > 1


def test_propensities_match_plackett_luce(emb: np.ndarray) -> None:
    a = np.array([1.0, 0.5, -0.5, 0.0])
    cands = np.array([1, 4, 9, 16, 25])
    t = 0.7
    slate = rank(a, cands, emb, 3, temperature=t, rng=np.random.default_rng(0))
    scores = (emb[cands] @ a).astype(np.float64)
    pos = [int(np.flatnonzero(cands == i)[0]) for i in slate.indices]
    logs = plackett_luce_log_probs(scores, pos, t)
    assert np.allclose(np.log(slate.propensities), logs)
    assert slate.log_propensity == pytest.approx(float(np.sum(logs)))
    soft = np.exp(scores / t) / np.exp(scores / t).sum()
    assert slate.propensities[0] == pytest.approx(soft[pos[0]])
    assert np.all((slate.propensities > 0) & (slate.propensities <= 1))


def test_plackett_luce_probabilities_sum_to_one() -> None:
    scores = np.array([0.2, 1.5, -0.3, 0.9])
    total = sum(
        np.exp(plackett_luce_log_probs(scores, perm, 0.8).sum())
        for perm in itertools.permutations(range(4), 2)
    )
    assert total == pytest.approx(1.0)


def test_first_pick_frequencies_follow_the_softmax() -> None:
    emb = np.array([[1.0], [0.5], [0.0], [-1.0]])
    rng = np.random.default_rng(5)
    n = 20000
    firsts = np.bincount(
        [
            int(rank([1.0], [0, 1, 2, 3], emb, 2, temperature=0.5, rng=rng).indices[0])
            for _ in range(n)
        ],
        minlength=4,
    )
    soft = np.exp(emb[:, 0] / 0.5) / np.exp(emb[:, 0] / 0.5).sum()
    assert np.allclose(firsts / n, soft, atol=0.015)


@pytest.mark.parametrize(
    ("action", "cands", "k", "temperature", "message"),
    [
        (np.ones(4), [0, 1], 0, 0.0, "slate size k must be positive, got 0"),
        (np.ones(4), [0, 1], -2, 0.0, "slate size k must be positive, got -2"),
        (np.ones(3), [0, 1], 2, 0.0, "action has dimension 3 but embeddings have dimension 4"),
        (np.ones(4), [0, 1], 2, -1.0, "temperature must be a finite number >= 0, got -1.0"),
        (np.ones(4), [], 2, 0.0, "no candidates to rank"),
        (np.ones(4), [0, 30], 2, 0.0, r"candidate index out of range \[0, 30\): min 0, max 30"),
        (np.array([1.0, np.nan, 0, 0]), [0], 1, 0.0, "action contains NaN or infinite values"),
    ],
)
def test_bad_input(
    emb: np.ndarray, action: np.ndarray, cands: list[int], k: int, temperature: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rank(action, cands, emb, k, temperature=temperature)


def _pick_by_pick(scores: np.ndarray, order: np.ndarray, t: float) -> np.ndarray:
    """The textbook Plackett-Luce log-probabilities, one pick at a time."""
    logits = scores / t
    left = np.ones(scores.shape[0], dtype=bool)
    out = []
    for p in order:
        m = logits[left].max()
        out.append(logits[p] - m - np.log(np.exp(logits[left] - m).sum()))
        left[p] = False
    return np.array(out)


@pytest.mark.parametrize("temperature", [5.0, 0.8, 0.05, 1e-3])
def test_plackett_luce_all_at_once_equals_pick_by_pick(temperature: float) -> None:
    """Also at temperatures where the first pick holds nearly all the mass (wide scores): no
    overflow, no lost remaining mass, no NaN."""
    rng = np.random.default_rng(7)
    scores = rng.normal(0.0, 4.0, 200)
    order = np.argsort(-scores)[:10]
    order[[0, 9]] = order[[9, 0]]  # not simply the best first
    got = plackett_luce_log_probs(scores, order, temperature)
    assert np.all(np.isfinite(got)) and np.all(got <= 0.0)
    assert np.allclose(got, _pick_by_pick(scores, order, temperature), rtol=1e-12, atol=1e-12)
    assert plackett_luce_log_probs(scores, order[:0], temperature).shape == (0,)


def test_base_scores_are_added_and_a_zero_action_keeps_the_base_order(emb: np.ndarray) -> None:
    cands = np.arange(emb.shape[0])
    base = np.linspace(1.0, -1.0, emb.shape[0])[::-1].copy()
    zero = rank(np.zeros(emb.shape[1]), cands, emb, 5, base=base)
    assert list(zero.indices) == list(np.argsort(-base, kind="stable")[:5])
    a = np.ones(emb.shape[1])
    both = rank(a, cands, emb, 5, base=base)
    expect = np.argsort(-(emb @ a + base), kind="stable")[:5]
    assert list(both.indices) == list(expect)


@pytest.mark.parametrize(
    ("base", "message"),
    [
        (np.zeros(3), "base has 3 scores for"),
        ("nan", "base scores contain NaN"),
    ],
)
def test_bad_base(emb: np.ndarray, base: object, message: str) -> None:
    cands = np.arange(emb.shape[0])
    if isinstance(base, str):
        base = np.full(emb.shape[0], np.nan)
    with pytest.raises(ValueError, match=message):
        rank(np.zeros(emb.shape[1]), cands, emb, 3, base=base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("length", "ramp", "weight"),
    [
        (10, 10.0, 0.0),
        (5, 10.0, 0.0),
        (20, 10.0, 0.5),
        (100, 10.0, 0.9),
        (0, 10.0, 0.0),
        (3, 0.0, 1.0),
        (0, 0.0, 1.0),
    ],
)
def test_residual_weight_ramps_with_the_history(length: int, ramp: float, weight: float) -> None:
    assert residual_weight(length, ramp) == pytest.approx(weight)


def test_the_residual_weight_scales_the_correction_not_the_base(emb: np.ndarray) -> None:
    action = np.ones(emb.shape[1])
    base = np.array([3.0, 2.0, 1.0, 0.0, -1.0])
    cands = np.arange(5)
    _, full = candidate_scores(action, cands, emb, base)
    _, half = candidate_scores(action, cands, emb, base, residual=0.5)
    _, none = candidate_scores(action, cands, emb, base, residual=0.0)
    assert np.allclose(none, base)
    assert np.allclose(half - base, 0.5 * (full - base))
    assert rank(action, cands, emb, 5, base=base, residual=0.0).indices.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("residual", "ramp"), [(1.5, None), (-0.1, None), (None, -1.0)])
def test_bad_residual(emb: np.ndarray, residual: float | None, ramp: float | None) -> None:
    with pytest.raises(ValueError, match="residual"):
        if ramp is not None:
            residual_weight(10, ramp)
        else:
            candidate_scores(np.ones(emb.shape[1]), np.arange(3), emb, residual=residual or 0.0)
