"""The compiled passes (features.graph.hop_kernels) equal scipy's float64 products bit for bit,
and the 3-hop middle hop built on them equals the plain float64 computation of its parts, on
one thread or several."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from features.graph import hop_kernels as hk
from features.graph import hop_threads, hop_top
from features.graph.exact32 import EXACT_LIMIT
from features.graph.hop import HopGraph, incidence_hop
from features.graph.padded_rows import padded_rows


def _random_csr(rng: np.random.Generator, rows: int, cols: int, density: float) -> sp.csr_matrix:
    m = sp.random(rows, cols, density=density, format="csr", random_state=rng)
    m.data = rng.choice([0.05, 0.3, 0.5, 0.8, 1.0], size=m.nnz)
    m.sort_indices()
    return m


def _patterns(rng: np.random.Generator) -> list[sp.csr_matrix]:
    """Random patterns plus the edge cases: empty rows, one entry, a row far past the width."""
    out = [_random_csr(rng, r, c, d) for r, c, d in ((50, 7, 0.4), (300, 40, 0.1), (1, 3, 1.0))]
    odd = sp.lil_matrix((6, 30))
    odd[1, 4] = 0.3  # a row (and a column) of one entry
    odd[3, :] = 0.5  # a row of 30: most of it in the overflow
    odd[5, [2, 9]] = 1.0
    out.append(sp.csr_matrix(odd))
    out.append(sp.csr_matrix((4, 5)))  # no entries at all
    return out


def test_padded_rows_keep_every_row_in_order() -> None:
    for m in _patterns(np.random.default_rng(1)):
        rows = padded_rows(m.indptr, m.indices, pad=m.shape[1])
        for j in range(m.shape[0]):
            slots = [int(c) for c in rows.slots[j] if c < rows.pad]
            over = rows.over_idx[rows.over_ptr[j] : rows.over_ptr[j + 1]].tolist()
            assert slots + over == m.indices[m.indptr[j] : m.indptr[j + 1]].tolist()
            pads = rows.slots[j, len(slots) :].tolist()  # one padding column per position
            assert pads == list(range(rows.pad + len(slots), rows.size))


def test_row_sums_equal_scipy_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    for m in _patterns(rng):
        y = rng.random(m.shape[1]) * 1e3
        rows = padded_rows(m.indptr, m.indices, pad=m.shape[1])
        terms = np.zeros(rows.size)  # the paddings' 0 after the columns'
        w = np.zeros(m.shape[1])
        w[m.indices] = m.data  # one weight per column, as in B w
        np.multiply(w, y, out=terms[: rows.pad])
        mw = sp.csr_matrix((w[m.indices], m.indices, m.indptr), shape=m.shape)
        out = np.empty(m.shape[0])
        hk.row_sums(rows.slots, rows.over_ptr, rows.over_idx, terms, out)
        np.testing.assert_array_equal(out, mw @ y)


def test_column_sums_equal_scipy_bit_for_bit() -> None:
    """Scattered movie by movie, each column's sum adds its terms in the order of the
    transpose's sorted rows, as scipy's product over that transpose does."""
    rng = np.random.default_rng(3)
    for m in _patterns(rng):
        x = rng.random(m.shape[0]) * 1e3
        rows = padded_rows(m.indptr, m.indices, pad=m.shape[1])
        out = np.zeros(rows.size)
        hk.column_sums(rows.slots, rows.over_ptr, rows.over_idx, x, out)
        t = sp.csr_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape).T.tocsr()
        t.sort_indices()
        np.testing.assert_array_equal(out[: rows.pad], t @ x)


def test_scatter_counts_are_the_exact_column_sums() -> None:
    rng = np.random.default_rng(4)
    for m in _patterns(rng):
        x = rng.integers(0, 500, m.shape[0]) / 100.0  # path counts at a scale of 100
        x[::3] = 0.0
        rows = padded_rows(m.indptr, m.indices, pad=m.shape[1])
        out = np.zeros(rows.size, dtype=np.float32)
        top = hk.scatter_counts(rows.slots, rows.over_ptr, rows.over_idx, x, 100.0, out)
        ints = np.rint(x * 100).astype(np.int64)
        want = np.bincount(
            m.indices, weights=np.repeat(ints, np.diff(m.indptr)), minlength=m.shape[1]
        )
        np.testing.assert_array_equal(out[: rows.pad], want)
        assert top == float(ints.max(initial=0))


def test_a_count_sum_that_may_have_rounded_reaches_the_limit() -> None:
    """(2^24 - 1) + 2 in one column: float32 gives 2^24, not below the limit, so the caller
    falls back; 2^24 - 3 + 2 stays exact."""
    ptr, idx = np.array([0, 1, 2]), np.array([0, 0], dtype=np.int32)
    rows = padded_rows(ptr, idx, pad=1)
    for first, want in ((EXACT_LIMIT - 1, EXACT_LIMIT), (EXACT_LIMIT - 3, EXACT_LIMIT - 1)):
        out = np.zeros(rows.size, dtype=np.float32)
        hk.scatter_counts(
            rows.slots, rows.over_ptr, rows.over_idx, np.array([first, 2.0]), 1.0, out
        )
        assert out[0] == want


def test_middle_hop_and_lower_bound_equal_the_numpy_formulas() -> None:
    rng = np.random.default_rng(5)
    hub, rest = _random_csr(rng, 200, 12, 0.3), _random_csr(rng, 200, 90, 0.05)
    hr = padded_rows(hub.indptr, hub.indices, pad=12)
    rr = padded_rows(rest.indptr, rest.indices, pad=90)
    hub_terms = np.zeros(hr.size)
    hub_terms[:12] = rng.random(12) * 1e4
    rest_terms = np.zeros(rr.size, dtype=np.float32)
    rest_terms[:90] = rng.integers(0, 3000, 90)
    x1, d = rng.random(200) * 50, rng.random(200) * 3
    x2 = np.empty(200)
    hk.row_sums(hr.slots, hr.over_ptr, hr.over_idx, hub_terms, x2)
    top = hk.add_rest(rr.slots, rr.over_ptr, rr.over_idx, rest_terms, x1, d, 1000.0, x2)
    pattern_h = sp.csr_matrix((np.ones(hub.nnz), hub.indices, hub.indptr), shape=hub.shape)
    pattern_r = sp.csr_matrix((np.ones(rest.nnz), rest.indices, rest.indptr), shape=rest.shape)
    r = pattern_r @ rest_terms[:90].astype(np.float64)
    want = r / 1000.0
    want += pattern_h @ hub_terms[:12]
    want -= d * x1
    np.testing.assert_array_equal(x2, want)
    assert top == r.max()

    total, lower = rng.random(200), np.empty(200)
    hk.lower_bound(hr.slots, hr.over_ptr, hr.over_idx, hub_terms, d, x1, total, lower)
    want = pattern_h @ hub_terms[:12]
    want -= d * x1
    want += total
    np.testing.assert_array_equal(lower, want)


def test_hop_rows_equal_apply_rows_bit_for_bit() -> None:
    """The last hop's exact rows: hub columns' sums given, the others summed where met."""
    rng = np.random.default_rng(8)
    c = _graph(rng, 300, 50, 4)
    op = incidence_hop(c, rng.choice([0.05, 0.3, 0.5, 0.8, 1.0], size=50))
    hs = hop_top.hub_split(op, hub_degree=40)
    assert hs.hubs.shape[0] == 4
    x = rng.random(300) * 1e3
    y_hub = op.column_sums(x)[hs.hubs]
    for rows in (np.zeros(0, dtype=np.int64), np.array([7]), rng.permutation(300)[:40]):
        out = np.empty(rows.shape[0])
        hk.hop_rows(
            op.bw.indptr, op.bw.indices, op.bw.data, op.bt.indptr, op.bt.indices, op.bt.data,
            hs.hub_of, y_hub, x, op.self_weight, rows, out,
        )  # fmt: skip
        np.testing.assert_array_equal(out, op.apply_rows(x, rows))


def _graph(rng: np.random.Generator, movies: int, cols: int, hub_cols: int) -> sp.csr_matrix:
    """A binary column x movie incidence: ``hub_cols`` columns holding most movies, the others
    few; the last holds one movie (dropped from the operator as a lone column)."""
    c = (rng.random((cols, movies)) < 0.04).astype(np.float64)
    c[:hub_cols] = rng.random((hub_cols, movies)) < 0.3
    c[-1] = 0.0
    c[-1, 7] = 1.0
    return sp.csr_matrix(c)


def _reference(hs: hop_top.HubSplit, x1: np.ndarray) -> np.ndarray:
    """The middle hop as the numpy/scipy passes computed it before the kernels."""
    op, rest = hs.op, hs.rest
    assert rest is not None
    is_hub = hs.is_hub
    bt_hub = sp.csr_matrix(op.bt[hs.hubs])
    bw_hub = sp.csr_matrix(op.bw[:, hs.hubs])
    bw_hub.sort_indices()
    bt_rest = sp.csr_matrix(op.bt[np.flatnonzero(~is_hub)])
    xs = np.rint(x1 * rest.path_scale).astype(np.int64)
    ys = np.rint(bt_rest @ xs.astype(np.float64)).astype(np.int64)
    ws = np.rint(hs.column_weight[~is_hub] * rest.weight_scale).astype(np.int64)
    zs = np.rint(sp.csr_matrix(bt_rest.T) @ (ws * ys).astype(np.float64))
    out = np.divide(zs, float(rest.path_scale * rest.weight_scale), dtype=np.float64)
    out += bw_hub @ (bt_hub @ x1)
    out -= op.self_weight * x1
    return out


@pytest.mark.parametrize("hub_cols", [0, 1, 5])
def test_first_two_hops_equal_the_float64_parts(
    monkeypatch: pytest.MonkeyPatch, hub_cols: int
) -> None:
    """x1 equal to the first hop from the full columns, x2 bit for bit to the numpy middle hop
    (hubs in float64, the rest as exact integers), on small random graphs: no hub, a single
    hub, several; no seed, one, many."""
    monkeypatch.setattr(hop_top, "REST_MIN_NNZ", 0)
    rng = np.random.default_rng(6 + hub_cols)
    c = _graph(rng, 200, 60, hub_cols)
    weights = rng.choice([0.3, 0.5, 0.8, 1.0], size=60)  # a scale of 10: counts stay < 2^24
    weights[:hub_cols] = 0.05
    op = incidence_hop(c, weights)
    hs = hop_top.hub_split(op, hub_degree=30)
    assert hs.hubs.shape[0] == hub_cols
    fallbacks: list[int] = []
    step_few = HopGraph.step_few

    def spy(g: HopGraph, x: np.ndarray) -> np.ndarray:
        fallbacks.append(1)
        return step_few(g, x)

    monkeypatch.setattr(HopGraph, "step_few", spy)
    for seeds in (np.zeros(0, dtype=np.int64), np.array([7]), np.arange(0, 200, 13)):
        x1, x2 = hop_top.first_two_hops(hs, seeds)
        np.testing.assert_allclose(x1, op.first_of_rows(seeds), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(x2, op.step(x1), rtol=1e-12, atol=1e-9)
        if hub_cols:
            np.testing.assert_array_equal(x2, _reference(hs, x1))
        if not seeds.shape[0]:
            assert not x1.any() and not x2.any()
    assert len(fallbacks) == (3 if not hub_cols else 0)  # no hubs: no split, the float64 hop


def _split_small_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every pass share out its rows however small the graph; record each pass's number
    of tasks, so that a test can see the passes were split."""
    monkeypatch.setattr(hop_top, "REST_MIN_NNZ", 0)
    monkeypatch.setattr(hop_threads, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(hop_top, "PARALLEL_MIN_ROWS", 0)
    tasks: list[int] = []
    real = hop_threads.run_tasks

    def spy(todo: list[Any], threads: int) -> None:
        tasks.append(len(todo))
        real(todo, threads)

    monkeypatch.setattr(hop_threads, "run_tasks", spy)
    return tasks


@pytest.mark.parametrize("movies", [3, 200, 1001])
def test_threads_give_the_same_bits(monkeypatch: pytest.MonkeyPatch, movies: int) -> None:
    """2, 3 and 5 threads (ranges of uneven sizes, more ranges than movies, empty ones) give
    x1, x2 and the last hop's candidates and values of one thread, bit for bit: the row
    passes by ranges of movies, the non-hub counts as per-thread arrays summed, the hub
    column sums whole beside them."""
    tasks = _split_small_passes(monkeypatch)
    monkeypatch.setattr(hop_top, "MAX_EXACT_SHARE", 2.0)  # exact rows even when they are all
    rng = np.random.default_rng(movies)
    if movies < 10:  # two hubs holding every movie, a few other columns
        dense = (rng.random((12, movies)) < 0.6).astype(np.float64)
        dense[:2] = 1.0
        c = sp.csr_matrix(dense)
    else:
        c = _graph(rng, movies, 60, 3)
    op = incidence_hop(c, rng.choice([0.3, 0.5, 0.8, 1.0], size=c.shape[0]))
    hs = hop_top.hub_split(op, hub_degree=min(30, movies - 1))
    assert hs.hubs.shape[0] and hs.rest is not None
    fallbacks: list[int] = []
    step_few = HopGraph.step_few
    monkeypatch.setattr(HopGraph, "step_few", lambda g, x: fallbacks.append(1) or step_few(g, x))
    for seeds in (np.array([0]), np.arange(0, movies, 3)):
        x1, x2 = hop_top.first_two_hops(hs, seeds, threads=1)
        seen = seeds[:1]
        last = hop_top.top_last_hop(hs, x2, x1 + x2, seen, 1, threads=1)
        assert last is not None
        tasks.clear()
        for threads in (2, 3, 5):
            y1, y2 = hop_top.first_two_hops(hs, seeds, threads=threads)
            np.testing.assert_array_equal(y1, x1)
            np.testing.assert_array_equal(y2, x2)
            got = hop_top.top_last_hop(hs, y2, y1 + y2, seen, 1, threads=threads)
            assert got is not None
            np.testing.assert_array_equal(got[0], last[0])
            np.testing.assert_array_equal(got[1], last[1])
        assert min(tasks) > 1  # every pass was shared out
    assert not fallbacks  # the float32 middle hop ran, not the float64 one


def test_per_thread_counts_sum_to_one_threads_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The non-hub counts scattered into per-thread arrays and summed: equal to one array's
    while below 2^24 (integers), and reaching 2^24 wherever one array's do, so the middle hop
    falls back to float64 in the same cases."""
    _split_small_passes(monkeypatch)
    rng = np.random.default_rng(11)
    op = incidence_hop(_graph(rng, 300, 50, 3), rng.choice([0.5, 1.0], size=50))
    hs = hop_top.hub_split(op, hub_degree=40)
    rest = hs.rest
    assert rest is not None
    exact = rng.integers(0, 1000, 300) / rest.path_scale
    near = np.full(300, (EXACT_LIMIT / 2 - 1) / rest.path_scale)  # 3 movies in a column: over
    for x1 in (exact, near):
        want, want_top, want_hub = hop_top._rest_counts(hs, rest, x1, 1)
        for threads in (2, 3):
            counts, top, y_hub = hop_top._rest_counts(hs, rest, x1, threads)
            assert top == want_top
            np.testing.assert_array_equal(y_hub, want_hub)
            below = want < EXACT_LIMIT
            np.testing.assert_array_equal(counts[below], want[below])
            np.testing.assert_array_equal(counts >= EXACT_LIMIT, ~below)
    assert (hop_top._rest_counts(hs, rest, near, 3)[0] >= EXACT_LIMIT).any()
