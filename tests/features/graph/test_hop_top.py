"""The k-hop query's first hop through the hubs and its bounded last hop (features.graph.hop_top)
give the top movies and scores of the old computation, every hop in full."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from features.graph import hop_kernels, hop_threads, hop_top
from features.graph import local_queries as queries
from features.graph.hop import HopGraph
from features.graph.local import LocalGraphStore
from features.graph.local_queries import hop_operator, seen_movies, user_ratings
from features.graph.schema import DEFAULT_HOP_WEIGHTS, VertexKind
from features.importers.synthetic import generate_synthetic

USERS = ("u1", "u2", "u5", "u9", "u14", "u20")


@pytest.fixture(autouse=True)
def _exact_rest_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 middle hop runs from 2M entries; these graphs are far smaller."""
    monkeypatch.setattr(hop_top, "REST_MIN_NNZ", 0)


@pytest.fixture(scope="module")
def store() -> LocalGraphStore:
    out = LocalGraphStore()
    out.upsert(generate_synthetic(movies=600, people=400, users=30, tags=40, seed=7))
    return out


def _old_khop(store: LocalGraphStore, user: str, hops: int, limit: int) -> list[tuple[str, float]]:
    """khop_scores as it was computed before: H applied ``hops`` times to the seed vector over
    all movies, path counts summed and rounded, seen movies out, best first then by key."""
    state = store.state
    movies, ratings, _ = user_ratings(state, user)
    op = hop_operator(state, DEFAULT_HOP_WEIGHTS)
    x = np.zeros(op.bw.shape[0])
    x[np.unique(movies[ratings >= 4.0])] = 1.0
    total = np.zeros_like(x)
    for _ in range(hops):
        x = op.apply(x)
        total += x
    total = queries._round_scores(total)
    total[seen_movies(state, user)] = 0.0
    keys = state.vertices[VertexKind.MOVIE].keys
    pairs = [(str(keys[i]), float(total[i])) for i in np.flatnonzero(total)]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:limit]


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record what each bounded last hop returned (None: it fell back to the full hop)."""
    calls: list[Any] = []
    real: Callable[..., Any] = hop_top.top_last_hop

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(queries, "top_last_hop", spy)
    return calls


@pytest.mark.parametrize("hub_degree", [12, 40, 1000])
@pytest.mark.parametrize("hops", [2, 3])
def test_khop_equals_the_full_computation(
    store: LocalGraphStore, monkeypatch: pytest.MonkeyPatch, hub_degree: int, hops: int
) -> None:
    monkeypatch.setattr(hop_top, "HUB_DEGREE", hub_degree)
    store.state.cache.clear()  # the hub split is cached with the operator
    calls = _spy(monkeypatch)
    for user in USERS:
        for limit in (1, 10, 50):
            got = store.khop_scores(user, hops=hops, limit=limit)
            want = _old_khop(store, user, hops, limit)
            assert [k for k, _ in got] == [k for k, _ in want]
            np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-12)
    if hub_degree < 1000:  # with hubs the bound leaves few movies to count exactly
        pruned = [c for c in calls if c is not None]
        assert pruned
        assert max(len(c[0]) for c in pruned) < len(store.state.vertices[VertexKind.MOVIE]) / 2


def test_first_hop_equals_first_of_rows(store: LocalGraphStore) -> None:
    op = hop_operator(store.state, DEFAULT_HOP_WEIGHTS)
    split = hop_top.hub_split(op, hub_degree=15)
    assert split.hubs.shape[0] > 0
    for seeds in (np.array([0]), np.array([3, 40, 41, 599]), np.arange(0, 600, 7)):
        np.testing.assert_allclose(
            hop_top.first_hop(split, seeds), op.first_of_rows(seeds), rtol=1e-12, atol=1e-12
        )


def test_top_last_hop_keeps_every_tie(store: LocalGraphStore) -> None:
    """Movies of equal score at the cut are all candidates, whatever the limit falls on."""
    op = hop_operator(store.state, DEFAULT_HOP_WEIGHTS)
    split = hop_top.hub_split(op, hub_degree=12)
    x = np.ones(op.bw.shape[0])
    full = op.step(x) + x
    for limit in (1, 5, 30):
        out = hop_top.top_last_hop(split, x, x.copy(), np.zeros(0, dtype=np.int64), limit)
        assert out is not None
        cut = np.sort(full)[-limit]
        assert set(np.flatnonzero(full >= cut * (1 - 1e-12))) <= set(out[0].tolist())
        np.testing.assert_allclose(out[1], full[out[0]], rtol=1e-12)


def test_no_hubs_means_the_full_hop(
    store: LocalGraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without hub columns (a hub cap removes them) every movie would pass the bound: the last
    hop says so before any pass over the catalogue, and the query runs the full hop."""
    op = hop_operator(store.state, DEFAULT_HOP_WEIGHTS)
    split = hop_top.hub_split(op, hub_degree=10_000)
    assert split.hubs.shape[0] == 0

    def no_pass(*_: Any) -> None:
        raise AssertionError("a pass over the catalogue")

    monkeypatch.setattr(hop_kernels, "column_sums", no_pass)
    monkeypatch.setattr(hop_kernels, "lower_bound", no_pass)
    x = np.ones(op.bw.shape[0])
    assert hop_top.top_last_hop(split, x, x.copy(), np.zeros(0, dtype=np.int64), 10) is None


def _no_step_few(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the float64 middle hops (``HopGraph.step_few``)."""
    calls: list[int] = []
    real = HopGraph.step_few

    def spy(self: HopGraph, x: Any) -> Any:
        calls.append(1)
        return real(self, x)

    monkeypatch.setattr(HopGraph, "step_few", spy)
    return calls


@pytest.mark.parametrize("hub_degree", [12, 40])
def test_first_two_hops_equal_two_full_hops(
    store: LocalGraphStore, monkeypatch: pytest.MonkeyPatch, hub_degree: int
) -> None:
    """The hub part in float64, the rest in exact float32: x1 bit for bit, x2 to round-off,
    without the float64 middle hop."""
    op = hop_operator(store.state, DEFAULT_HOP_WEIGHTS)
    split = hop_top.hub_split(op, hub_degree=hub_degree)
    assert split.rest is not None
    assert split.rest.path_scale == 100 and split.rest.weight_scale in (10, 100)
    fallbacks = _no_step_few(monkeypatch)
    for seeds in (np.array([0]), np.array([3, 40, 41, 599]), np.arange(0, 600, 29)):
        x1, x2 = hop_top.first_two_hops(split, seeds)
        np.testing.assert_array_equal(x1, hop_top.first_hop(split, seeds))
        np.testing.assert_allclose(x2, op.step(x1), rtol=1e-12, atol=1e-9)
    assert not fallbacks


def test_first_two_hops_fall_back_when_not_exact(
    store: LocalGraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts that reach the float32 limit, or weights that are no short decimals, take the
    float64 hop, with the same results."""
    op = hop_operator(store.state, DEFAULT_HOP_WEIGHTS)
    split = hop_top.hub_split(op, hub_degree=12)
    seeds = np.arange(0, 600, 7)
    want = op.step(hop_top.first_hop(split, seeds))
    fallbacks = _no_step_few(monkeypatch)
    monkeypatch.setattr("features.graph.exact32.EXACT_LIMIT", 50.0)
    _, x2 = hop_top.first_two_hops(split, seeds)
    assert fallbacks == [1]
    np.testing.assert_allclose(x2, want, rtol=1e-12)

    odd = hop_operator(store.state, {k: v / 3.0 for k, v in DEFAULT_HOP_WEIGHTS.items()})
    odd_split = hop_top.hub_split(odd, hub_degree=12)
    assert odd_split.rest is None
    x1, x2 = hop_top.first_two_hops(odd_split, seeds)
    np.testing.assert_allclose(x2, odd.step(x1), rtol=1e-12)


def test_kth_largest_equals_a_full_partition() -> None:
    rng = np.random.default_rng(5)
    for values in (
        rng.random(20_000),
        rng.integers(0, 5, 20_000).astype(np.float64),  # many ties
        np.concatenate([np.zeros(19_990), rng.random(10)]),  # fewer than k above zero
    ):
        for k in (1, 7, 50, 500):
            want = float(np.partition(values, values.shape[0] - k)[values.shape[0] - k])
            assert hop_top.kth_largest(values, k) == want


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_khop_is_the_same_on_any_number_of_threads(
    store: LocalGraphStore, monkeypatch: pytest.MonkeyPatch, hops: int
) -> None:
    """The whole query, every pass shared out however small: the same movies and scores,
    bit for bit, on 1, 2 and 3 threads."""
    monkeypatch.setattr(hop_threads, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(hop_top, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(hop_top, "HUB_DEGREE", 40)
    store.state.cache.clear()
    calls = _spy(monkeypatch)
    for user in USERS:
        want = queries.khop_scores(store.state, user, hops=hops, limit=20, threads=1)
        assert want
        for threads in (2, 3):
            got = queries.khop_scores(store.state, user, hops=hops, limit=20, threads=threads)
            assert got == want
    if hops > 1:
        assert any(c is not None for c in calls)  # the bounded last hop ran
