"""The Ranker's per-entry actions (features.ranker): a user's repeat requests reuse the actor's
output for their cached state, and rank exactly as a fresh forward pass would, across graph
writes that change (or leave) the state and across two actors on one entry."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
import pytest

from features.graph.schema import EdgeKind
from features.ranker import Ranker, explore
from features.ranking import rank
from tests.features.conftest import MOVIES
from tests.features.test_precompute import USERS, _bundle, _store, _write


class CountingActor:
    """A deterministic actor (a fixed linear map and tanh) that counts its forward passes."""

    def __init__(self, size: int, action: int, seed: int) -> None:
        self.weights = np.random.default_rng(seed).normal(size=(size, action)).astype(np.float32)
        self.calls = 0

    def __call__(self, state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.tanh(state @ self.weights).astype(np.float32)


def test_repeat_requests_reuse_the_action_and_rank_as_a_fresh_forward_pass() -> None:
    store = _store()
    bundle = _bundle(store)
    ranker = Ranker(bundle)
    actors = [CountingActor(ranker.observation_size, ranker.action_size, s) for s in (1, 2)]
    rng = random.Random(0)
    movies = [m[0] for m in MOVIES]
    kinds = [EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED]
    requests = 0
    for t in range(60):
        if t % 3 == 0:  # now and then a write: some users' states change, the revision always
            _write(store, rng.choice(USERS), rng.choice(movies), rng.choice(kinds), 2000 + t)
        for user in USERS:
            for actor in actors:
                seed = rng.randrange(2**32)
                got = ranker.rank(store, user, actor, 3, 0.5, np.random.default_rng(seed))
                fresh = Ranker(bundle).prepare(store, user)  # the store as it is now
                if fresh is None:
                    assert got is None
                    continue
                requests += 1
                expected_action = np.tanh(fresh.state @ actor.weights).astype(np.float32)
                assert got is not None
                np.testing.assert_array_equal(got.action, expected_action)
                np.testing.assert_array_equal(got.state, fresh.state)
                slate = rank(
                    expected_action,
                    fresh.candidates,
                    ranker.vectors,
                    3,
                    0.5 * (bundle.base_weight if fresh.base is not None else 1.0),
                    np.random.default_rng(seed),
                    fresh.base,
                    fresh.extras,
                    fresh.residual,
                )
                assert got.slate is not None
                np.testing.assert_array_equal(got.slate.indices, slate.indices)
                np.testing.assert_array_equal(got.slate.scores, slate.scores)
                np.testing.assert_array_equal(got.slate.propensities, slate.propensities)
    # the memo is not vacuous: far fewer forward passes than requests, one per computed state
    # and actor at most (a state kept after a write keeps its actions)
    calls = sum(a.calls for a in actors)
    assert calls <= 2 * ranker.stats.computed < requests


def test_a_shared_action_cannot_be_changed_by_a_caller() -> None:
    store = _store()
    ranker = Ranker(_bundle(store))
    actor = CountingActor(ranker.observation_size, ranker.action_size, 3)
    first = ranker.rank(store, "ann", actor, 2)
    again = ranker.rank(store, "ann", actor, 2)
    assert first is not None and again is not None and actor.calls == 1
    assert again.action is first.action and not first.action.flags.writeable


def test_action_noise_ranks_and_returns_the_noisy_action() -> None:
    """features.ranker.explore: with noise the slate is ranked by, and returned with, the
    actor's action plus the request's own Gaussian draw, clipped to [-1, 1]; the cached
    action stays the actor's."""
    store = _store()
    bundle = _bundle(store)
    ranker = Ranker(bundle)
    actor = CountingActor(ranker.observation_size, ranker.action_size, 4)
    fresh = ranker.prepare(store, "ann")
    assert fresh is not None
    own = np.tanh(fresh.state @ actor.weights).astype(np.float32)
    got = ranker.rank(store, "ann", actor, 3, 0.0, np.random.default_rng(5), action_noise=0.5)
    draw = np.random.default_rng(5).standard_normal(own.shape)
    expected = np.clip(own + 0.5 * draw, -1.0, 1.0).astype(np.float32)
    assert got is not None and got.slate is not None
    np.testing.assert_array_equal(got.action, expected)
    assert not np.array_equal(got.action, own) and np.all(np.abs(got.action) <= 1.0)
    slate = rank(
        expected,
        fresh.candidates,
        ranker.vectors,
        3,
        0.0,
        None,
        fresh.base,
        fresh.extras,
        fresh.residual,
    )
    np.testing.assert_array_equal(got.slate.indices, slate.indices)
    # no noise, or no generator to draw it from: the actor's own (cached) action
    for noise, rng in ((0.0, np.random.default_rng(5)), (0.5, None)):
        plain = ranker.rank(store, "ann", actor, 3, 0.0, rng, action_noise=noise)
        assert plain is not None
        np.testing.assert_array_equal(plain.action, own)
    assert actor.calls == 1


def test_implied_sd_logs_the_action_the_draw_implies_and_serves_the_same_slate() -> None:
    """features.implied_action through the ranker: with ``implied_sd`` the returned action is
    the one the sampled slate implies (what the service logs for the learner), the slate is
    the one the actor's action draws with the same generator, and without sampling
    (temperature 0) there is nothing to imply."""
    store = _store()
    ranker = Ranker(_bundle(store))
    actor = CountingActor(ranker.observation_size, ranker.action_size, 6)
    own = ranker.rank(store, "ann", actor, 3, 0.5, np.random.default_rng(1))
    got = ranker.rank(store, "ann", actor, 3, 0.5, np.random.default_rng(1), implied_sd=1.0)
    assert own is not None and got is not None and own.slate is not None
    assert got.slate is not None
    np.testing.assert_array_equal(got.slate.indices, own.slate.indices)
    np.testing.assert_array_equal(got.slate.propensities, own.slate.propensities)
    assert not np.array_equal(got.action, own.action) and np.all(np.abs(got.action) <= 1.0)
    again = ranker.rank(store, "ann", actor, 3, 0.5, np.random.default_rng(1))
    assert again is not None
    np.testing.assert_array_equal(again.action, own.action)  # the cached action is the actor's
    top = ranker.rank(store, "ann", actor, 3, 0.0, None, implied_sd=1.0)
    assert top is not None
    np.testing.assert_array_equal(top.action, own.action)


def test_explore_keeps_the_action_without_noise_and_clips_with_it() -> None:
    action = np.array([0.95, -0.95, 0.0], dtype=np.float32)
    assert explore(action, 0.0, np.random.default_rng(0)) is action
    assert explore(action, 0.3, None) is action
    draws = np.stack([explore(action, 0.3, np.random.default_rng(s)) for s in range(400)])
    assert draws.dtype == np.float32 and np.all(np.abs(draws) <= 1.0)
    assert (draws[:, 0] == 1.0).any() and (draws[:, 1] == -1.0).any()  # clipped, not wrapped
    assert abs(float(draws[:, 2].std()) - 0.3) < 0.05 and abs(float(draws[:, 2].mean())) < 0.05


def test_a_large_catalogue_computes_the_retriever_on_a_helper_thread_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At PARALLEL_MIN_MOVIES or more, the retriever's scores are computed on the helper
    thread beside the state: every user's state, candidates and base are those of the
    one-thread computation, and the scores came from the helper (checked by thread name)."""
    import threading

    import features.ranker as ranker_module
    from features.blend import BlendRetriever
    from features.bundle import RankingBundle

    store = _store()
    plain = _bundle(store)
    catalog = plain.catalog
    bundle = RankingBundle(
        catalog, plain.embeddings, retriever=BlendRetriever.fit(catalog.ratings, catalog.n_movies)
    )
    serial = {u: Ranker(bundle).prepare(store, u) for u in USERS}
    threads: list[str] = []
    scores = BlendRetriever.scores

    def recorded(self: BlendRetriever, history: object) -> object:
        threads.append(threading.current_thread().name)
        return scores(self, history)  # type: ignore[arg-type]

    monkeypatch.setattr(BlendRetriever, "scores", recorded)
    monkeypatch.setattr(ranker_module, "PARALLEL_MIN_MOVIES", 0)
    parallel = Ranker(bundle)
    for user in USERS:
        got, want = parallel.prepare(store, user), serial[user]
        if want is None:
            assert got is None
            continue
        assert got is not None and want.base is not None and got.base is not None
        np.testing.assert_array_equal(got.state, want.state)
        np.testing.assert_array_equal(got.candidates, want.candidates)
        np.testing.assert_array_equal(got.base, want.base)
    assert threads and all(t.startswith("marquee-retriever") for t in threads)


def test_a_forked_child_gets_its_own_helper_threads() -> None:
    """A child forked after the helper pool started has the pool object but not its threads:
    it must make its own, or work it submits would wait forever."""
    import multiprocessing

    import features.ranker as ranker_module

    assert ranker_module._helper().submit(sum, [1, 2]).result(timeout=5) == 3

    def child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
        queue.put(ranker_module._helper().submit(sum, [3, 4]).result(timeout=5))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    proc.join(timeout=20)
    assert proc.exitcode == 0 and queue.get(timeout=1) == 7
